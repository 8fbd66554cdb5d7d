"""PEGASUS-X configuration, importable without JAX. Fields and defaults are `transformers` v5's
`PegasusXConfig`."""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class PegasusXConfig(PretrainedConfig):
    model_type: ClassVar[str] = "pegasus_x"
    attribute_map: ClassVar[dict] = {"num_attention_heads": "encoder_attention_heads", "hidden_size": "d_model",
                                     "num_hidden_layers": "encoder_layers"}

    vocab_size: int = 96103
    max_position_embeddings: int = 16384
    encoder_layers: int = 16
    encoder_ffn_dim: int = 4096
    encoder_attention_heads: int = 16
    decoder_layers: int = 16
    decoder_ffn_dim: int = 4096
    decoder_attention_heads: int = 16
    encoder_layerdrop: float = 0.0
    decoder_layerdrop: float = 0.0
    use_cache: bool = True
    is_encoder_decoder: bool = True
    activation_function: str = "gelu"
    d_model: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    decoder_start_token_id: Optional[int] = 0
    scale_embedding: bool = True
    pad_token_id: Optional[int] = 0
    eos_token_id: Optional[int | tuple[int, ...]] = 1
    forced_eos_token_id: Optional[int | tuple[int, ...]] = 1
    num_global_tokens: int = 32
    block_size: int = 512
    stagger_local_blocks: bool = True
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_ffn_dim",
                    "decoder_ffn_dim", "encoder_attention_heads", "decoder_attention_heads", "num_global_tokens",
                    "block_size"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        for key in ("encoder_attention_heads", "decoder_attention_heads"):
            if self.d_model % getattr(self, key):
                self.fail(key, getattr(self, key), f"a divisor of d_model={self.d_model}")
        if self.d_model % 2 or self.d_model < 4:
            self.fail("d_model", self.d_model, "an even int >= 4 (sin | cos halves of the position table)")
        if self.stagger_local_blocks and self.block_size % 2:
            self.fail("block_size", self.block_size, "an even int when stagger_local_blocks (half-block shifts)")
        if self.activation_function not in ACTIVATIONS:
            self.fail("activation_function", self.activation_function, f"one of {list(ACTIVATIONS)}")
        for key in ("dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop", "decoder_layerdrop"):
            if not 0.0 <= getattr(self, key) < 1.0:
                self.fail(key, getattr(self, key), "a probability in [0, 1)")
        if not self.tie_word_embeddings:
            self.fail("tie_word_embeddings", self.tie_word_embeddings,
                      "true: Rosetta supports PEGASUS-X with lm_head and embed_tokens tied to shared (as published)")

    @property
    def embed_scale(self) -> float:
        return math.sqrt(self.d_model) if self.scale_embedding else 1.0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.decoder_attention_heads

    @property
    def max_input_length(self) -> int:
        """Sinusoidal positions are computed: no table, no hard limit."""
        return 2 ** 31 - 1
