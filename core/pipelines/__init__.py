"""Text pipelines on the encoder models, called and answering like `transformers.pipeline`.

    from core import pipeline
    fill = pipeline("fill-mask", model="path/to/folder", batch_size=8)
    fill("Paris is the [MASK] of France.", top_k=3)
    fill.compile_count          # how many padded shapes the jitted forward was compiled for

Tasks: feature-extraction, fill-mask, text-classification (alias sentiment-analysis),
token-classification (alias ner), question-answering (transformers v4 semantics; v5 removed it),
zero-shot-classification; text-generation (transformers v5 semantics, chats included);
text2text-generation, summarization, translation (alias translation_XX_to_YY; v4 semantics, v5 removed
them); image-classification, zero-shot-image-classification (CLIP); automatic-speech-recognition (CTC
models) and audio-classification (Wav2Vec2 / HuBERT / WavLM). Output formats (keys, order, score semantics and types) are
transformers'. Batches are padded to a small set of shapes (see `core.pipelines.base`).
"""
from __future__ import annotations

from typing import Optional

from .audio import AudioClassificationPipeline, AutomaticSpeechRecognitionPipeline
from .base import Backend, Pipeline, PipelineError, load_model, load_tokenizer
from .feature_extraction import FeatureExtractionPipeline
from .fill_mask import FillMaskPipeline
from .image_classification import ImageClassificationPipeline, ZeroShotImageClassificationPipeline
from .question_answering import QuestionAnsweringPipeline
from .text2text_generation import SummarizationPipeline, Text2TextGenerationPipeline, TranslationPipeline
from .text_classification import TextClassificationPipeline
from .text_generation import TextGenerationPipeline
from .token_classification import TokenClassificationPipeline
from .zero_shot_classification import ZeroShotClassificationPipeline

PIPELINES: dict[str, type[Pipeline]] = {
    "feature-extraction": FeatureExtractionPipeline,
    "fill-mask": FillMaskPipeline,
    "text-classification": TextClassificationPipeline,
    "token-classification": TokenClassificationPipeline,
    "question-answering": QuestionAnsweringPipeline,
    "zero-shot-classification": ZeroShotClassificationPipeline,
    "text-generation": TextGenerationPipeline,
    "text2text-generation": Text2TextGenerationPipeline,
    "summarization": SummarizationPipeline,
    "translation": TranslationPipeline,
    "image-classification": ImageClassificationPipeline,
    "zero-shot-image-classification": ZeroShotImageClassificationPipeline,
    "automatic-speech-recognition": AutomaticSpeechRecognitionPipeline,
    "audio-classification": AudioClassificationPipeline,
}
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}


def pipeline(task: str, model=None, tokenizer=None, batch_size: int = 1, dtype=None,
             min_length_bucket: int = 8, model_kwargs: Optional[dict] = None,
             backend: Optional[Backend] = None) -> Pipeline:
    """A pipeline for `task` over a local Hugging Face folder (or a loaded Rosetta model plus tokenizer).

    model: a folder path, or a `PretrainedModel` loaded with the task's head.
    tokenizer: a folder or a Rosetta tokenizer; default: the model's folder.
    batch_size: texts (or windows, or premise/hypothesis pairs) per forward pass; overridable per call.
    min_length_bucket: the smallest padded length (lengths are padded to powers of two from here up
    to the model's maximum positions).
    dtype: the compute dtype (default float32).
    model_kwargs: passed to `PretrainedModel.from_pretrained`.
    backend: where the model runs (default JAX; `ports.torch.pipeline` passes the torch port's).
    """
    if not isinstance(task, str):
        raise TypeError(f"task must be a string, one of {sorted(PIPELINES)}, got {task!r}")
    name = ALIASES.get(task, task)
    if name.startswith("translation_"):          # translation_en_to_fr: the languages (and T5's prefix)
        name = "translation"
    if name not in PIPELINES:
        raise KeyError(f"Unknown task {task!r}; Rosetta's pipelines: {', '.join(sorted([*PIPELINES, *ALIASES]))}")
    if model is None:
        raise PipelineError(f"{name}: pass model=<folder>; Rosetta has no default checkpoints and does not "
                            "download from the Hub")
    cls = PIPELINES[name]
    if hasattr(cls, "create"):                   # generation, image and audio pipelines load what they need
        return cls.create(task if name == "translation" else name, model, tokenizer, batch_size, dtype,
                          min_length_bucket, model_kwargs, backend=backend)
    loaded = load_model(name, cls.head, model, dtype=dtype, model_kwargs=model_kwargs,
                        optional_pooler=cls.head == "base", backend=backend)
    tok = load_tokenizer(name, tokenizer, model)
    return cls(loaded, tok, batch_size=batch_size, min_length_bucket=min_length_bucket)


__all__ = [
    "ALIASES", "PIPELINES", "AudioClassificationPipeline", "AutomaticSpeechRecognitionPipeline",
    "FeatureExtractionPipeline", "FillMaskPipeline", "ImageClassificationPipeline",
    "Pipeline", "PipelineError", "QuestionAnsweringPipeline", "SummarizationPipeline", "Text2TextGenerationPipeline",
    "TextClassificationPipeline", "TextGenerationPipeline", "TokenClassificationPipeline", "TranslationPipeline",
    "ZeroShotClassificationPipeline", "ZeroShotImageClassificationPipeline", "pipeline",
]
