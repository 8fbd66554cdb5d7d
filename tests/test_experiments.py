"""The launch scripts end to end: `experiments.train` killed with SIGKILL mid-training and
restarted from its workdir ends bit-for-bit where an uninterrupted run ends; `experiments.evaluate`
reproduces the run's own eval; `experiments.convert` round-trips HF folder ⇄ Rosetta checkpoint."""
import json
import os
import pathlib
import signal
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from core.training import testing

ARGS = ["-m", "experiments.train", "--config=configs/bert_mlm.py:tiny", "--config.train.steps=12",
        "--config.checkpoint.every=3", "--config.train.eval_every=6", "--config.train.log_every=3"]
VOLATILE = ("tokens_per_sec", "steps_per_sec")


def _metrics(workdir: pathlib.Path) -> list[dict]:
    rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def _committed(workdir: pathlib.Path) -> list[int]:
    folder = workdir / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def _train_kill_restart(root: pathlib.Path) -> dict:
    cache = root / "jax-cache"
    straight, resumed = root / "straight", root / "resumed"
    testing.run_python(ARGS + [f"--workdir={straight}"], cache_dir=cache)

    with open(root / "killed.log", "w") as log:
        proc = testing.start_python(ARGS + [f"--workdir={resumed}", "--config.debug.sleep_per_step=0.4"],
                                    cache_dir=cache, log=log)
        deadline = time.time() + 300
        while 6 not in _committed(resumed):
            assert proc.poll() is None, (root / "killed.log").read_text()[-3000:]
            assert time.time() < deadline, "no checkpoint at step 6 within 300 s"
            time.sleep(0.1)
        time.sleep(0.5)                            # into the next steps, between checkpoints
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = _committed(resumed)
    second = testing.run_python(ARGS + [f"--workdir={resumed}"], cache_dir=cache)
    return {"returncode": proc.returncode, "killed_at": killed_at, "second_stdout": second.stdout,
            "second_stderr": second.stderr}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    result, root = testing.shared_result(tmp_path_factory, "experiments", _train_kill_restart)
    return {**result, "root": root, "straight": root / "straight", "resumed": root / "resumed",
            "cache": root / "jax-cache"}


def test_sigkill_mid_training_then_restart_equals_an_uninterrupted_run(runs):
    assert runs["returncode"] == -signal.SIGKILL
    assert runs["killed_at"] and max(runs["killed_at"]) < 12
    last = max(runs["killed_at"])
    output = runs["second_stdout"] + runs["second_stderr"]
    assert f"resumed from the checkpoint at step {last}" in output
    assert f"steps {last}→12" in runs["second_stdout"]
    a = load_file(runs["straight"] / "hf" / "model.safetensors")
    b = load_file(runs["resumed"] / "hf" / "model.safetensors")
    assert a.keys() == b.keys() and len(a) > 10
    diff = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
    assert diff <= 1e-7, diff
    # Same losses, grad norms, learning rates and evals at every logged step.
    assert _metrics(runs["resumed"]) == _metrics(runs["straight"])
    assert not any(p.name.startswith(("12.", "9.")) for p in (runs["resumed"] / "checkpoints").iterdir())
    summary = json.loads((runs["resumed"] / "summary.json").read_text())
    assert summary["start_step"] == last and summary["end_step"] == 12


def test_train_writes_metrics_checkpoints_and_an_hf_export(runs):
    workdir = runs["straight"]
    rows = _metrics(workdir)
    train = [r for r in rows if r["split"] == "train"]
    evals = [r for r in rows if r["split"] == "eval"]
    assert [r["step"] for r in train] == [3, 6, 9, 12] and [r["step"] for r in evals] == [0, 6, 12]
    assert evals[-1]["loss"] < evals[0]["loss"] and train[-1]["loss"] < train[0]["loss"]
    assert evals[-1]["perplexity"] == pytest.approx(np.exp(evals[-1]["loss"]), rel=1e-5)
    assert _committed(workdir) == [6, 9, 12]                   # keep = 3
    assert (workdir / "best").is_dir() and (workdir / "experiment.json").is_file()
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        assert (workdir / "hf" / name).is_file(), name


