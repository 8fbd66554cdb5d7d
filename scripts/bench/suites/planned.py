"""Registration points for suites that later issues fill in: `generate`, `seq2seq`, `train`,
`ports`. Each checks whether what it would measure exists in this checkout and, until its
cases are written, raises `NotAvailable` saying what is missing — no numbers are invented.
When the issue lands, replace the body with real cases (see forward.py for the pattern).
"""
from __future__ import annotations

import importlib.util
import pathlib

from scripts.bench.registry import Context, NotAvailable, suite

REPO = pathlib.Path(__file__).resolve().parents[3]


def _families() -> set[str]:
    from core import registry as core_registry

    return set(core_registry.FAMILIES)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _not_available(missing: list[str], what: str):
    if missing:
        raise NotAvailable("; ".join(missing))
    raise NotAvailable(f"{what}: present in this checkout, but this suite's cases are not written yet "
                       "(registration point in scripts/bench/suites/planned.py)")


@suite("generate", "greedy decoding tokens/s: Rosetta jit generate vs transformers (GPT-2 124M)")
def generate(ctx: Context):
    missing = []
    if "gpt2" not in _families():
        missing.append("GPT-2 ('gpt2') is not in core/registry.py FAMILIES")
    if not (_module_exists("core.generation") or _module_exists("core.generate")):
        missing.append("core has no generation module (core/generation.py)")
    _not_available(missing, "GPT-2 and a generation module")


@suite("seq2seq", "encoder-decoder generation (T5 / BART) vs transformers")
def seq2seq(ctx: Context):
    families = _families() & {"t5", "bart", "mbart", "marian", "pegasus"}
    missing = [] if families else ["no encoder-decoder family (t5, bart, ...) in core/registry.py FAMILIES"]
    _not_available(missing, f"encoder-decoder families {sorted(families)}")


@suite("train", "training step throughput (forward + backward + optimizer) vs transformers")
def train(ctx: Context):
    candidates = ("core.training", "core.train", "experiments.train")
    missing = [] if any(_module_exists(m) for m in candidates) else [
        f"no training-step module in this checkout (looked for {', '.join(candidates)})"]
    _not_available(missing, "a training-step module")


@suite("ports", "generated PyTorch / TensorFlow ports vs the canonical JAX model and transformers")
def ports(ctx: Context):
    missing = []
    for framework in ("torch", "tf"):
        root = REPO / "ports" / framework
        generated = [p.name for p in root.iterdir() if p.is_dir() and p.name not in ("runtime", "__pycache__")] \
            if root.is_dir() else []
        if not generated:
            missing.append(f"no generated model modules under ports/{framework} (only the hand-written runtime, if any)")
    _not_available(missing, "generated ports")
