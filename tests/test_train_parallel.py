"""Data parallelism gives the single-device result: 8-way `pmap` (with 2-step gradient
accumulation) and 8-way `jit` + `NamedSharding` on a 2x4 (data x fsdp) mesh — params and
optimizer state sharded FSDP-style — train 5 steps of the same global batch, dropout on, and
end with the losses and params of the 1-device run (float32, ≤ 1e-5).

XLA's host device count must be set before JAX is imported, so the runs happen in a
subprocess with 8 fake CPU devices."""
import json

import pytest

from core.training import testing

SCRIPT = r'''
import json, pathlib, sys
import jax, numpy as np
from configs import bert_mlm
from core.training import metrics, trainer
metrics.quiet_library_logs()
assert jax.device_count() == 8, jax.devices()
root = pathlib.Path(sys.argv[1])

def run(name, mode, **sections):
    c = bert_mlm.get_config("tiny")
    c.train.steps, c.train.batch_size, c.train.log_every = 5, 16, 1
    c.train.eval_every, c.train.eval_at_start = 0, False
    c.checkpoint.every, c.checkpoint.best_metric, c.export = 0, "", ""
    c.parallel.mode = mode
    for key, value in sections.items():
        section, field = key.split("__")
        c[section][field] = value
    summary, params = trainer.train(c, root / name, return_params=True)
    losses = [json.loads(l)["loss"] for l in (root / name / "metrics.jsonl").read_text().splitlines()]
    return losses, params

ref_losses, ref_params = run("single", "single")
out = {"single": ref_losses}
for name, mode, kw in [("pmap", "pmap", {"train__grad_accum": 2}),
                       ("sharded", "sharded", {"parallel__mesh_data": 2, "parallel__mesh_fsdp": 4})]:
    losses, params = run(name, mode, **kw)
    flat_ref = jax.tree_util.tree_flatten_with_path(ref_params)[0]
    flat = jax.tree.leaves(params)
    worst = max((float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), jax.tree_util.keystr(p))
                for (p, a), b in zip(flat_ref, flat))
    out[name] = {"losses": losses, "param_diff": worst[0], "worst_param": worst[1],
                 "dtypes": sorted({str(np.asarray(x).dtype) for x in flat})}
print("RESULT " + json.dumps(out))
'''


def _run(root):
    run = testing.run_python(["-c", SCRIPT, str(root)], devices=8, cache_dir=root / "jax-cache")
    line = [l for l in run.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return testing.shared_result(tmp_path_factory, "train-parallel", _run)[0]


@pytest.mark.parametrize("mode", ["pmap", "sharded"])
def test_eight_way_run_matches_single_device(result, mode, record_property):
    ref, got = result["single"], result[mode]
    assert len(ref) == len(got["losses"]) == 5
    loss_diff = max(abs(a - b) for a, b in zip(ref, got["losses"]))
    record_property(f"parity:training {mode} x8 vs 1 device (params)", got["param_diff"])
    assert loss_diff <= 1e-5, (ref, got["losses"])
    assert got["param_diff"] <= 1e-5, f"{got['worst_param']}: {got['param_diff']}"
    assert got["dtypes"] == ["float32"]
    assert ref[-1] < ref[0] + 0.1          # a real run, not a frozen model
