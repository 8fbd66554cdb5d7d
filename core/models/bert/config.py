"""BERT configuration (`model_type: bert`), importable without JAX."""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class BertConfig(PretrainedConfig):
    model_type: ClassVar[str] = "bert"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: Optional[int] = 0
    classifier_dropout: Optional[float] = None
    is_decoder: bool = False
    add_cross_attention: bool = False
    use_cache: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.type_vocab_size < 0:
            self.fail("type_vocab_size", self.type_vocab_size, "an int >= 0")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size,
                      f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        position_type = self.extra.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            self.fail("position_embedding_type", position_type,
                      "'absolute' (transformers v5 dropped relative_key / relative_key_query for BERT)")
        if self.is_decoder or self.add_cross_attention:
            self.fail("is_decoder", self.is_decoder,
                      "false: Rosetta's BERT family is encoder-only (no decoder / cross-attention)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def classifier_dropout_rate(self) -> float:
        return self.hidden_dropout_prob if self.classifier_dropout is None else self.classifier_dropout
