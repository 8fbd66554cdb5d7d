"""The parity report: every registered model × head × framework against its references.

    python -m scripts.parity_report                  # all families, both ports (tens of minutes on 2 cores)
    python -m scripts.parity_report bert gpt2        # some families
    python -m scripts.parity_report --from-log FILE  # re-render a previous run's measurements

Runs the parity tests (`tests/test_<family>.py`: the JAX model against `transformers`;
`tests/test_torch_port.py` and `tests/test_tf_port.py`: each port against JAX and `transformers`)
under pytest, collects the difference every comparison recorded (the `parity:` / `parity-rel:`
properties of `tests/parity.py:assert_close`) and writes `reports/parity/`:

- `parity.md`: one row per model × head × framework × reference: max-abs, max-rel (max-abs over
  the largest reference value of the worst output), tolerance, pass;
- `parity.json`: the same rows;
- `parity.png`: max-abs per model and framework on a log scale, with the tolerance line.

It prints the summary table and exits non-zero when a row fails or a test fails. Measurements
come only from the tests' own comparisons, so the report and CI can never disagree.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "parity"
TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-5       # relative, see tests/test_torch_port.py:gradient_error


def families() -> list[str]:
    from core import registry
    packages = sorted({f.modeling.split(".")[2] for f in registry.FAMILIES.values()})
    return [p for p in packages if (ROOT / "tests" / f"test_{p}.py").exists()]


def run_tests(packages: list[str], log: pathlib.Path, workers: int) -> int:
    tests = [f"tests/test_{p}.py" for p in packages]
    selection = " or ".join(packages)
    env = {**os.environ, "ROSETTA_PARITY_LOG": str(log)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests,
               "tests/test_torch_port.py", "tests/test_tf_port.py", "-k", selection]
    if workers > 1:
        command += ["-n", str(workers)]
    print("$", " ".join(command), file=sys.stderr)
    return subprocess.run(command, cwd=ROOT, env=env).returncode


_LABEL = re.compile(r"^(?:(?P<port>torch|tf) port of )?(?P<model>[\w\-. ]+?)(?: (?P<what>gradients))? vs "
                    r"(?P<reference>[\w\-. ]+?)(?: \((?P<note>relative)\))?$")


def _head(nodeid: str) -> str:
    """The parametrisation of a test id: `tests/test_bert.py::test_x[masked-lm-0]` → `masked-lm-0`."""
    name = nodeid.split("::")[-1]
    return name[name.index("[") + 1:-1] if "[" in name else name


def rows_from_log(log: pathlib.Path) -> tuple[list[dict], list[str]]:
    """(rows, failed test ids) from the JSON lines the test run wrote."""
    rows, failed = {}, []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record["outcome"] != "passed":
            failed.append(record["test"])
        values = collections.defaultdict(dict)
        for name, value in record["properties"]:
            kind, label = name.split(":", 1)
            values[label]["rel" if kind == "parity-rel" else "abs"] = value
        for label, measured in values.items():
            match = _LABEL.match(label)
            port, model, what, reference = (match.group("port"), match.group("model"), match.group("what"),
                                             match.group("reference")) if match else (None, label, None, "?")
            framework = port or "jax"
            gradient = what == "gradients"
            key = (model, _head(record["test"]) if not gradient else "gradients", framework, reference)
            row = rows.setdefault(key, {"model": model, "head": key[1], "framework": framework,
                                        "reference": reference, "max_abs": 0.0, "max_rel": 0.0,
                                        "tolerance": GRADIENT_TOLERANCE if gradient else TOLERANCE,
                                        "measure": "relative" if gradient else "abs", "tests": []})
            if gradient:
                row["max_rel"] = max(row["max_rel"], measured.get("abs", 0.0))
            else:
                row["max_abs"] = max(row["max_abs"], measured.get("abs", 0.0))
                row["max_rel"] = max(row["max_rel"], measured.get("rel", 0.0))
            row["tests"].append(record["test"])
    out = []
    for row in sorted(rows.values(), key=lambda r: (r["model"], r["framework"], r["reference"], r["head"])):
        value = row["max_rel"] if row["measure"] == "relative" else row["max_abs"]
        row["pass"] = value <= row["tolerance"] and not any(t in failed for t in row["tests"])
        out.append(row)
    return out, failed


def markdown(rows: list[dict], failed: list[str]) -> str:
    lines = ["# Parity report", "",
             f"{len(rows)} comparisons, {sum(r['pass'] for r in rows)} within tolerance; float32, "
             "`jax_default_matmul_precision=\"highest\"`, tiny random configs with O(1) weights. max-rel is "
             "max-abs over the largest reference value of that output (gradients: relative per leaf).", "",
             "| model | head | framework | reference | max-abs | max-rel | tolerance | pass |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tol = f"{r['tolerance']:.0e}" + (" (rel)" if r["measure"] == "relative" else "")
        abs_text = "—" if r["measure"] == "relative" else f"{r['max_abs']:.2e}"
        lines.append(f"| {r['model']} | {r['head']} | {r['framework']} | {r['reference']} | {abs_text} | "
                     f"{r['max_rel']:.2e} | {tol} | {'yes' if r['pass'] else '**NO**'} |")
    if failed:
        lines += ["", "Failed tests:", *[f"- `{t}`" for t in failed]]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    worst = collections.defaultdict(float)
    for r in rows:
        if r["measure"] == "abs":
            worst[(r["model"], r["framework"])] = max(worst[(r["model"], r["framework"])], r["max_abs"])
    models = sorted({m for m, _ in worst})
    frameworks = ["jax", "torch", "tf"]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(models) + 2), 4))
    width = 0.8 / len(frameworks)
    for i, framework in enumerate(frameworks):
        xs = [j + i * width for j, m in enumerate(models) if (m, framework) in worst]
        ys = [max(worst[(m, framework)], 1e-9) for m in models if (m, framework) in worst]
        ax.bar(xs, ys, width, label=framework)
    ax.axhline(TOLERANCE, color="red", linestyle="--", label="tolerance 1e-5")
    ax.set_yscale("log")
    ax.set_xticks([j + width for j in range(len(models))], models, rotation=45, ha="right")
    ax.set_ylabel("max-abs difference (worst head)")
    ax.set_title("Rosetta parity: worst max-abs per model and framework")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(rows: list[dict], failed: list[str], out: pathlib.Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "parity.md").write_text(markdown(rows, failed))
    (out / "parity.json").write_text(json.dumps({"tolerance": TOLERANCE, "rows": rows, "failed_tests": failed},
                                                indent=1))
    plot(rows, out / "parity.png")


def summary(rows: list[dict]) -> str:
    worst = collections.defaultdict(float)
    for r in rows:
        if r["measure"] == "abs":
            key = (r["model"], r["framework"], r["reference"])
            worst[key] = max(worst[key], r["max_abs"])
    lines = [f"{'model':<22}{'framework':<10}{'reference':<16}max-abs"]
    lines += [f"{m:<22}{f:<10}{ref:<16}{v:.2e}" for (m, f, ref), v in sorted(worst.items())]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*", help="family packages (default: every tested family)")
    parser.add_argument("--from-log", type=pathlib.Path, help="render the JSON-lines log of an earlier run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args(argv)
    status = 0
    if args.from_log:
        log = args.from_log
    else:
        known = families()
        unknown = sorted(set(args.families) - set(known))
        if unknown:
            parser.error(f"no tested family {unknown}; known: {', '.join(known)}")
        log = pathlib.Path(tempfile.mkstemp(suffix=".jsonl", prefix="parity-")[1])
        status = run_tests(args.families or known, log, args.workers)
    rows, failed = rows_from_log(log)
    if not rows:
        print("no parity measurements were recorded", file=sys.stderr)
        return 1
    write(rows, failed, args.out)
    print(summary(rows))
    print(f"\n{len(rows)} comparisons, {sum(r['pass'] for r in rows)} within tolerance; "
          f"written to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 1 if status or failed or not all(r["pass"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
