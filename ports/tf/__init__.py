"""Rosetta's TensorFlow port: the canonical models as generated `tf.Module`s.

    from ports.tf import AutoModelForMaskedLM
    model = AutoModelForMaskedLM.from_pretrained("path/to/folder")
    out = model(input_ids=ids, attention_mask=mask)                  # tf tensors / numpy in, core.outputs out
    out = model(input_ids=ids, deterministic=False)                  # dropout on (default off, as Flax)
    model.save_pretrained("path/to/out")                             # a folder transformers and JAX load

The same API as `core` and `ports.torch` (task names, `from_pretrained` options, strict loading
errors); the model is the module: `.config`, `.load_report`, `.flax_shapes()`, `.export_flax()`.
Imports no JAX and no torch: `core.registry`, the configs and `core.checkpoint` are numpy-only.
"""
from __future__ import annotations

import pathlib

from core import registry
from core.checkpoint.loading import read_config
from core.configuration import PretrainedConfig
from ports.tf.runtime.module import Module, port_module

__all__ = ["AutoConfig", "AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification",
           "AutoModelForTokenClassification", "AutoModelForQuestionAnswering", "AutoModelForMultipleChoice",
           "AutoModelForPreTraining", "AutoModelForCausalLM", "AutoModelForImageClassification",
           "AutoModelForMaskedImageModeling", "AutoModelForCTC", "AutoModelForAudioFrameClassification", "AutoModelForAudioXVector",
           "AutoModelForAudioClassification", "AutoModelForSpeechSeq2Seq", "AutoModelForSeq2SeqLM", "Module", "model_class"]


def model_class(model_type: str, task: str) -> type:
    """The generated TF class of `model_type`'s `task` head."""
    family = registry.family(model_type)
    family.check_task(task)
    return getattr(port_module(family), family.heads[task][0])


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
    def from_pretrained(cls, folder: str | pathlib.Path, **kwargs) -> Module:
        """See `Module.from_pretrained` (dtype, param_dtype, init_new_head, seed, module_kwargs,
        config overrides)."""
        config = read_config(folder)
        return model_class(config.model_type, cls.task).from_pretrained(folder, **kwargs)

    @classmethod
    def from_config(cls, config: PretrainedConfig, **kwargs) -> Module:
        return model_class(config.model_type, cls.task).from_config(config, **kwargs)


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


class AutoModelForCausalLM(_AutoModel):
    task = "causal-lm"


class AutoModelForSeq2SeqLM(_AutoModel):
    task = "seq2seq-lm"


class AutoModelForImageClassification(_AutoModel):
    task = "image-classification"


class AutoModelForMaskedImageModeling(_AutoModel):
    task = "masked-image-modeling"


class AutoModelForCTC(_AutoModel):
    task = "ctc"


class AutoModelForAudioFrameClassification(_AutoModel):
    task = "audio-frame-classification"


class AutoModelForAudioXVector(_AutoModel):
    task = "audio-xvector"


class AutoModelForAudioClassification(_AutoModel):
    task = "sequence-classification"


class AutoModelForSpeechSeq2Seq(_AutoModel):
    """Speech encoder-decoders (Whisper): log-mel `input_features` in."""
    task = "seq2seq-lm"
