"""BLOOM (`model_type: bloom`): config (JAX-free), canonical Flax modules, key map."""
from core.models.bloom.config import BloomConfig

__all__ = ["BloomConfig"]
