"""RoBERTa configurations (`model_type: roberta`, `xlm-roberta`, `camembert`), importable without JAX.

The three share one architecture; `transformers` gives each its own config class, which differ
only in `model_type` and the default `vocab_size`. The fields are the ones BERT's modules read
(the encoder is BERT's, reused by import), so a RoBERTa config can drive them directly.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class RobertaConfig(PretrainedConfig):
    model_type: ClassVar[str] = "roberta"

    vocab_size: int = 50265
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
    pad_token_id: Optional[int] = 1
    bos_token_id: Optional[int] = 0
    eos_token_id: Optional[int | tuple[int, ...]] = 2
    use_cache: bool = True
    classifier_dropout: Optional[float] = None
    is_decoder: bool = False
    add_cross_attention: bool = False

    def validate(self):
        super().validate()
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size,
                      f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        # Position ids are counted from the padding token: pads sit at `pad_token_id`, real
        # tokens at pad_token_id + 1, + 2, ...; so the id must exist in both embedding tables
        # and leave at least one position free.
        if self.pad_token_id is None:
            self.fail("pad_token_id", None, "an int: RoBERTa derives position ids from the padding token")
        if not 0 <= self.pad_token_id < self.vocab_size:
            self.fail("pad_token_id", self.pad_token_id, f"an id in [0, vocab_size={self.vocab_size})")
        if self.max_position_embeddings < self.pad_token_id + 2:
            self.fail("max_position_embeddings", self.max_position_embeddings,
                      f"at least pad_token_id + 2 = {self.pad_token_id + 2} (positions start after the "
                      "padding index)")
        if self.is_decoder or self.add_cross_attention:
            self.fail("is_decoder", self.is_decoder,
                      "false: Rosetta's RoBERTa family is encoder-only (no decoder / cross-attention)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def classifier_dropout_rate(self) -> float:
        return self.hidden_dropout_prob if self.classifier_dropout is None else self.classifier_dropout

    @property
    def max_input_length(self) -> int:
        """The longest input: positions run pad_token_id + 1 .. max_position_embeddings - 1."""
        return self.max_position_embeddings - self.pad_token_id - 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class XLMRobertaConfig(RobertaConfig):
    model_type: ClassVar[str] = "xlm-roberta"

    vocab_size: int = 30522


@dataclasses.dataclass(frozen=True, kw_only=True)
class CamembertConfig(RobertaConfig):
    model_type: ClassVar[str] = "camembert"

    vocab_size: int = 30522
