"""T5, mT5 and UMT5 (`model_type: t5 / mt5 / umt5`): configs (JAX-free), canonical Flax modules, key map."""
from core.models.t5.config import MT5Config, T5Config, UMT5Config

__all__ = ["MT5Config", "T5Config", "UMT5Config"]
