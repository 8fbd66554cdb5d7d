"""Shared machinery for parity tests against `transformers` (the PyTorch reference).

The recipe every family follows: build the reference model from a tiny config with
non-default settings, give every weight a random value of a size that makes outputs O(1)
(so a 1e-5 difference means something), `save_pretrained` to a temp folder, load that
folder with Rosetta, run both on the same padded batch, and compare every output.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np
import torch

TOL = 1e-5


def randomize_(model: torch.nn.Module, seed: int = 0, std: float = 0.3) -> torch.nn.Module:
    """Every parameter gets fresh N(0, std) noise (norm scales 1 + noise), in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * std
            is_norm_scale = param.ndim == 1 and ("norm" in name.lower() or "ln" in name.lower()) and name.endswith("weight")
            param.copy_(1.0 + noise if is_norm_scale else noise)
    return model


def build_eager(hf_class, config, seed: int = 0) -> torch.nn.Module:
    """The reference model in eval mode with eager attention (the path that returns weights),
    every weight randomized (see `randomize_`)."""
    torch.manual_seed(seed)
    model = hf_class._from_config(config, attn_implementation="eager").eval()
    return randomize_(model, seed)


def padded_batch(vocab_size: int, batch: int = 3, length: int = 9, seed: int = 0,
                 pad_id: int = 0, min_length: int = 4) -> dict[str, np.ndarray]:
    """input_ids with right padding of different lengths and the matching attention mask."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab_size, size=(batch, length))
    mask = np.ones((batch, length), np.int64)
    for row in range(1, batch):
        n = int(rng.integers(min_length, length))
        mask[row, n:] = 0
        ids[row, n:] = pad_id
    return {"input_ids": ids.astype(np.int64), "attention_mask": mask}


def to_torch(inputs: dict) -> dict:
    return {k: torch.as_tensor(np.asarray(v)) for k, v in inputs.items()}


def max_abs(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b.detach().numpy() if isinstance(b, torch.Tensor) else b, np.float64)
    assert a.shape == b.shape, f"shape mismatch: ours {a.shape} vs reference {b.shape}"
    return float(np.max(np.abs(a - b))) if a.size else 0.0


@dataclasses.dataclass
class Comparison:
    diffs: dict[str, float]
    scales: dict[str, float] = dataclasses.field(default_factory=dict)   # max |reference| per output

    @property
    def worst_relative(self) -> float:
        return max((d / self.scales[k] if self.scales.get(k) else 0.0) for k, d in self.diffs.items())

    @property
    def worst(self) -> tuple[str, float]:
        return max(self.diffs.items(), key=lambda kv: kv[1])


def compare_outputs(ours: Any, theirs: Any, fields: Iterable[str]) -> Comparison:
    """Max-abs difference of each named output; tuples (per-layer) are compared layer by layer,
    padded positions included (both implementations compute them the same way)."""
    diffs, scales = {}, {}
    for field in fields:
        a, b = getattr(ours, field), getattr(theirs, field)
        assert (a is None) == (b is None), f"{field}: ours {type(a)} vs reference {type(b)}"
        if a is None:
            continue
        pairs = list(zip(a, b)) if isinstance(a, (tuple, list)) else [(a, b)]
        assert len(pairs) == (len(b) if isinstance(b, (tuple, list)) else 1), f"{field}: layer count differs"
        for i, (x, y) in enumerate(pairs):
            name = f"{field}[{i}]" if len(pairs) > 1 else field
            x = np.asarray(x)
            y = y.detach().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
            diffs[name] = max_abs(x, y)
            scales[name] = float(np.max(np.abs(np.asarray(y, np.float64)))) if np.size(y) else 0.0
    return Comparison(diffs, scales)


def assert_close(comparison: Comparison, tol: float = TOL, record=None, label: str = "") -> None:
    name, worst = comparison.worst
    if record is not None and label:
        record(f"parity:{label}", worst)
        record(f"parity-rel:{label}", comparison.worst_relative)
    bad = {k: v for k, v in comparison.diffs.items() if v > tol}
    assert not bad, f"{label}: outputs differ beyond {tol:g}: " + ", ".join(f"{k}={v:.3g}" for k, v in bad.items())


# Families whose ports get every check in CI; the others' port gradients, cached decoding and
# generation repeat the same runtime code and are `extended` (ROSETTA_FULL=1 runs them).
REPRESENTATIVE = frozenset({"bert", "gpt2", "llama", "t5", "bart", "vit"})


def extended_unless_representative(package: str) -> list:
    import pytest
    return [] if package in REPRESENTATIVE else [pytest.mark.extended]


def port_case_params(cases) -> list:
    """pytest params of the port tests' (package, model_type, task, overrides, extra) cases: every
    case of a representative family; of the others, each family's first head in CI and the rest
    `extended` (the same runtime code, another head)."""
    import pytest
    seen, params = set(), []
    for package, model_type, task, overrides, extra in cases:
        marks = [] if package not in seen else extended_unless_representative(package)
        seen.add(package)
        params.append(pytest.param(package, model_type, task, overrides, extra, marks=marks,
                                   id=f"{package}-{model_type}-{task}" + "".join(f"-{e}" for e in extra)))
    return params
