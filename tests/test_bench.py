"""The benchmark harness (scripts/bench): structure of its outputs, never its speed.

`test_quick_run_outputs` runs `python -m scripts.bench --quick` (tiny BERT) in a subprocess and
checks that bench.json / bench.md / bench.png exist with the expected structure. No assertion
here depends on a timing value.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from scripts.bench import models, registry, report, runner

REPO = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CI_SUITES = ("forward", "load", "compile", "generate", "train")


def test_bert_flops_match_torch_flop_counter():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from torch.utils.flop_counter import FlopCounterMode

    config = transformers.BertConfig(**models.BERT_TINY)
    model = transformers.BertModel._from_config(config, attn_implementation="eager").eval()
    ids = torch.randint(1, config.vocab_size, (3, 17))
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert models.bert_forward_flops(config, 3, 17) == counter.get_total_flops()


def test_runner_and_report_structure(tmp_path):
    """Timed and measured cases through the runner, then all three outputs, without any model."""
    calls = []
    case = registry.Case(
        name="toy", description="two trivial variants",
        variants=[registry.Variant("a", lambda: calls.append("a"), "jax"),
                  registry.Variant("b", lambda: calls.append("b"), "torch", "reference")],
        baseline="b", work={"flops": 1e6, "items": 2, "item_unit": "seq", "bytes": 1e6},
        check=lambda: {"max_abs_diff": 0.0})
    record = runner.run_case(case, warmup=1, repeats=4, peaks={"jax": 10.0, "torch": 12.0}, bandwidth=5.0,
                             log=lambda m: None)
    assert calls == ["a", "b"] + ["a", "b", "b", "a"] * 2          # warm-up, then alternating order
    assert record["status"] == "ok"
    assert set(record["samples"]) == {"a", "b"} and len(record["samples"]["a"]["wall"]) == 4
    ratio = record["ratios"]["a/b"]
    assert len(ratio["paired"]) == 4 and ratio["baseline"] == "b"
    for key in ("time_s", "cpu_per_wall", "items_per_s", "gflops_per_s", "fraction_of_matmul_peak",
                "fraction_of_own_matmul_peak", "gb_per_s", "fraction_of_read_bandwidth"):
        assert key in record["variants"]["a"], key
    missing = runner.run_case(registry.Case("later", "x", unavailable="no model yet"), 1, 1, {}, None,
                              log=lambda m: None)
    assert missing["status"] == "not available" and missing["reason"] == "no model yet"
    broken = runner.run_case(registry.Case("broken", "x", measure=lambda: 1 / 0), 1, 1, {}, None,
                             log=lambda m: None)
    assert broken["status"] == "error" and "ZeroDivisionError" in broken["error"]

    result = {
        "meta": {"date": "d", "argv": [], "quick": True, "cpu": "cpu", "loadavg_start": "0 0 0",
                 "loadavg_end": "0 0 0", "elapsed_s": 1.0, "caveat": "shared machine",
                 "threads": {"requested": 1, "cpus_available": 1, "affinity": [0], "pinned": False,
                             "XLA_FLAGS": "", "torch_num_threads": 1},
                 "versions": {"jax": "x"}},
        "suites": {"toy": {"status": "ok", "description": "toy suite", "cases": [record, missing, broken]},
                   "later": {"status": "not available", "reason": "GPT-2 is not registered"}},
    }
    paths = report.write_all(result, tmp_path)
    assert json.loads(paths["json"].read_text())["suites"]["toy"]["cases"][0]["name"] == "toy"
    text = paths["markdown"].read_text()
    assert "### toy" in text and "not available yet: GPT-2 is not registered" in text and "ERROR" in text
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC


def _quick_run(out, *suites):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "scripts.bench", *suites, "--quick", "--threads", "1", "--repeats", "2",
         "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads((out / report.JSON_NAME).read_text())


# The seq2seq and ports suites (TensorFlow, two more models) run in the extended tier: together
# they would add minutes to CI for harness code the CI-tier run already covers.
@pytest.mark.extended
def test_quick_run_seq2seq_and_ports(tmp_path):
    data = _quick_run(tmp_path / "out", "seq2seq", "ports")
    cases = {c["name"]: c for name in ("seq2seq", "ports") for c in data["suites"][name]["cases"]}
    assert set(cases) == {"t5-generate-greedy", "t5-generate-beam2", "bert-forward-ports", "gpt2-decode-ports"}
    for name, case in cases.items():
        assert case["status"] == "ok", (name, case.get("traceback"))
        assert len(case["ratios"]) == len(case["variants"]) - 1, name
    assert cases["t5-generate-greedy"]["check"]["tokens_identical"]
    assert cases["t5-generate-beam2"]["check"]["tokens_identical"]
    assert cases["bert-forward-ports"]["check"]["max_abs_diff_torch_port"] < 1e-4
    assert cases["bert-forward-ports"]["check"]["max_abs_diff_tf_port"] < 1e-4
    assert cases["gpt2-decode-ports"]["check"] == {"tokens_identical_torch_port": True,
                                                   "tokens_identical_tf_port": True,
                                                   "tokens_identical_tf_port_xla": True}


@pytest.mark.slow
def test_quick_run_outputs(tmp_path):
    out = tmp_path / "out"
    data = _quick_run(out, *CI_SUITES)

    meta = data["meta"]
    assert meta["quick"] is True and meta["threads"]["requested"] == 1
    assert meta["threads"]["torch_num_threads"] == 1
    assert "--xla_cpu_multi_thread_eigen=false" in meta["threads"]["XLA_FLAGS"]
    for key in ("cpu", "versions", "loadavg_start", "loadavg_end", "caveat", "elapsed_s"):
        assert key in meta, key

    limits = data["limits"]
    for framework in ("jax", "torch"):
        assert limits["matmul_peak_gflops"][framework] > 0
        assert len(limits["matmul"]["samples"][framework]["wall"]) == 2
        assert len(limits["read"]["samples"][framework]["wall"]) == 2
    assert limits["read_bandwidth_gbs"] > 0

    suites = data["suites"]
    assert list(suites) == list(CI_SUITES)

    (forward,) = suites["forward"]["cases"]
    assert forward["status"] == "ok", forward.get("traceback")
    assert set(forward["samples"]) == {"rosetta", "transformers"}
    assert all(len(s["wall"]) == 2 and len(s["cpu"]) == 2 for s in forward["samples"].values())
    assert len(forward["ratios"]["rosetta/transformers"]["paired"]) == 2
    rosetta = forward["variants"]["rosetta"]
    for key in ("time_s", "gflops_per_s", "fraction_of_matmul_peak", "items_per_s"):
        assert key in rosetta, key
    assert forward["work"]["flops"] > 0
    assert forward["check"]["max_abs_diff_last_hidden_state"] < 1e-3     # both ran the same weights

    load = {c["name"]: c for c in suites["load"]["cases"]}
    assert load["bert-load"]["status"] == "ok", load["bert-load"].get("traceback")
    assert "fraction_of_read_bandwidth" in load["bert-load"]["variants"]["rosetta"]
    memory = load["bert-load-memory"]
    assert memory["status"] == "ok", memory.get("traceback")
    assert set(memory["metrics"]["peak_rss_ratio"]) == {"reader", "model", "transformers"}

    compile_cases = {c["name"]: c for c in suites["compile"]["cases"]}
    scan = compile_cases["bert-compile"]
    assert scan["status"] == "ok", scan.get("traceback")
    assert len(scan["samples"]["scan"]["wall"]) == 2
    assert {"trace_s", "lower_s", "compile_s"} <= set(scan["check"]["scan"])
    assert len(scan["samples"]["unrolled"]["wall"]) == 2
    # Unrolled: one HLO body per layer, so a longer program; the same outputs.
    assert scan["check"]["unrolled"]["hlo_chars"] > 2 * scan["check"]["scan"]["hlo_chars"]
    assert scan["check"]["max_abs_diff_unrolled_vs_scan"] < 1e-5

    cases = {c["name"]: c for name in ("generate", "train") for c in suites[name]["cases"]}
    assert set(cases) == {"gpt2-decode", "gpt2-decode-batch2", "gpt2-train-step"}
    assert cases["gpt2-decode-batch2"]["check"]["tokens_identical"]
    assert cases["gpt2-decode-batch2"]["check"]["shape"] == [2, 16]
    assert cases["gpt2-decode"]["info"]["rosetta_compile"]["compile_s"] >= 0
    assert "Rosetta compile, apart from the timed runs" in (tmp_path / "out" / "bench.md").read_text()
    for name, case in cases.items():
        assert case["status"] == "ok", (name, case.get("traceback"))
        assert len(case["ratios"]) == len(case["variants"]) - 1, name      # every Rosetta variant vs the reference
    assert cases["gpt2-decode"]["check"]["tokens_identical"]
    assert cases["gpt2-decode"]["check"]["jax_read_bound_tok_per_s"] > 0
    assert cases["gpt2-decode"]["variants"]["rosetta"]["fraction_of_read_bandwidth"] > 0
    assert set(cases["gpt2-train-step"]["info"]["compile_s"]) == {"per_batch", "per_example"}

    text = (out / report.MD_NAME).read_text()
    for heading in ("# Rosetta benchmarks", "## Machine limits", "## forward", "### bert-forward",
                    "## load", "### bert-load-memory", "## compile", "## generate", "### gpt2-train-step"):
        assert heading in text, heading
    assert "| variant | median | min | max |" in text

    png = (out / report.PNG_NAME).read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 1000
