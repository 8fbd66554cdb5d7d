"""Check an exported Hugging Face folder the way a user would use it elsewhere: load it in JAX,
in the PyTorch port and in `transformers`, run the same batch, and report how far each is from
JAX. The trainer runs this after exporting (`config.export_check`), so every finished run says
whether its folder means the same thing in all three.
"""
from __future__ import annotations

import pathlib
from typing import Mapping

import numpy as np
from absl import logging

from core import registry
from core.checkpoint.loading import read_config

# The output each task's comparison reads.
_TASK_OUTPUT = {"causal-lm": "logits", "masked-lm": "logits", "sequence-classification": "logits"}


def _main_output(output, task: str) -> np.ndarray:
    value = getattr(output, _TASK_OUTPUT.get(task, "last_hidden_state"))
    if hasattr(value, "detach"):
        value = value.detach().numpy()
    return np.asarray(value, np.float32)


def compare_export(folder, task: str, batch: Mapping[str, np.ndarray]) -> dict[str, object]:
    """{"jax_scale": max |JAX output|, "torch_port": max-abs diff, "transformers": max-abs
    diff}. A framework that is not installed is reported as a string saying so, not skipped
    silently. `batch` holds the model's inputs (input_ids, attention_mask, ...) as numpy."""
    from core.modeling import PretrainedModel

    folder = pathlib.Path(folder)
    config = read_config(folder)
    family = registry.family(config.model_type)
    inputs = {k: np.asarray(v) for k, v in batch.items()}
    reference = _main_output(PretrainedModel.from_pretrained(folder, task=task)(**inputs), task)
    mask = inputs.get("attention_mask")
    # Padded positions carry no meaning in any framework: compare real tokens only.
    keep = (np.ones(reference.shape[:2], bool) if mask is None or reference.ndim < 3
            else np.asarray(mask, bool))

    def diff(other: np.ndarray) -> float:
        if other.shape != reference.shape:
            raise ValueError(f"{folder}: output shape {other.shape} differs from JAX's {reference.shape}")
        return float(np.max(np.abs(other[keep] - reference[keep]))) if keep.any() else 0.0

    result: dict[str, object] = {"jax_scale": float(np.max(np.abs(reference[keep])))}
    try:
        import torch
    except ImportError:
        result["torch_port"] = result["transformers"] = "torch is not installed"
        return result
    torch_inputs = {k: torch.from_numpy(v.astype(np.int64) if np.issubdtype(v.dtype, np.integer) else v)
                    for k, v in inputs.items()}
    from ports.torch import model_class

    port = model_class(config.model_type, task).from_pretrained(folder)
    with torch.no_grad():
        result["torch_port"] = diff(_main_output(port(**torch_inputs), task))
    try:
        import transformers
    except ImportError:
        result["transformers"] = "transformers is not installed (pip install transformers)"
        return result
    hf_class = getattr(transformers, family.heads[task][1])
    hf_model = hf_class.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        result["transformers"] = diff(_main_output(hf_model(**torch_inputs), task))
    logging.info("export check of %s: %s", folder, result)
    return result


def format_check(result: Mapping[str, object]) -> str:
    parts = [f"|JAX output| ≤ {result['jax_scale']:.3g}"]
    for name in ("torch_port", "transformers"):
        value = result.get(name)
        label = "PyTorch port" if name == "torch_port" else "transformers"
        parts.append(f"{label} max |diff| {value:.2e}" if isinstance(value, float) else f"{label}: {value}")
    return "; ".join(parts)
