"""Text generation for causal LMs: `CausalLMModel.generate` and its `GenerationConfig`;
`TextStreamer` prints the text as it is generated (`generate(..., streamer=...)`).

`GenerationConfig` imports without JAX; `CausalLMModel` (JAX) is resolved on first use.
"""
import importlib

from core.generation.config import GenerationConfig
from core.generation.streaming import TextStreamer

_LAZY = {"CausalLMModel": "core.generation.model", "Seq2SeqLMModel": "core.generation.seq2seq"}

__all__ = ["CausalLMModel", "GenerationConfig", "Seq2SeqLMModel", "TextStreamer"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'core.generation' has no attribute {name!r}")
