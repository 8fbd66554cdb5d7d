"""Whisper configuration (fields and defaults as `transformers` v5's `WhisperConfig`), importable
without JAX.

Notes on keys `transformers` keeps but does not use at inference: `scale_embedding` (v5's
Whisper never multiplies its embeddings by `embed_scale`, so neither does Rosetta),
`suppress_tokens` / `begin_suppress_tokens` (generation settings; generation reads them from
generation_config.json), `median_filter_width` (token timestamps), `use_cache`.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class WhisperConfig(PretrainedConfig):
    model_type: ClassVar[str] = "whisper"
    encoder_input: ClassVar[str] = "input_features"     # the encoder's main input (Seq2SeqLMModel)
    attribute_map: ClassVar = {"num_key_value_heads": "encoder_attention_heads",
                               "num_attention_heads": "encoder_attention_heads", "hidden_size": "d_model",
                               "num_hidden_layers": "encoder_layers"}

    vocab_size: int = 51865
    num_mel_bins: int = 80
    encoder_layers: int = 4
    encoder_attention_heads: int = 6
    decoder_layers: int = 4
    decoder_attention_heads: int = 6
    decoder_ffn_dim: int = 1536
    encoder_ffn_dim: int = 1536
    encoder_layerdrop: float = 0.0
    decoder_layerdrop: float = 0.0
    decoder_start_token_id: int = 50257
    use_cache: bool = True
    is_encoder_decoder: bool = True
    activation_function: str = "gelu"
    d_model: int = 384
    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    scale_embedding: bool = False
    max_source_positions: int = 1500
    max_target_positions: int = 448
    pad_token_id: Optional[int] = 50256
    bos_token_id: Optional[int] = 50256
    eos_token_id: Optional[int | tuple[int, ...]] = 50256
    suppress_tokens: Optional[tuple[int, ...]] = None
    begin_suppress_tokens: Optional[tuple[int, ...]] = (220, 50256)
    use_weighted_layer_sum: bool = False
    classifier_proj_size: int = 256
    apply_spec_augment: bool = False
    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_time_min_masks: int = 2
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 10
    mask_feature_min_masks: int = 0
    median_filter_width: int = 7
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "num_mel_bins", "d_model", "encoder_layers", "decoder_layers",
                    "encoder_attention_heads", "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim",
                    "max_source_positions", "max_target_positions", "classifier_proj_size"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        for key in ("encoder_attention_heads", "decoder_attention_heads"):
            if self.d_model % getattr(self, key):
                self.fail("d_model", self.d_model, f"a multiple of {key}={getattr(self, key)}")
        if self.activation_function not in ACTIVATIONS:
            self.fail("activation_function", self.activation_function, f"one of {list(ACTIVATIONS)}")
        for key in ("dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop", "decoder_layerdrop"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        for key in ("encoder_layerdrop", "decoder_layerdrop"):
            if getattr(self, key) > 0.0:
                self.fail(key, getattr(self, key), "0.0: LayerDrop (training-time layer skipping) is not "
                          "implemented in Rosetta")
        if self.apply_spec_augment and (self.mask_time_prob > 0 or self.mask_feature_prob > 0):
            self.fail("apply_spec_augment", True, "false (or zero mask_time_prob and mask_feature_prob): "
                      "SpecAugment's training-time masking is not implemented in Rosetta")
        if self.pad_token_id is None:
            self.fail("pad_token_id", None, "an int: decoder inputs are made by shifting labels and padding them")
        if self.decoder_start_token_id is None:
            self.fail("decoder_start_token_id", None, "an int: the token that starts every decoder input")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.decoder_attention_heads

    @property
    def num_labels(self) -> int:
        return 2 if self.id2label is None else len(self.id2label)

    @property
    def num_frames(self) -> int:
        """The mel frames the encoder takes: two per encoder position (conv2 has stride 2)."""
        return 2 * self.max_source_positions
