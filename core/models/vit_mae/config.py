"""ViTMAE configuration (`model_type` vit_mae), importable without JAX.

Fields and defaults as `transformers` v5's ViTMAEConfig: ViT-MSN's fields (the shared ViT ones)
plus the decoder's sizes, `mask_ratio` and `norm_pix_loss`.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from core.models.vit.config import ViTMSNConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class ViTMAEConfig(ViTMSNConfig):
    model_type: ClassVar[str] = "vit_mae"

    layer_norm_eps: float = 1e-12
    decoder_num_attention_heads: int = 16
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_intermediate_size: int = 2048
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False

    def validate(self):
        super().validate()
        for key in ("decoder_num_attention_heads", "decoder_hidden_size", "decoder_num_hidden_layers",
                    "decoder_intermediate_size"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.decoder_hidden_size % self.decoder_num_attention_heads:
            self.fail("decoder_hidden_size", self.decoder_hidden_size,
                      f"a multiple of decoder_num_attention_heads={self.decoder_num_attention_heads}")
        if not 0.0 <= self.mask_ratio < 1.0:
            self.fail("mask_ratio", self.mask_ratio, "a fraction in [0, 1)")
        if not isinstance(self.patch_size, int):
            # transformers' MAE patchifies with `config.patch_size ** 2 * num_channels` pixels.
            self.fail("patch_size", self.patch_size, "an int (ViTMAE has square patches only)")
        if self.image_hw[0] != self.image_hw[1]:
            # The decoder's position table and patchify assume a square grid in transformers.
            self.fail("image_size", self.image_size, "a square image (an int or equal sides)")

    @property
    def len_keep(self) -> int:
        """Patches kept by the random masking (transformers' int(N * (1 - mask_ratio)))."""
        return int(self.num_patches * (1 - self.mask_ratio))

    @property
    def decoder_config(self) -> "ViTMAEConfig":
        """This config with the decoder's sizes: the decoder layers are ViT layers of that shape
        (as transformers' deepcopy of the config)."""
        return dataclasses.replace(self, hidden_size=self.decoder_hidden_size,
                                   num_hidden_layers=self.decoder_num_hidden_layers,
                                   num_attention_heads=self.decoder_num_attention_heads,
                                   intermediate_size=self.decoder_intermediate_size)
