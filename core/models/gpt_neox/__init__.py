"""GPT-NeoX (`model_type: gpt_neox`): config (JAX-free), canonical Flax modules, key map."""
from core.models.gpt_neox.config import GPTNeoXConfig

__all__ = ["GPTNeoXConfig"]
