"""ConvNeXT configuration (`model_type` convnext), importable without JAX.

Fields and defaults as `transformers` v5's ConvNextConfig. `out_features` / `out_indices` /
`stage_names` (backbone bookkeeping, written by `transformers` on save) are kept in `extra` and
round-trip unchanged; Rosetta has no ConvNextBackbone head.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping

from core.configuration import ACTIVATIONS, PretrainedConfig


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvNextConfig(PretrainedConfig):
    model_type: ClassVar[str] = "convnext"
    attribute_map: ClassVar[Mapping[str, str]] = {"num_hidden_layers": "num_stages"}

    num_channels: int = 3
    patch_size: int | tuple[int, int] = 4
    num_stages: int = 4
    hidden_sizes: tuple[int, ...] = (96, 192, 384, 768)
    depths: tuple[int, ...] = (3, 3, 9, 3)
    hidden_act: str = "gelu"
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    layer_scale_init_value: float = 1e-6
    drop_path_rate: float = 0.0
    image_size: int | tuple[int, int] = 224

    def validate(self):
        super().validate()
        for key in ("num_channels", "num_stages"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if len(self.hidden_sizes) != self.num_stages or min(self.hidden_sizes) < 1:
            self.fail("hidden_sizes", self.hidden_sizes, f"num_stages={self.num_stages} positive ints")
        if len(self.depths) != self.num_stages or min(self.depths) < 1:
            self.fail("depths", self.depths, f"num_stages={self.num_stages} positive ints")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        if min(self.patch_hw) < 1:
            self.fail("patch_size", self.patch_size, "positive sizes")
        if min(_pair(self.image_size)) < 1:
            self.fail("image_size", self.image_size, "positive sizes")
        if not 0.0 <= self.drop_path_rate < 1.0:
            self.fail("drop_path_rate", self.drop_path_rate, "a probability in [0, 1)")

    @property
    def patch_hw(self) -> tuple[int, int]:
        return _pair(self.patch_size)

    @property
    def image_hw(self) -> tuple[int, int]:
        return _pair(self.image_size)

    @property
    def has_layer_scale(self) -> bool:
        return self.layer_scale_init_value > 0
