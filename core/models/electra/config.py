"""ELECTRA configuration (`model_type: electra`), importable without JAX.

The encoder is BERT's (reused by import), so the fields BERT's modules read are here with the
same names; ELECTRA adds `embedding_size` (the embeddings may be narrower than the encoder and
are then projected) and the `summary_*` keys of the multiple-choice head's sequence summary.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig

SUMMARY_TYPES = ("first", "last", "mean", "cls_index")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ElectraConfig(PretrainedConfig):
    model_type: ClassVar[str] = "electra"

    vocab_size: int = 30522
    embedding_size: int = 128
    hidden_size: int = 256
    num_hidden_layers: int = 12
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    summary_type: str = "first"
    summary_use_proj: bool = True
    summary_activation: str = "gelu"
    summary_last_dropout: float = 0.1
    pad_token_id: Optional[int] = 0
    use_cache: bool = True
    classifier_dropout: Optional[float] = None
    is_decoder: bool = False
    add_cross_attention: bool = False

    def validate(self):
        super().validate()
        for key in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
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
        # transformers applies no activation for an empty summary_activation.
        if self.summary_activation and self.summary_activation not in ACTIVATIONS:
            self.fail("summary_activation", self.summary_activation, f"\"\" (none) or one of {list(ACTIVATIONS)}")
        if self.summary_type not in SUMMARY_TYPES:
            self.fail("summary_type", self.summary_type,
                      f"one of {list(SUMMARY_TYPES)} ('attn' is not implemented in transformers either)")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout",
                    "summary_last_dropout"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        first = self.summary_first_dropout
        if isinstance(first, bool) or not isinstance(first, (int, float)) or not 0.0 <= first < 1.0:
            self.fail("summary_first_dropout", self.summary_first_dropout, "a probability in [0, 1)")
        if self.is_decoder or self.add_cross_attention:
            self.fail("is_decoder", self.is_decoder,
                      "false: Rosetta's ELECTRA family is encoder-only (no ElectraForCausalLM / cross-attention)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def classifier_dropout_rate(self) -> float:
        return self.hidden_dropout_prob if self.classifier_dropout is None else self.classifier_dropout

    # `transformers` reads these two with `hasattr(config, ...)`: they are not ElectraConfig
    # fields, but a config.json may carry them (they land in `extra`).
    @property
    def summary_first_dropout(self) -> float:
        return self.extra.get("summary_first_dropout", 0.0)

    @property
    def summary_features(self) -> int:
        """Width of the sequence summary's projection (`summary_proj_to_labels` → num_labels)."""
        if self.extra.get("summary_proj_to_labels", False) and self.num_labels > 0:
            return self.num_labels
        return self.hidden_size
