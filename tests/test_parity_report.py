"""`scripts/parity_report.py` renders the tests' recorded differences into reports/parity (a real run
of every family takes tens of minutes: here the rendering runs on a recorded log, and one small
family runs end to end)."""
import json
import subprocess
import sys

from scripts import parity_report as R

LOG = [
    {"test": "tests/test_bert.py::test_parity_with_transformers[masked-lm-0]", "outcome": "passed",
     "properties": [["parity:bert vs transformers", 3e-6], ["parity-rel:bert vs transformers", 1e-6]]},
    {"test": "tests/test_torch_port.py::test_port_matches_jax_and_transformers[bert-bert-masked-lm]",
     "outcome": "passed", "properties": [["parity:torch port of bert vs jax", 4e-6],
                                         ["parity-rel:torch port of bert vs jax", 2e-6]]},
    {"test": "tests/test_tf_port.py::test_gradients_match_jax[bert]", "outcome": "passed",
     "properties": [["parity:tf port of bert gradients vs jax (relative)", 2e-6]]},
    {"test": "tests/test_gpt2.py::test_parity_with_transformers[base-0]", "outcome": "failed",
     "properties": [["parity:gpt2 vs transformers", 3e-4], ["parity-rel:gpt2 vs transformers", 1e-4]]},
]


def test_report_rows_markdown_json_and_plot(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in LOG))
    rows, failed = R.rows_from_log(log)
    by = {(r["model"], r["framework"], r["head"]): r for r in rows}
    assert by[("bert", "jax", "masked-lm-0")]["max_abs"] == 3e-6 and by[("bert", "jax", "masked-lm-0")]["pass"]
    assert by[("bert", "torch", "bert-bert-masked-lm")]["reference"] == "jax"
    gradients = by[("bert", "tf", "gradients")]
    assert gradients["measure"] == "relative" and gradients["max_rel"] == 2e-6 and gradients["pass"]
    assert not by[("gpt2", "jax", "base-0")]["pass"] and failed == [LOG[-1]["test"]]
    R.write(rows, failed, tmp_path / "out")
    text = (tmp_path / "out" / "parity.md").read_text()
    assert "| gpt2 | base-0 | jax | transformers | 3.00e-04 | 1.00e-04 | 1e-05 | **NO** |" in text
    assert json.loads((tmp_path / "out" / "parity.json").read_text())["rows"][0]["model"] == "bert"
    assert (tmp_path / "out" / "parity.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_renders_a_log_and_fails_on_a_failing_row(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in LOG[:3]))
    ok = subprocess.run([sys.executable, "-m", "scripts.parity_report", "--from-log", str(log), "--out",
                         str(tmp_path / "ok")], cwd=R.ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "3 comparisons, 3 within tolerance" in ok.stdout
    log.write_text("".join(json.dumps(r) + "\n" for r in LOG))
    bad = subprocess.run([sys.executable, "-m", "scripts.parity_report", "--from-log", str(log), "--out",
                          str(tmp_path / "bad")], cwd=R.ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
