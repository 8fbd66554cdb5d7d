"""Rosetta core: canonical Flax models, checkpoint I/O, tokenizers and Auto classes.

Attributes are resolved lazily (PEP 562) so that `core.models.*.config` and the tokenizers
import without JAX; the model classes pull JAX in on first use.
"""
import importlib

_LAZY = {
    "AutoConfig": "core.auto",
    "AutoModel": "core.auto",
    "AutoModelForMaskedLM": "core.auto",
    "AutoModelForSequenceClassification": "core.auto",
    "AutoModelForTokenClassification": "core.auto",
    "AutoModelForQuestionAnswering": "core.auto",
    "AutoModelForMultipleChoice": "core.auto",
    "AutoModelForPreTraining": "core.auto",
    "AutoModelForCausalLM": "core.auto",
    "AutoModelForSeq2SeqLM": "core.auto",
    "AutoModelForImageClassification": "core.auto",
    "AutoModelForMaskedImageModeling": "core.auto",
    "AutoModelForCTC": "core.auto",
    "AutoModelForAudioClassification": "core.auto",
    "AutoModelForSpeechSeq2Seq": "core.auto",
    "AutoModelForAudioFrameClassification": "core.auto",
    "AutoModelForAudioXVector": "core.auto",
    "AutoFeatureExtractor": "core.processing.audio",
    "AutoImageProcessor": "core.processing.image",
    "AutoProcessor": "core.processing.processor",
    "AutoTokenizer": "core.tokenization",
    "PretrainedModel": "core.modeling",
    "pipeline": "core.pipelines",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
