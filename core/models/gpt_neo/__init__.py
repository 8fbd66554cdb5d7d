"""GPT-Neo (`model_type: gpt_neo`): config (JAX-free), canonical Flax modules, key map."""
from core.models.gpt_neo.config import GPTNeoConfig

__all__ = ["GPTNeoConfig"]
