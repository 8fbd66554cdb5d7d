"""Falcon (`model_type: falcon`): config (JAX-free), canonical Flax modules, key map."""
from core.models.falcon.config import FalconConfig

__all__ = ["FalconConfig"]
