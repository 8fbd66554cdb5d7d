"""Text generation for causal LMs: `CausalLMModel.generate` and its `GenerationConfig`.

`GenerationConfig` imports without JAX; `CausalLMModel` (JAX) is resolved on first use.
"""
import importlib

from core.generation.config import GenerationConfig

_LAZY = {"CausalLMModel": "core.generation.model"}

__all__ = ["CausalLMModel", "GenerationConfig"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'core.generation' has no attribute {name!r}")
