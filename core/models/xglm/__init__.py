"""XGLM (`model_type: xglm`): config (JAX-free), canonical Flax modules, key map."""
from core.models.xglm.config import XGLMConfig

__all__ = ["XGLMConfig"]
