"""BioGPT (`model_type: biogpt`): config (JAX-free), canonical Flax modules, key map."""
from core.models.biogpt.config import BioGptConfig

__all__ = ["BioGptConfig"]
