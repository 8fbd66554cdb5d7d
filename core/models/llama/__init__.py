"""LLaMA (`model_type: llama`): config (JAX-free), canonical Flax modules, key map."""
from core.models.llama.config import LlamaConfig

__all__ = ["LlamaConfig"]
