"""ViT / DeiT / ViT-MSN configurations (`model_type` vit, deit, vit_msn), importable without JAX.

Fields and defaults as `transformers` v5's ViTConfig, DeiTConfig and ViTMSNConfig.
`image_size` / `patch_size` may be an int (square) or a (height, width) pair.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ViTMSNConfig(PretrainedConfig):
    """The shared fields (ViT-MSN has no pooler and no masked-image-modeling decoder)."""
    model_type: ClassVar[str] = "vit_msn"
    # [CLS] (+ DeiT's distillation token) before the patches.
    num_special_tokens: ClassVar[int] = 1
    has_pooler: ClassVar[bool] = False

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    image_size: int | tuple[int, int] = 224
    patch_size: int | tuple[int, int] = 16
    num_channels: int = 3
    qkv_bias: bool = True

    def validate(self):
        super().validate()
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "num_channels"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size, f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, key) < 1.0:
                self.fail(key, getattr(self, key), "a probability in [0, 1)")
        if min(self.image_hw + self.patch_hw) < 1:
            self.fail("patch_size", self.patch_size, "positive sizes")
        if self.image_hw[0] < self.patch_hw[0] or self.image_hw[1] < self.patch_hw[1]:
            self.fail("patch_size", self.patch_size, f"at most image_size={self.image_size}")
        if self.extra.get("head_dim") not in (None, self.head_dim):
            self.fail("head_dim", self.extra["head_dim"],
                      f"hidden_size // num_attention_heads = {self.head_dim} (Rosetta's ViT has no separate head_dim)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def image_hw(self) -> tuple[int, int]:
        return _pair(self.image_size)

    @property
    def patch_hw(self) -> tuple[int, int]:
        return _pair(self.patch_size)

    @property
    def grid_hw(self) -> tuple[int, int]:
        return (self.image_hw[0] // self.patch_hw[0], self.image_hw[1] // self.patch_hw[1])

    @property
    def num_patches(self) -> int:
        return self.grid_hw[0] * self.grid_hw[1]

    @property
    def pooler_size(self) -> int:
        return self.hidden_size


@dataclasses.dataclass(frozen=True, kw_only=True)
class ViTConfig(ViTMSNConfig):
    model_type: ClassVar[str] = "vit"
    has_pooler: ClassVar[bool] = True

    layer_norm_eps: float = 1e-12
    encoder_stride: int = 16
    pooler_output_size: Optional[int] = None
    pooler_act: str = "tanh"

    def validate(self):
        super().validate()
        if self.encoder_stride < 1:
            self.fail("encoder_stride", self.encoder_stride, "a positive int")
        if self.pooler_output_size is not None and self.pooler_output_size < 1:
            self.fail("pooler_output_size", self.pooler_output_size, "a positive int or null")
        if self.pooler_act not in ACTIVATIONS:
            self.fail("pooler_act", self.pooler_act, f"one of {list(ACTIVATIONS)}")

    @property
    def pooler_size(self) -> int:
        return self.pooler_output_size or self.hidden_size


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeiTConfig(ViTConfig):
    """ViT plus a distillation token after [CLS] (position embeddings have two extra rows)."""
    model_type: ClassVar[str] = "deit"
    num_special_tokens: ClassVar[int] = 2