def test_classifier_fine_tunes_from_an_hf_folder_with_a_new_head(runs, tmp_path):
    """bert_classify:tiny from the MLM run's export: the MLM head is dropped, the pooler (an
    MLM checkpoint has none) and the classifier head initialised, accuracy evaluated, and the
    best checkpoint exported. (Learning itself is checked on the real MiniLM by hand: the tiny
    MLM encoder is nearly untrained.)"""
    result = testing.run_python(["-m", "experiments.train", "--config=configs/bert_classify.py:tiny",
                                 f"--config.model.init_from={runs['straight'] / 'hf'}", f"--workdir={tmp_path}"],
                                cache_dir=runs["cache"])
    assert "new sequence-classification head initialised" in result.stderr
    evals = [r for r in _metrics(tmp_path) if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [0, 5, 10] and all(0.0 <= r["accuracy"] <= 1.0 for r in evals)
    assert all(np.isfinite(r["loss"]) and r["count"] == 24 for r in evals)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    best = [p.name for p in (tmp_path / "best").iterdir() if p.name.isdigit()]
    assert len(best) == 1 and best[0] in ("5", "10")             # keep_best = 1, by accuracy


def test_evaluate_reproduces_the_final_eval(runs):
    result = testing.run_python(["-m", "experiments.evaluate", "--config=configs/bert_mlm.py:tiny",
                                 f"--workdir={runs['straight']}", "--checkpoint=latest"], cache_dir=runs["cache"])
    printed = json.loads(result.stdout[result.stdout.index("{"):])
    final = [r for r in _metrics(runs["straight"]) if r["split"] == "eval"][-1]
    assert printed["step"] == 12
    assert printed["loss"] == pytest.approx(final["loss"], abs=1e-6)
    assert printed["accuracy"] == pytest.approx(final["accuracy"], abs=1e-6)


def test_convert_round_trip_is_bit_identical(runs, tmp_path):
    from experiments import convert

    hf = runs["straight"] / "hf"
    rosetta = convert.hf_to_rosetta(hf, tmp_path / "rosetta")
    assert json.loads((rosetta / "rosetta.json").read_text())["task"] == "masked-lm"
    back = convert.rosetta_to_hf(rosetta, tmp_path / "back")
    for name in ("model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json"):
        assert (back / name).read_bytes() == (hf / name).read_bytes(), name
    # A training workdir is a Rosetta checkpoint too (CLI): its latest step is the exported model.
    testing.run_python(["-m", "experiments.convert", f"--from_rosetta={runs['straight']}",
                        f"--to_hf={tmp_path / 'cli'}"], cache_dir=runs["cache"])
    assert (tmp_path / "cli" / "model.safetensors").read_bytes() == (hf / "model.safetensors").read_bytes()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        convert.rosetta_to_hf(rosetta, tmp_path / "nope", which="7")


def test_main_job_samples_exports_and_checks_the_folder_in_torch_and_transformers(tmp_path):
    """README command 1 runs configs/gpt2_clm.py (default variant, ~2 min); the tiny variant
    walks the same path: samples, HF export, then the folder in the PyTorch port and in
    transformers against JAX; then experiments.load_in_torch uses the folder in plain torch."""
    cache = tmp_path / "jax-cache"
    result = testing.run_python(["-m", "experiments.train", "--config=configs/gpt2_clm.py:tiny",
                                 "--config.export_check=True", "--config.sample.max_new_tokens=6",
                                 f"--workdir={tmp_path / 'run'}"], cache_dir=cache)
    samples = [l for l in result.stdout.splitlines() if l.startswith("sample: ")]
    assert [s.split("'")[1].split()[0] for s in samples] == ["We", "The"], result.stdout
    assert "export check (same eval rows)" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    check = summary["export_check"]
    assert check["jax_scale"] > 0.5                      # logits of a real size: the diffs mean something
    assert check["torch_port"] <= 1e-5 and check["transformers"] <= 1e-5, check
    texts = [r for r in _metrics(tmp_path / "run") if r["split"] == "samples"]
    assert [r["step"] for r in texts] == [0, 10, 20] and all(len(r["text"]) == 2 for r in texts)

    torch_run = testing.run_python(["-m", "experiments.load_in_torch", f"--model={tmp_path / 'run' / 'hf'}",
                                    "--max_new_tokens=4", "--steps=2"], cache_dir=cache)
    lines = torch_run.stdout.splitlines()
    assert any(l.startswith("greedy: 'We hold these truths' → ") for l in lines), torch_run.stdout
    losses = [float(l.rsplit(" ", 1)[1]) for l in lines if l.startswith("torch fine-tuning step")]
    assert len(losses) == 2 and all(np.isfinite(losses))

