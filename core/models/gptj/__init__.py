"""GPT-J (`model_type: gptj`): config (JAX-free), canonical Flax modules, key map.
CodeGen (`core.models.codegen`) runs on the same modules."""
from core.models.gptj.config import GPTJConfig

__all__ = ["GPTJConfig"]
