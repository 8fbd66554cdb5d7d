"""Model output dataclasses, shared by the canonical models and the ports.

Plain dataclasses (no framework import), field names as in `transformers`. `core.layers.prims`
registers them as JAX pytrees. Per-layer `hidden_states` / `attentions` are tuples with one
array per layer (hidden states include the embeddings output first), as in `transformers`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass
class ModelOutput:
    def to_tuple(self) -> tuple:
        return tuple(v for v in dataclasses.asdict(self).values() if v is not None)

    def __getitem__(self, key: str):
        return getattr(self, key)

    def keys(self):
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]


@dataclasses.dataclass
class BaseModelOutput(ModelOutput):
    last_hidden_state: Any = None
    pooler_output: Optional[Any] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class MaskedLMOutput(ModelOutput):
    loss: Optional[Any] = None
    logits: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: Optional[Any] = None
    logits: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class TokenClassifierOutput(ModelOutput):
    loss: Optional[Any] = None
    logits: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class MultipleChoiceModelOutput(ModelOutput):
    loss: Optional[Any] = None
    logits: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    loss: Optional[Any] = None
    start_logits: Any = None
    end_logits: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class PreTrainingOutput(ModelOutput):
    """ELECTRA-style discriminator output (`logits` per token) or BERT-style pretraining."""
    loss: Optional[Any] = None
    logits: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class PreTrainingWithSOPOutput(ModelOutput):
    """ALBERT pretraining: MLM logits plus sentence-order logits; `loss` is their summed
    cross-entropy when both `labels` and `sentence_order_label` are given."""
    loss: Optional[Any] = None
    prediction_logits: Any = None
    sop_logits: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


# Decoder outputs: `cache` is the model's explicit KV cache after the call (None without one),
# named as `transformers` v5 names it.
@dataclasses.dataclass
class BaseModelOutputWithPast(ModelOutput):
    last_hidden_state: Any = None
    cache: Optional[Any] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class CausalLMOutputWithPast(ModelOutput):
    loss: Optional[Any] = None
    logits: Any = None
    cache: Optional[Any] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class SequenceClassifierOutputWithPast(ModelOutput):
    loss: Optional[Any] = None
    logits: Any = None
    cache: Optional[Any] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class BaseModelOutputWithPastAndCrossAttentions(ModelOutput):
    """A decoder that also attends to an encoder (seq2seq decoders, BART's causal-lm)."""
    last_hidden_state: Any = None
    cache: Optional[Any] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None


@dataclasses.dataclass
class CausalLMOutputWithCrossAttentions(ModelOutput):
    loss: Optional[Any] = None
    logits: Any = None
    cache: Optional[Any] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None


# Encoder-decoder outputs: `cache` is the decoder's explicit cache (self-attention keys/values
# and the precomputed cross-attention keys/values); `encoder_*` describe the encoder pass.
@dataclasses.dataclass
class Seq2SeqModelOutput(ModelOutput):
    last_hidden_state: Any = None
    cache: Optional[Any] = None
    decoder_hidden_states: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None
    encoder_last_hidden_state: Optional[Any] = None
    encoder_hidden_states: Optional[tuple] = None
    encoder_attentions: Optional[tuple] = None


@dataclasses.dataclass
class Seq2SeqLMOutput(ModelOutput):
    loss: Optional[Any] = None
    logits: Any = None
    cache: Optional[Any] = None
    decoder_hidden_states: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None
    encoder_last_hidden_state: Optional[Any] = None
    encoder_hidden_states: Optional[tuple] = None
    encoder_attentions: Optional[tuple] = None


@dataclasses.dataclass
class Seq2SeqSequenceClassifierOutput(ModelOutput):
    loss: Optional[Any] = None
    logits: Any = None
    cache: Optional[Any] = None
    decoder_hidden_states: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None
    encoder_last_hidden_state: Optional[Any] = None
    encoder_hidden_states: Optional[tuple] = None
    encoder_attentions: Optional[tuple] = None


@dataclasses.dataclass
class Seq2SeqQuestionAnsweringModelOutput(ModelOutput):
    loss: Optional[Any] = None
    start_logits: Any = None
    end_logits: Any = None
    cache: Optional[Any] = None
    decoder_hidden_states: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None
    encoder_last_hidden_state: Optional[Any] = None
    encoder_hidden_states: Optional[tuple] = None
    encoder_attentions: Optional[tuple] = None


ALL_OUTPUTS = (BaseModelOutput, MaskedLMOutput, SequenceClassifierOutput, TokenClassifierOutput,
               MultipleChoiceModelOutput, QuestionAnsweringModelOutput, PreTrainingOutput, PreTrainingWithSOPOutput,
               BaseModelOutputWithPast, CausalLMOutputWithPast, SequenceClassifierOutputWithPast,
               BaseModelOutputWithPastAndCrossAttentions, CausalLMOutputWithCrossAttentions, Seq2SeqModelOutput,
               Seq2SeqLMOutput, Seq2SeqSequenceClassifierOutput, Seq2SeqQuestionAnsweringModelOutput)


# Vision outputs (ViT / DeiT family).
@dataclasses.dataclass
class MaskedImageModelingOutput(ModelOutput):
    """SimMIM-style masked image modeling: `reconstruction` (batch, channels, height, width)."""
    loss: Optional[Any] = None
    reconstruction: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class ImageClassificationWithTeacherOutput(ModelOutput):
    """DeiT with a distillation head: `logits` is the mean of `cls_logits` and
    `distillation_logits` (transformers: DeiTForImageClassificationWithTeacherOutput)."""
    logits: Any = None
    cls_logits: Any = None
    distillation_logits: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


ALL_OUTPUTS = ALL_OUTPUTS + (MaskedImageModelingOutput, ImageClassificationWithTeacherOutput)


# Dual encoders (CLIP).
@dataclasses.dataclass
class CLIPOutput(ModelOutput):
    """Image-text similarity (transformers: CLIPOutput): `logits_per_text` (texts, images) is
    the scaled cosine similarity, `logits_per_image` its transpose; the embeds are the
    normalised projections; each tower's BaseModelOutput (pooler_output = its pooled state)."""
    loss: Optional[Any] = None
    logits_per_image: Any = None
    logits_per_text: Any = None
    text_embeds: Any = None
    image_embeds: Any = None
    text_model_output: Any = None
    vision_model_output: Any = None


ALL_OUTPUTS = ALL_OUTPUTS + (CLIPOutput,)


# Speech encoders (Wav2Vec2 / HuBERT / WavLM).
@dataclasses.dataclass
class Wav2Vec2BaseModelOutput(ModelOutput):
    """The bare speech encoder (transformers: Wav2Vec2BaseModelOutput): `extract_features` are
    the feature encoder's frames after the projection's LayerNorm (batch, frames, conv_dim[-1])."""
    last_hidden_state: Any = None
    extract_features: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class CausalLMOutput(ModelOutput):
    """Per-frame logits without a cache (transformers: CausalLMOutput; the CTC heads)."""
    loss: Optional[Any] = None
    logits: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


ALL_OUTPUTS = ALL_OUTPUTS + (Wav2Vec2BaseModelOutput, CausalLMOutput)


# Hierarchical vision encoders (Swin): transformers' Swin outputs add `reshaped_hidden_states`,
# the embeddings and each stage's output as (batch, channels, height, width) maps.
@dataclasses.dataclass
class SwinModelOutput(ModelOutput):
    last_hidden_state: Any = None
    pooler_output: Optional[Any] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None
    reshaped_hidden_states: Optional[tuple] = None


@dataclasses.dataclass
class SwinImageClassifierOutput(ModelOutput):
    loss: Optional[Any] = None
    logits: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None
    reshaped_hidden_states: Optional[tuple] = None


@dataclasses.dataclass
class SwinMaskedImageModelingOutput(ModelOutput):
    loss: Optional[Any] = None
    reconstruction: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None
    reshaped_hidden_states: Optional[tuple] = None


ALL_OUTPUTS = ALL_OUTPUTS + (SwinModelOutput, SwinImageClassifierOutput, SwinMaskedImageModelingOutput)


# Masked autoencoders (ViTMAE): which patches were hidden, and how to undo the shuffle.
@dataclasses.dataclass
class ViTMAEModelOutput(ModelOutput):
    """transformers' ViTMAEModelOutput: `mask` (batch, patches) 1 = masked, `ids_restore` the
    rank of every patch (the permutation that undoes the shuffle)."""
    last_hidden_state: Any = None
    mask: Any = None
    ids_restore: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclasses.dataclass
class ViTMAEForPreTrainingOutput(ModelOutput):
    """transformers' ViTMAEForPreTrainingOutput: `logits` (batch, patches, patch**2 * channels)."""
    loss: Optional[Any] = None
    logits: Any = None
    mask: Any = None
    ids_restore: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


ALL_OUTPUTS = ALL_OUTPUTS + (ViTMAEModelOutput, ViTMAEForPreTrainingOutput)


# Speaker embeddings (Wav2Vec2 / WavLM x-vector heads).
@dataclasses.dataclass
class XVectorOutput(ModelOutput):
    """transformers' XVectorOutput: `logits` (batch, xvector_output_dim) the classifier's output
    (the AMSoftmax loss's input), `embeddings` (batch, xvector_output_dim) the x-vectors."""
    loss: Optional[Any] = None
    logits: Any = None
    embeddings: Any = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


ALL_OUTPUTS = ALL_OUTPUTS + (XVectorOutput,)
