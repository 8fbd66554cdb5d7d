"""Swin Transformer configuration (`model_type` swin), importable without JAX.

Fields and defaults as `transformers` v5's SwinConfig. `image_size` / `patch_size` may be an
int (square) or a (height, width) pair. The keys transformers derives and writes into
config.json (`hidden_size`, `num_layers`, `stage_names`, `out_features`, `out_indices`) are
kept verbatim in `extra` (they round-trip) and recomputed here as properties.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from core.configuration import ACTIVATIONS, PretrainedConfig


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SwinConfig(PretrainedConfig):
    model_type: ClassVar[str] = "swin"

    image_size: int | tuple[int, int] = 224
    patch_size: int | tuple[int, int] = 4
    num_channels: int = 3
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    drop_path_rate: float = 0.1
    hidden_act: str = "gelu"
    use_absolute_embeddings: bool = False
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    encoder_stride: int = 32

    def validate(self):
        super().validate()
        for key in ("embed_dim", "num_channels", "window_size", "encoder_stride"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if not self.depths or min(self.depths) < 1:
            self.fail("depths", self.depths, "a non-empty list of positive ints")
        if len(self.num_heads) != len(self.depths):
            self.fail("num_heads", self.num_heads, f"one head count per stage ({len(self.depths)} stages)")
        for stage, heads in enumerate(self.num_heads):
            if heads < 1 or self.stage_dim(stage) % heads:
                self.fail("num_heads", self.num_heads,
                          f"positive divisors of each stage's width {[self.stage_dim(i) for i in range(len(self.depths))]}")
        if self.mlp_ratio <= 0 or int(self.mlp_ratio * self.embed_dim) < 1:
            self.fail("mlp_ratio", self.mlp_ratio, "a positive ratio")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            if not 0.0 <= getattr(self, key) < 1.0:
                self.fail(key, getattr(self, key), "a probability in [0, 1)")
        if min(self.image_hw + self.patch_hw) < 1:
            self.fail("patch_size", self.patch_size, "positive sizes")

    def stage_dim(self, stage: int) -> int:
        """Channels of stage `stage` (embed_dim doubles at every patch merging)."""
        return int(self.embed_dim * 2 ** stage)

    @property
    def num_layers(self) -> int:
        return len(self.depths)

    @property
    def hidden_size(self) -> int:
        """Channels after the last stage (transformers' `hidden_size` / `num_features`)."""
        return self.stage_dim(len(self.depths) - 1)

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
