"""PEGASUS-X (`model_type: pegasus_x`): config (JAX-free), canonical Flax modules, key map."""
from core.models.pegasus_x.config import PegasusXConfig

__all__ = ["PegasusXConfig"]
