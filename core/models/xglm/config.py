"""XGLM configuration (`model_type: xglm`), importable without JAX.

Fields keep `transformers`' own spelling (`d_model`, `num_layers`, `attention_heads`,
`ffn_dim`, ...), so a saved config.json round-trips; the generic names are read-only aliases,
accepted as input keys as `transformers`' `attribute_map` accepts them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class XGLMConfig(PretrainedConfig):
    model_type: ClassVar[str] = "xglm"
    attribute_map: ClassVar[Mapping[str, str]] = {
        "num_attention_heads": "attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "num_layers",
    }

    vocab_size: int = 256008
    max_position_embeddings: int = 2048
    d_model: int = 1024
    ffn_dim: int = 4096
    num_layers: int = 24
    attention_heads: int = 16
    activation_function: str = "gelu"
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    # LayerDrop skips whole layers at random in training; Rosetta does not implement it.
    layerdrop: float = 0.0
    init_std: float = 0.02
    scale_embedding: bool = True
    use_cache: bool = True
    decoder_start_token_id: int = 2
    pad_token_id: Optional[int] = 1
    bos_token_id: Optional[int] = 0
    eos_token_id: Optional[int | tuple[int, ...]] = 2
    add_cross_attention: bool = False
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "max_position_embeddings", "d_model", "ffn_dim", "num_layers", "attention_heads"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.d_model % self.attention_heads:
            self.fail("d_model", self.d_model, f"a multiple of attention_heads={self.attention_heads}")
        if self.d_model < 4:
            self.fail("d_model", self.d_model, "at least 4 (the sinusoidal table needs two frequencies)")
        if self.activation_function not in ACTIVATIONS:
            self.fail("activation_function", self.activation_function, f"one of {list(ACTIVATIONS)}")
        for key in ("dropout", "attention_dropout", "activation_dropout"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        if self.layerdrop != 0.0:
            self.fail("layerdrop", self.layerdrop, "0.0: Rosetta does not implement LayerDrop (it only changes "
                      "training; set it to 0 to fine-tune without it)")
        if self.add_cross_attention:
            self.fail("add_cross_attention", self.add_cross_attention,
                      "false: Rosetta's XGLM is decoder-only (no cross-attention to an encoder)")

    def to_dict(self) -> dict[str, Any]:
        # Keep XGLM's own spelling (`d_model`) for fields the source did not name.
        out = super().to_dict()
        return {(key if key in self.source_keys else self.attribute_map.get(key, key)): value
                for key, value in out.items()}

    # -- generic names, read-only ---------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_hidden_layers(self) -> int:
        return self.num_layers

    @property
    def num_attention_heads(self) -> int:
        return self.attention_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.attention_heads
