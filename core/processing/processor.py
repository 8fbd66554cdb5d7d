"""Processors: a model's tokenizer and its feature extractor or image processor behind one call,
as `transformers`' `AutoProcessor` gives them.

    processor = AutoProcessor.from_pretrained(folder)
    processor(audio=waves, sampling_rate=16000)              # WhisperProcessor: {"input_features"}
    processor(audio=waves, text=transcripts)                 # ... plus "labels" (the text's input_ids)
    processor(text=["a cat", "a dog"], images=image, padding=True)   # CLIPProcessor
    processor.batch_decode(tokens, skip_special_tokens=True)

`AutoProcessor.from_pretrained` picks the class as `transformers` does: a `processor_class` named in
processor_config.json, preprocessor_config.json, tokenizer_config.json or config.json; else the
model type's processor (whisper → WhisperProcessor; wav2vec2, hubert, wavlm → Wav2Vec2Processor;
clip → CLIPProcessor); else, for models without one, the first of the tokenizer, the image
processor and the feature extractor that the folder holds.

Keyword arguments go to every component that takes them (a speech processor's `padding` pads the
audio and the text, as in `transformers`); one that no component takes is an error naming it.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import os
import pathlib
from typing import Any, Optional

from core.processing.audio import AutoFeatureExtractor
from core.processing.image import ImageProcessor

# The tokenizer's call options (core.tokenization.base.PreTrainedTokenizer._encode_call and __call__).
TEXT_OPTIONS = frozenset({
    "text_pair", "text_target", "text_pair_target", "max_target_length", "add_special_tokens", "padding",
    "truncation", "max_length", "pad_to_multiple_of", "padding_side", "return_tensors", "return_token_type_ids",
    "return_attention_mask", "return_special_tokens_mask", "return_offsets_mapping", "return_length"})


class ProcessorError(ValueError):
    """A processor folder or call that cannot work; the message names the fix."""


def _options(component) -> frozenset:
    """The keyword options a feature extractor / image processor call takes."""
    if isinstance(component, ImageProcessor):
        return frozenset({"return_tensors", *(f.name for f in dataclasses.fields(component))})
    parameters = list(inspect.signature(component.__call__).parameters.values())[1:]    # after the input
    return frozenset(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _check_return_tensors(kwargs: dict) -> None:
    value = kwargs.get("return_tensors")
    if value not in (None, "np"):
        raise ValueError(f"return_tensors={value!r}: Rosetta's processors return numpy arrays ('np'); convert them "
                         "with jnp.asarray / torch.as_tensor / tf.convert_to_tensor")


class Processor:
    """A tokenizer with a feature extractor (speech) or an image processor (vision-text)."""

    def __init__(self, tokenizer=None, feature_extractor=None, image_processor=None):
        if tokenizer is None:
            raise ProcessorError(f"{type(self).__name__} needs a tokenizer")
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        self.image_processor = image_processor

    def _split(self, kwargs: dict, components: dict) -> dict:
        """kwargs → {component name: the options it takes}; an option nobody takes is an error."""
        routed = {name: {} for name in components}
        for key, value in kwargs.items():
            takers = [name for name, options in components.items() if key in options]
            if not takers:
                raise TypeError(f"{type(self).__name__}: unknown option {key!r}; the tokenizer takes "
                                f"{sorted(components.get('text', TEXT_OPTIONS))}, the other component "
                                f"{sorted(set().union(*components.values()) - TEXT_OPTIONS)}")
            for name in takers:
                routed[name][key] = value
        return routed

    def decode(self, *args, **kwargs) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    def batch_decode(self, *args, **kwargs) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def apply_chat_template(self, *args, **kwargs):
        return self.tokenizer.apply_chat_template(*args, **kwargs)

    def __repr__(self) -> str:
        parts = [f"tokenizer={type(self.tokenizer).__name__}"]
        for name in ("feature_extractor", "image_processor"):
            if getattr(self, name) is not None:
                parts.append(f"{name}={type(getattr(self, name)).__name__}")
        return f"{type(self).__name__}({', '.join(parts)})"


class SpeechProcessor(Processor):
    """`transformers`' WhisperProcessor / Wav2Vec2Processor: audio through the feature extractor,
    text through the tokenizer; with both, the text's input_ids become the "labels"."""

    def __init__(self, feature_extractor, tokenizer):
        if feature_extractor is None:
            raise ProcessorError(f"{type(self).__name__} needs a feature extractor (preprocessor_config.json)")
        super().__init__(tokenizer=tokenizer, feature_extractor=feature_extractor)

    def __call__(self, audio=None, text=None, **kwargs) -> dict[str, Any]:
        if audio is None and text is None:
            raise ValueError("You need to specify either an `audio` or `text` input to process.")
        _check_return_tensors(kwargs)
        routed = self._split(kwargs, {"audio": _options(self.feature_extractor), "text": TEXT_OPTIONS})
        inputs = None if audio is None else dict(self.feature_extractor(audio, **routed["audio"]))
        encodings = None if text is None else self.tokenizer(text, **routed["text"])
        if encodings is None:
            return inputs
        if inputs is None:
            return encodings
        inputs["labels"] = encodings["input_ids"]
        return inputs


