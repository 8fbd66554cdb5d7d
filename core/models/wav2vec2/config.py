"""Wav2Vec2 / HuBERT / WavLM configurations (`model_type` wav2vec2, hubert, wavlm), importable
without JAX.

Fields and defaults as `transformers` v5's Wav2Vec2Config, HubertConfig and WavLMConfig (the
quantizer and adapter keys are kept so that config.json round-trips; Rosetta runs the encoder,
CTC, sequence-classification, audio-frame-classification and x-vector heads (the last two and
the `tdnn_*` / `xvector_output_dim` keys: Wav2Vec2 and WavLM only, as in transformers), and
refuses adapters). `output_hidden_size` (transformers fills it from hidden_size; it only
matters with adapters) stays in `extra`.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpeechEncoderConfig(PretrainedConfig):
    """The fields the three speech encoders share (the shared module set reads only these and
    the properties below)."""
    model_type: ClassVar[str] = ""

    vocab_size: Optional[int] = 32
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout: float = 0.1
    activation_dropout: float = 0.1
    attention_dropout: float = 0.1
    feat_proj_dropout: float = 0.0
    final_dropout: float = 0.1
    layerdrop: float = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_bias: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    do_stable_layer_norm: bool = False
    apply_spec_augment: bool = True
    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_time_min_masks: int = 2
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 10
    ctc_loss_reduction: str = "sum"
    ctc_zero_infinity: bool = False
    use_weighted_layer_sum: bool = False
    classifier_proj_size: int = 256
    pad_token_id: Optional[int] = 0
    bos_token_id: Optional[int] = 1
    eos_token_id: Optional[int | tuple[int, ...]] = 2

    def validate(self):
        super().validate()
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "classifier_proj_size"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size, f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            self.fail("num_conv_pos_embedding_groups", self.num_conv_pos_embedding_groups,
                      f"a divisor of hidden_size={self.hidden_size}")
        for key in ("hidden_act", "feat_extract_activation"):
            if getattr(self, key) not in ACTIVATIONS:
                self.fail(key, getattr(self, key), f"one of {list(ACTIVATIONS)}")
        if self.feat_extract_norm not in ("group", "layer"):
            self.fail("feat_extract_norm", self.feat_extract_norm, "'group' or 'layer'")
        if not (len(self.conv_dim) == len(self.conv_stride) == len(self.conv_kernel)) or not self.conv_dim:
            self.fail("conv_dim", self.conv_dim, f"as many layers as conv_stride={self.conv_stride} and "
                                                 f"conv_kernel={self.conv_kernel}")
        if min(self.conv_dim + self.conv_stride + self.conv_kernel) < 1:
            self.fail("conv_kernel", self.conv_kernel, "positive conv_dim, conv_stride and conv_kernel entries")
        if self.ctc_loss_reduction not in ("sum", "mean", "none"):
            self.fail("ctc_loss_reduction", self.ctc_loss_reduction, "'sum', 'mean' or 'none'")
        for key in ("hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout",
                    "final_dropout", "layerdrop", "mask_time_prob", "mask_feature_prob"):
            if not 0.0 <= getattr(self, key) < 1.0:
                self.fail(key, getattr(self, key), "a probability in [0, 1)")
        for key in ("add_adapter",):
            if self.extra.get(key) or getattr(self, key, False):
                self.fail(key, True, "false (Rosetta has no Wav2Vec2 adapter layers)")
        if self.extra.get("adapter_attn_dim") is not None or getattr(self, "adapter_attn_dim", None) is not None:
            self.fail("adapter_attn_dim", getattr(self, "adapter_attn_dim", self.extra.get("adapter_attn_dim")),
                      "null (Rosetta has no per-language attention adapters)")
        if hasattr(self, "tdnn_dim"):                  # the x-vector head (Wav2Vec2, WavLM)
            self.validate_xvector()

    def validate_xvector(self):
        if not self.tdnn_dim or not (len(self.tdnn_dim) == len(self.tdnn_kernel) == len(self.tdnn_dilation)):
            self.fail("tdnn_dim", self.tdnn_dim, f"as many TDNN layers as tdnn_kernel={self.tdnn_kernel} and "
                                                 f"tdnn_dilation={self.tdnn_dilation} (at least one)")
        for key in ("tdnn_dim", "tdnn_kernel", "tdnn_dilation"):
            if min(getattr(self, key)) < 1:
                self.fail(key, getattr(self, key), "positive entries")
        if self.xvector_output_dim < 1:
            self.fail("xvector_output_dim", self.xvector_output_dim, "a positive int")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def has_masked_spec_embed(self) -> bool:
        """SpecAugment's mask vector exists (a checkpoint tensor) when either mask probability
        is positive; masking itself is training-only and not applied at inference."""
        return self.mask_time_prob > 0.0 or self.mask_feature_prob > 0.0

    @property
    def projection_layer_norm(self) -> bool:
        return True

    @property
    def pos_batch_norm(self) -> bool:
        return False

    @property
    def relative_position_bias(self) -> bool:
        return False

    def feat_extract_output_length(self, length: int) -> int:
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            length = (length - kernel) // stride + 1
        return length


@dataclasses.dataclass(frozen=True, kw_only=True)
class Wav2Vec2Config(SpeechEncoderConfig):
    model_type: ClassVar[str] = "wav2vec2"

    feat_quantizer_dropout: float = 0.0
    mask_feature_min_masks: int = 0
    num_codevectors_per_group: int = 320
    num_codevector_groups: int = 2
    contrastive_logits_temperature: float = 0.1
    num_negatives: int = 100
    codevector_dim: int = 256
    proj_codevector_dim: int = 256
    diversity_loss_weight: float = 0.1
    tdnn_dim: tuple[int, ...] = (512, 512, 512, 512, 1500)
    tdnn_kernel: tuple[int, ...] = (5, 3, 3, 1, 1)
    tdnn_dilation: tuple[int, ...] = (1, 2, 3, 1, 1)
    xvector_output_dim: int = 512
    add_adapter: bool = False
    adapter_kernel_size: int = 3
    adapter_stride: int = 2
    num_adapter_layers: int = 3
    adapter_attn_dim: Optional[int] = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class HubertConfig(SpeechEncoderConfig):
    """HuBERT: Wav2Vec2's encoder; the projection's LayerNorm is optional (`feat_proj_layer_norm`)
    and the positional conv may use a BatchNorm instead of weight norm (`conv_pos_batch_norm`)."""
    model_type: ClassVar[str] = "hubert"

    vocab_size: int = 32
    feat_proj_layer_norm: bool = True
    conv_pos_batch_norm: bool = False
    mask_feature_min_masks: int = 0

    @property
    def projection_layer_norm(self) -> bool:
        return self.feat_proj_layer_norm

    @property
    def pos_batch_norm(self) -> bool:
        return self.conv_pos_batch_norm


@dataclasses.dataclass(frozen=True, kw_only=True)
class WavLMConfig(SpeechEncoderConfig):
    """WavLM: Wav2Vec2's encoder with a gated relative position bias in every attention layer
    (`num_buckets` T5-style bidirectional buckets up to `max_bucket_distance`, the table held by
    the first layer and shared by all). transformers' default CTC reduction here is "mean"."""
    model_type: ClassVar[str] = "wavlm"

    vocab_size: int = 32
    num_buckets: int = 320
    max_bucket_distance: int = 800
    num_codevectors_per_group: int = 320
    num_codevector_groups: int = 2
    contrastive_logits_temperature: float = 0.1
    num_negatives: int = 100
    codevector_dim: int = 256
    proj_codevector_dim: int = 256
    diversity_loss_weight: float = 0.1
    ctc_loss_reduction: str = "mean"
    tdnn_dim: tuple[int, ...] = (512, 512, 512, 512, 1500)
    tdnn_kernel: tuple[int, ...] = (5, 3, 3, 1, 1)
    tdnn_dilation: tuple[int, ...] = (1, 2, 3, 1, 1)
    xvector_output_dim: int = 512
    num_ctc_classes: int = 80
    add_adapter: bool = False
    adapter_kernel_size: int = 3
    adapter_stride: int = 2
    num_adapter_layers: int = 3

    def validate(self):
        super().validate()
        if self.num_buckets < 4:
            self.fail("num_buckets", self.num_buckets, "an int >= 4 (half per direction, half of those exact)")
        if self.max_bucket_distance <= self.num_buckets // 4:
            self.fail("max_bucket_distance", self.max_bucket_distance,
                      f"more than num_buckets // 4 = {self.num_buckets // 4} (the exact range)")

    @property
    def relative_position_bias(self) -> bool:
        return True
