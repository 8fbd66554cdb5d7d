"""GPT-2 (`model_type: gpt2`): config (JAX-free), canonical Flax modules, key map."""
from core.models.gpt2.config import GPT2Config

__all__ = ["GPT2Config"]
