"""Auto classes named as in `transformers`: pick the family from `config.json`'s model_type."""
from __future__ import annotations

import pathlib

from core import registry
from core.configuration import PretrainedConfig
from core.modeling import PretrainedModel, read_config


class AutoConfig:
    @staticmethod
    def from_pretrained(folder) -> PretrainedConfig:
        return read_config(folder)

    @staticmethod
    def for_model(model_type: str, **kwargs) -> PretrainedConfig:
        return registry.family(model_type).config_class()(**kwargs)


class _AutoModel:
    task = "base"

    def __init__(self):
        raise TypeError(f"{type(self).__name__} is a factory: use {type(self).__name__}.from_pretrained(folder) "
                        "or .from_config(config)")

    @classmethod
    def from_pretrained(cls, folder: str | pathlib.Path, **kwargs) -> PretrainedModel:
        return PretrainedModel.from_pretrained(folder, task=cls.task, **kwargs)

    @classmethod
    def from_config(cls, config: PretrainedConfig, **kwargs) -> PretrainedModel:
        registry.family(config.model_type).check_task(cls.task)
        return PretrainedModel.from_config(config, task=cls.task, **kwargs)


class AutoModel(_AutoModel):
    task = "base"


class AutoModelForMaskedLM(_AutoModel):
    task = "masked-lm"


class AutoModelForSequenceClassification(_AutoModel):
    task = "sequence-classification"


class AutoModelForTokenClassification(_AutoModel):
    task = "token-classification"


class AutoModelForQuestionAnswering(_AutoModel):
    task = "question-answering"


class AutoModelForMultipleChoice(_AutoModel):
    task = "multiple-choice"


class AutoModelForPreTraining(_AutoModel):
    task = "pretraining"


class AutoModelForSeq2SeqLM(_AutoModel):
    """Encoder-decoder LMs; the model object has `.generate(...)` (core.generation.Seq2SeqLMModel)."""
    task = "seq2seq-lm"


class AutoModelForCausalLM(_AutoModel):
    """Decoder LMs; the model object has `.generate(...)` (core.generation.CausalLMModel)."""
    task = "causal-lm"


class AutoModelForImageClassification(_AutoModel):
    task = "image-classification"


class AutoModelForMaskedImageModeling(_AutoModel):
    task = "masked-image-modeling"

class AutoModelForCTC(_AutoModel):
    """Speech encoders with a CTC head (Wav2Vec2, HuBERT): per-frame logits over characters."""
    task = "ctc"


class AutoModelForAudioClassification(_AutoModel):
    """Speech encoders with a pooled classifier (transformers' *ForSequenceClassification)."""
    task = "sequence-classification"


class AutoModelForSpeechSeq2Seq(_AutoModel):
    """Speech encoder-decoders (Whisper): log-mel `input_features` in, `.generate(input_features=...,
    language=..., task=...)` (core.generation.seq2seq.Seq2SeqLMModel → core.generation.whisper)."""
    task = "seq2seq-lm"


class AutoModelForAudioFrameClassification(_AutoModel):
    """Speech encoders with a per-frame classifier (Wav2Vec2, WavLM; e.g. speaker diarization)."""
    task = "audio-frame-classification"


class AutoModelForAudioXVector(_AutoModel):
    """Speech encoders with an x-vector head (Wav2Vec2, WavLM): speaker `embeddings` + AMSoftmax."""
    task = "audio-xvector"
