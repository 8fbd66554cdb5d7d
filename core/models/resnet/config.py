"""ResNet configuration (`model_type` resnet), importable without JAX.

Fields and defaults as `transformers` v5's ResNetConfig. `out_features` / `out_indices` /
`stage_names` (backbone bookkeeping, written by `transformers` on save) are kept in `extra` and
round-trip unchanged; Rosetta has no ResNetBackbone head.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from core.configuration import ACTIVATIONS, PretrainedConfig

LAYER_TYPES = ("basic", "bottleneck")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResNetConfig(PretrainedConfig):
    model_type: ClassVar[str] = "resnet"
    # Bottleneck blocks narrow to out_channels // reduction (fixed in transformers, not a key).
    reduction: ClassVar[int] = 4
    # Rosetta's init of fresh weights (transformers uses Kaiming init; no config key).
    initializer_range: ClassVar[float] = 0.02

    num_channels: int = 3
    embedding_size: int = 64
    hidden_sizes: tuple[int, ...] = (256, 512, 1024, 2048)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    layer_type: str = "bottleneck"
    hidden_act: str = "relu"
    downsample_in_first_stage: bool = False
    downsample_in_bottleneck: bool = False

    def validate(self):
        super().validate()
        for key in ("num_channels", "embedding_size"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if not self.depths or min(self.depths) < 1:
            self.fail("depths", self.depths, "a non-empty list of positive ints")
        if len(self.hidden_sizes) != len(self.depths) or min(self.hidden_sizes) < 1:
            self.fail("hidden_sizes", self.hidden_sizes, f"{len(self.depths)} positive ints (one per entry of depths)")
        if self.layer_type not in LAYER_TYPES:
            self.fail("layer_type", self.layer_type, f"one of {list(LAYER_TYPES)}")
        if self.layer_type == "bottleneck" and min(self.hidden_sizes) < self.reduction:
            self.fail("hidden_sizes", self.hidden_sizes,
                      f"sizes of at least {self.reduction} (bottleneck blocks narrow them by {self.reduction})")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
