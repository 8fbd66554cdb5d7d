"""GPTBigCode (`model_type: gpt_bigcode`): config (JAX-free), canonical Flax modules, key map."""
from core.models.gpt_bigcode.config import GPTBigCodeConfig

__all__ = ["GPTBigCodeConfig"]
