"""OPT configuration (`model_type: opt`), importable without JAX.

Fields and defaults are `transformers` v5's `OPTConfig` (its spelling: `ffn_dim`, `init_std`,
`enable_bias`, `do_layer_norm_before`, `_remove_final_layer_norm`, ...). `transformers` fills
`word_embed_proj_dim` with `hidden_size` when unset; `proj_dim` reads it that way.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class OPTConfig(PretrainedConfig):
    model_type: ClassVar[str] = "opt"

    vocab_size: int = 50272
    hidden_size: int = 768
    num_hidden_layers: int = 12
    ffn_dim: int = 3072
    max_position_embeddings: int = 2048
    do_layer_norm_before: bool = True
    # OPT-350m's checkpoints were converted without the final LayerNorm.
    _remove_final_layer_norm: bool = False
    word_embed_proj_dim: Optional[int] = None
    dropout: float = 0.1
    attention_dropout: float = 0.0
    num_attention_heads: int = 12
    activation_function: str = "relu"
    layerdrop: float = 0.0
    init_std: float = 0.02
    use_cache: bool = True
    pad_token_id: Optional[int] = 1
    bos_token_id: Optional[int] = 2
    eos_token_id: Optional[int | tuple[int, ...]] = 2
    enable_bias: bool = True
    layer_norm_elementwise_affine: bool = True
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "ffn_dim", "max_position_embeddings",
                    "num_attention_heads"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.word_embed_proj_dim is not None and self.word_embed_proj_dim < 1:
            self.fail("word_embed_proj_dim", self.word_embed_proj_dim, "null (hidden_size) or a positive int")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size, f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.activation_function not in ACTIVATIONS:
            self.fail("activation_function", self.activation_function, f"one of {list(ACTIVATIONS)}")
        for key in ("dropout", "attention_dropout"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        if self.layerdrop != 0.0:
            self.fail("layerdrop", self.layerdrop,
                      "0.0: Rosetta's OPT does not skip layers at random in training (LayerDrop)")

    # -- derived -------------------------------------------------------------------------------
    @property
    def proj_dim(self) -> int:
        """The width of the token embeddings and the LM head (`word_embed_proj_dim`, else hidden_size)."""
        return self.hidden_size if self.word_embed_proj_dim is None else self.word_embed_proj_dim

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def has_final_layer_norm(self) -> bool:
        return self.do_layer_norm_before and not self._remove_final_layer_norm
