"""OPT (`model_type: opt`): config (JAX-free), canonical Flax modules, key map."""
from core.models.opt.config import OPTConfig

__all__ = ["OPTConfig"]