class WhisperProcessor(SpeechProcessor):
    """WhisperFeatureExtractor (log-mel `input_features`) + the Whisper tokenizer."""


class Wav2Vec2Processor(SpeechProcessor):
    """Wav2Vec2FeatureExtractor (`input_values`) + the CTC tokenizer (Wav2Vec2, HuBERT, WavLM)."""


class CLIPProcessor(Processor):
    """`transformers`' CLIPProcessor: images through the image processor, text through the
    tokenizer; the result holds both ({"input_ids", "attention_mask", "pixel_values"})."""

    def __init__(self, image_processor, tokenizer):
        if image_processor is None:
            raise ProcessorError("CLIPProcessor needs an image processor (preprocessor_config.json)")
        super().__init__(tokenizer=tokenizer, image_processor=image_processor)

    def __call__(self, images=None, text=None, **kwargs) -> dict[str, Any]:
        if images is None and text is None:
            raise ValueError("You have to specify at least one of `images` or `text`.")
        _check_return_tensors(kwargs)
        routed = self._split(kwargs, {"images": _options(self.image_processor), "text": TEXT_OPTIONS})
        data = {}
        if text is not None:
            data.update(self.tokenizer(text, **routed["text"]))
        if images is not None:
            data.update(self.image_processor(images, **routed["images"]))
        return data


PROCESSOR_CLASSES = {cls.__name__: cls for cls in (WhisperProcessor, Wav2Vec2Processor, CLIPProcessor)}
# transformers' PROCESSOR_MAPPING for the model types Rosetta has.
MODEL_TYPE_PROCESSORS = {"whisper": "WhisperProcessor", "wav2vec2": "Wav2Vec2Processor",
                         "hubert": "Wav2Vec2Processor", "wavlm": "Wav2Vec2Processor", "clip": "CLIPProcessor"}


def _json(path: pathlib.Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ProcessorError(f"{path}: not readable JSON ({error}); restore the file from the model's source")
    return data if isinstance(data, dict) else {}


def _build(name: str, folder: pathlib.Path) -> Processor:
    from core.tokenization import AutoTokenizer

    cls = PROCESSOR_CLASSES[name]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if issubclass(cls, SpeechProcessor):
        return cls(AutoFeatureExtractor.from_pretrained(folder), tokenizer)
    return cls(ImageProcessor.from_pretrained(folder), tokenizer)


class AutoProcessor:
    """`AutoProcessor.from_pretrained(folder)`: see the module docstring."""

    def __init__(self):
        raise TypeError("AutoProcessor is a factory: use AutoProcessor.from_pretrained(folder)")

    @staticmethod
    def from_pretrained(folder: str | os.PathLike):
        folder = pathlib.Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{str(folder)!r} is not a directory. AutoProcessor.from_pretrained reads a local "
                                    "Hugging Face model folder; Rosetta does not download from the Hub.")
        name: Optional[str] = None
        for file in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json", "config.json"):
            name = _json(folder / file).get("processor_class")
            if name:
                break
        if not name:
            name = MODEL_TYPE_PROCESSORS.get(_json(folder / "config.json").get("model_type"))
        if name:
            if name not in PROCESSOR_CLASSES:
                raise ProcessorError(f"{folder}: processor_class {name!r} is not supported; Rosetta has "
                                     f"{', '.join(PROCESSOR_CLASSES)} (or load the tokenizer / feature extractor / "
                                     "image processor on its own)")
            return _build(name, folder)
        from core.processing.audio import FeatureExtractorError
        from core.processing.image import ImageProcessorError
        from core.tokenization import AutoTokenizer

        failures = []
        for loader, kind in ((AutoTokenizer.from_pretrained, "tokenizer"),
                             (ImageProcessor.from_pretrained, "image processor"),
                             (AutoFeatureExtractor.from_pretrained, "feature extractor")):
            try:
                return loader(folder)
            except (OSError, ValueError, FeatureExtractorError, ImageProcessorError) as error:
                failures.append(f"{kind}: {error}")
        raise ProcessorError(f"Unrecognized processing class in {folder}: no processor, tokenizer, image processor "
                             "or feature extractor could be loaded (" + "; ".join(failures) + ")")
