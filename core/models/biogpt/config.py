"""BioGPT configuration (`model_type: biogpt`), importable without JAX.

Fields and defaults are `transformers` v5's `BioGptConfig`. Note `layer_norm_eps` is kept for
the round trip but, as in `transformers`, not used: BioGPT's LayerNorms use torch's default
epsilon (1e-5).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class BioGptConfig(PretrainedConfig):
    model_type: ClassVar[str] = "biogpt"

    vocab_size: int = 42384
    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 1024
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    scale_embedding: bool = True
    use_cache: bool = True
    # LayerDrop skips whole layers at random in training; Rosetta does not implement it.
    layerdrop: float = 0.0
    activation_dropout: float = 0.0
    pad_token_id: Optional[int] = 1
    bos_token_id: Optional[int] = 0
    eos_token_id: Optional[int | tuple[int, ...]] = 2
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "max_position_embeddings"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size,
                      f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "activation_dropout"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        if self.layerdrop != 0.0:
            self.fail("layerdrop", self.layerdrop, "0.0: Rosetta does not implement LayerDrop (it only changes "
                      "training; set it to 0 to fine-tune without it)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def classifier_dropout(self) -> float:
        """The token classifier's dropout: `classifier_dropout` when config.json sets it (a key
        `transformers` reads if present), else `hidden_dropout_prob`."""
        value = self.extra.get("classifier_dropout")
        return self.hidden_dropout_prob if value is None else value
