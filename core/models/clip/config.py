"""CLIP configurations (`model_type` clip, clip_text_model, clip_vision_model), importable
without JAX.

Fields and defaults as `transformers` v5's CLIPConfig, CLIPTextConfig and CLIPVisionConfig.
`core.configuration` has no nested configs: CLIPConfig keeps `text_config` / `vision_config`
as the mappings `config.json` holds (so they round-trip verbatim) and builds typed views
(`text`, `vision`) from them, validated when the CLIPConfig is built.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import ACTIVATIONS, ConfigError, PretrainedConfig


def _check_tower(config, kind: str):
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        if getattr(config, key) < 1:
            config.fail(key, getattr(config, key), "a positive int")
    if config.hidden_size % config.num_attention_heads:
        config.fail("hidden_size", config.hidden_size, f"a multiple of num_attention_heads={config.num_attention_heads}")
    if config.hidden_act not in ACTIVATIONS:
        config.fail("hidden_act", config.hidden_act, f"one of {list(ACTIVATIONS)}")
    if not 0.0 <= config.attention_dropout < 1.0:
        config.fail("attention_dropout", config.attention_dropout, "a probability in [0, 1)")
    if config.layer_norm_eps is None or config.layer_norm_eps <= 0:
        config.fail("layer_norm_eps", config.layer_norm_eps, f"a positive float (the {kind} tower's LayerNorm epsilon)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CLIPTextConfig(PretrainedConfig):
    model_type: ClassVar[str] = "clip_text_model"

    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048
    projection_dim: Optional[int] = 512
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: Optional[float] = 1e-5
    attention_dropout: Optional[float] = 0.0
    initializer_range: float = 0.02
    initializer_factor: Optional[float] = 1.0
    pad_token_id: Optional[int] = 1
    bos_token_id: Optional[int] = 49406
    eos_token_id: Optional[int | tuple[int, ...]] = 49407

    def validate(self):
        super().validate()
        _check_tower(self, "text")
        for key in ("vocab_size", "max_position_embeddings"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if not isinstance(self.eos_token_id, int):
            self.fail("eos_token_id", self.eos_token_id,
                      "one int (the text tower pools the hidden state at the first eos token)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclasses.dataclass(frozen=True, kw_only=True)
class CLIPVisionConfig(PretrainedConfig):
    model_type: ClassVar[str] = "clip_vision_model"

    hidden_size: int = 768
    intermediate_size: int = 3072
    projection_dim: int = 512
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 32
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    attention_dropout: Optional[float] = 0.0
    initializer_range: float = 0.02
    initializer_factor: float = 1.0

    def validate(self):
        super().validate()
        _check_tower(self, "vision")
        if self.num_channels < 1:
            self.fail("num_channels", self.num_channels, "a positive int")
        if self.patch_size < 1 or self.image_size < self.patch_size:
            self.fail("patch_size", self.patch_size, f"a positive int at most image_size={self.image_size}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size ** 2


@dataclasses.dataclass(frozen=True, kw_only=True)
class CLIPConfig(PretrainedConfig):
    model_type: ClassVar[str] = "clip"

    text_config: Optional[Mapping[str, Any]] = None
    vision_config: Optional[Mapping[str, Any]] = None
    projection_dim: int = 512           # transformers: int | None, but the projections need a size
    logit_scale_init_value: Optional[float] = 2.6592
    initializer_factor: Optional[float] = 1.0

    def validate(self):
        super().validate()
        if self.projection_dim < 1:
            self.fail("projection_dim", self.projection_dim, "a positive int")
        for key in ("text_config_dict", "vision_config_dict"):
            if key in self.extra:
                self.fail(key, "...", f"no {key} (a legacy key; re-save the config with transformers v5, "
                                      "which merges it into text_config / vision_config)")
        for key, view in (("text_config", lambda: self.text), ("vision_config", lambda: self.vision)):
            try:
                view()
            except ConfigError as e:
                self.fail(key, "...", f"a valid sub-config ({e})")

    @property
    def text(self) -> CLIPTextConfig:
        return CLIPTextConfig.from_dict(self.text_config or {})

    @property
    def vision(self) -> CLIPVisionConfig:
        return CLIPVisionConfig.from_dict(self.vision_config or {})
