"""ALBERT configuration (`model_type: albert`), importable without JAX."""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlbertConfig(PretrainedConfig):
    model_type: ClassVar[str] = "albert"

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 4096
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1
    num_attention_heads: int = 64
    intermediate_size: int = 16384
    inner_group_num: int = 1
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    classifier_dropout_prob: float = 0.1
    pad_token_id: Optional[int] = 0
    bos_token_id: Optional[int] = 2
    eos_token_id: Optional[int | tuple[int, ...]] = 3
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_hidden_groups",
                    "num_attention_heads", "intermediate_size", "inner_group_num", "max_position_embeddings"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.type_vocab_size < 0:
            self.fail("type_vocab_size", self.type_vocab_size, "an int >= 0")
        if self.hidden_size % self.num_attention_heads:
            # transformers builds such a model but its attention output cannot feed `dense`.
            self.fail("hidden_size", self.hidden_size,
                      f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.num_hidden_groups > self.num_hidden_layers:
            # Groups past the last layer would never run: their weights could be neither
            # initialised nor checked (Flax creates params only for modules that are called).
            self.fail("num_hidden_groups", self.num_hidden_groups,
                      f"at most num_hidden_layers={self.num_hidden_layers} (every group must be used "
                      "by at least one layer; Rosetta does not keep unused groups)")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def group_of_layer(self, layer: int) -> int:
        """The parameter group layer `layer` runs, computed exactly as `transformers` does
        (`int(i / (num_hidden_layers / num_hidden_groups))`, float division included)."""
        return int(layer / (self.num_hidden_layers / self.num_hidden_groups))
