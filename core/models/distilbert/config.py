"""DistilBERT configuration (`model_type: distilbert`), importable without JAX.

Fields keep `transformers`' own spelling (`dim`, `n_layers`, `n_heads`, `hidden_dim`,
`activation`, `dropout`, ...), so a saved config.json round-trips; the BERT-style names
(`hidden_size`, `num_hidden_layers`, `num_attention_heads`) are read-only aliases, and are
accepted as input keys as `transformers`' `attribute_map` accepts them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistilBertConfig(PretrainedConfig):
    model_type: ClassVar[str] = "distilbert"
    attribute_map: ClassVar[Mapping[str, str]] = {
        "hidden_size": "dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
    }

    vocab_size: int = 30522
    max_position_embeddings: int = 512
    # Only changes how `transformers` initialises the position table; the table is a weight
    # in every checkpoint either way, and is read from there.
    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 4 * 768
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    initializer_range: float = 0.02
    qa_dropout: float = 0.1
    seq_classif_dropout: float = 0.2
    pad_token_id: Optional[int] = 0
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "max_position_embeddings", "n_layers", "n_heads", "dim", "hidden_dim"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.dim % self.n_heads:
            self.fail("dim", self.dim, f"a multiple of n_heads={self.n_heads}")
        if self.activation not in ACTIVATIONS:
            self.fail("activation", self.activation, f"one of {list(ACTIVATIONS)}")
        for key in ("dropout", "attention_dropout", "qa_dropout", "seq_classif_dropout"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        # The base class writes fields that the source did not name under their alias
        # (`hidden_size`); DistilBERT's own spelling is the field name (`dim`), so keep it.
        out = super().to_dict()
        return {(key if key in self.source_keys else self.attribute_map.get(key, key)): value
                for key, value in out.items()}

    # -- BERT-style names, read-only ----------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.dim

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers

    @property
    def num_attention_heads(self) -> int:
        return self.n_heads

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def layer_norm_eps(self) -> float:
        """Fixed in `transformers` (every DistilBERT LayerNorm uses eps=1e-12); not a config key."""
        return 1e-12
