"""BEiT configuration (`model_type` beit), importable without JAX.

Fields and defaults as `transformers` v5's BeitConfig. The semantic-segmentation / backbone
fields (pool_scales, auxiliary_*, add_fpn, ...) are kept so config.json round-trips; Rosetta
builds the base model, image classification and masked image modeling only. The backbone keys
transformers writes (`out_features`, `out_indices`, `stage_names`) are kept in `extra`.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class BeitConfig(PretrainedConfig):
    model_type: ClassVar[str] = "beit"
    num_special_tokens: ClassVar[int] = 1

    vocab_size: int = 8192
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    image_size: int | tuple[int, int] = 224
    patch_size: int | tuple[int, int] = 16
    num_channels: int = 3
    use_mask_token: bool = False
    use_absolute_position_embeddings: bool = False
    use_relative_position_bias: bool = False
    use_shared_relative_position_bias: bool = False
    layer_scale_init_value: float = 0.1
    drop_path_rate: float = 0.1
    use_mean_pooling: bool = True
    pool_scales: tuple[int, ...] = (1, 2, 3, 6)
    use_auxiliary_head: bool = True
    auxiliary_loss_weight: float = 0.4
    auxiliary_channels: int = 256
    auxiliary_num_convs: int = 1
    auxiliary_concat_input: bool = False
    semantic_loss_ignore_index: int = 255
    add_fpn: bool = False
    reshape_hidden_states: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "num_channels"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size, f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            if not 0.0 <= getattr(self, key) < 1.0:
                self.fail(key, getattr(self, key), "a probability in [0, 1)")
        if not isinstance(self.patch_size, int):
            # transformers' BEiT divides the image by `config.patch_size` as a number (its
            # relative position bias and position interpolation): only square patches work there.
            self.fail("patch_size", self.patch_size, "an int (BEiT has square patches only)")
        if self.image_hw[0] != self.image_hw[1]:
            # transformers resamples non-square position tables even at the configured size
            # (a (w, h) → (h, w) reshape of the relative bias table): not reproduced here.
            self.fail("image_size", self.image_size, "a square image (an int or equal sides)")
        if min(self.image_hw) < 1 or self.patch_size < 1 or self.image_hw[0] < self.patch_size:
            self.fail("patch_size", self.patch_size, f"a positive size at most image_size={self.image_size}")
        if self.extra.get("head_dim") not in (None, self.head_dim):
            self.fail("head_dim", self.extra["head_dim"],
                      f"hidden_size // num_attention_heads = {self.head_dim} (Rosetta's BEiT has no separate head_dim)")

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
    def num_relative_distance(self) -> int:
        rows, cols = self.grid_hw
        return (2 * rows - 1) * (2 * cols - 1) + 3
