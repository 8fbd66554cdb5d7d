"""T5, mT5, UMT5 and LongT5 (`model_type: t5 / mt5 / umt5 / longt5`): configs (JAX-free), canonical
Flax modules, key map."""
from core.models.t5.config import LongT5Config, MT5Config, T5Config, UMT5Config

__all__ = ["LongT5Config", "MT5Config", "T5Config", "UMT5Config"]
