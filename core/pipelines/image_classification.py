"""image-classification and zero-shot-image-classification, answering like transformers' pipelines.

    classify = pipeline("image-classification", model="path/to/vit-folder", batch_size=4)
    classify("cat.png", top_k=3)                 # [{"label", "score"}, ...] best first
    zero = pipeline("zero-shot-image-classification", model="path/to/clip-folder")
    zero(image, candidate_labels=["a cat", "a dog"])   # [{"score", "label"}, ...] best first

Images: PIL images, numpy arrays (HWC / CHW / HW) or local file paths (opened with Pillow, EXIF
orientation applied, converted to RGB as transformers' `load_image`). The folder's
preprocessor_config.json drives `core.processing.image` (ViT / DeiT / CLIP processors). Batches of images are padded to a bucketed row count.
"""
from __future__ import annotations

import pathlib
from typing import Any, Optional

import numpy as np

from core.checkpoint.loading import read_config
from core.processing.image import ImageProcessor, ImageProcessorError

from .base import (Pipeline, PipelineError, backend_of, check_batch_size, check_model, check_top_k, describe,
                   load_model, load_tokenizer)
from .text_classification import check_function, default_function, sigmoid, softmax



def load_processor(task: str, folder) -> ImageProcessor:
    import json
    path = pathlib.Path(folder) / "preprocessor_config.json"
    if not path.is_file():
        raise PipelineError(f"{task}: {path} not found; an image model folder needs its preprocessor_config.json "
                            "(pass image_processor=... otherwise)")
    data = json.loads(path.read_text())
    try:
        return ImageProcessor.from_dict(data)
    except ImageProcessorError as error:
        raise PipelineError(f"{task}: {error}") from error


def load_image(image, task: str, where: str):
    """transformers' load_image for local paths and PIL images; numpy arrays pass through."""
    from PIL import Image, ImageOps
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, (str, pathlib.Path)):
        text = str(image)
        if text.startswith(("http://", "https://")):
            raise PipelineError(f"{task}: {where} is a URL; Rosetta pipelines read local files only")
        path = pathlib.Path(text)
        if not path.is_file():
            raise PipelineError(f"{task}: {where}: no image file at {text!r}")
        try:
            image = Image.open(path)
            image.load()
        except Exception as error:       # Pillow raises several types for unreadable files
            raise PipelineError(f"{task}: {where}: cannot read {text!r} as an image ({error})") from error
    if not isinstance(image, Image.Image):
        raise TypeError(f"{task}: {where} must be a PIL image, a numpy array or a local file path, "
                        f"got {describe(image)}")
    image = ImageOps.exif_transpose(image)
    return image.convert("RGB")


def _image_list(inputs, task):
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise PipelineError(f"{task}: inputs is an empty list; pass an image or a non-empty list of images")
        return list(inputs), False
    if inputs is None:
        raise ValueError(f"Cannot call the {task} pipeline without an inputs argument!")
    return [inputs], True


class ImageClassificationPipeline(Pipeline):
    """`pipe(image)` → the `top_k` (default 5, at most num_labels) best `{"label", "score"}`; a list of
    images → one such list each. `function_to_apply`: sigmoid, softmax or none; by default none for
    regression, sigmoid for multi-label or one label, softmax otherwise."""

    task = "image-classification"
    head = "image-classification"

    def __init__(self, model, image_processor: ImageProcessor, batch_size: int = 1):
        check_model(self.task, model)
        self.model = model
        self.image_processor = image_processor
        self.tokenizer = None
        self.batch_size = check_batch_size(batch_size)
        self._traces = 0
        self.backend = backend_of(model)
        self._forward = self.backend.compile(self, lambda call, xp, pixel_values: call(pixel_values).logits)

    def _pixels(self, images, single):
        loaded = [load_image(image, self.task, "inputs" if single else f"inputs[{i}]")
                  for i, image in enumerate(images)]
        try:
            return self.image_processor(loaded)["pixel_values"]
        except (ImageProcessorError, ValueError) as error:
            raise PipelineError(f"{self.task}: {error}") from error

    def _logits(self, pixels, batch_size):
        out = []
        for start in range(0, len(pixels), batch_size):
            chunk = pixels[start:start + batch_size]
            rows = self.batch_bucket(len(chunk), batch_size)
            batch = np.zeros((rows, *chunk.shape[1:]), np.float32)
            batch[:len(chunk)] = chunk
            out.extend(np.asarray(self._forward(batch), np.float32)[:len(chunk)])
        return out

    def __call__(self, inputs=None, *, top_k: int = 5, function_to_apply=None, batch_size: Optional[int] = None,
                 timeout=None, images=None) -> Any:
        if images is not None:
            inputs = images
        top_k = check_top_k(top_k)
        function = check_function(function_to_apply) or default_function(self.model.config)
        items, single = _image_list(inputs, self.task)
        pixels = self._pixels(items, single)
        logits = self._logits(pixels, self.batch_size if batch_size is None else check_batch_size(batch_size))
        labels = self.model.config.label_names
        k = min(top_k, len(labels))
        results = []
        for row in logits:
            scores = sigmoid(row) if function == "sigmoid" else softmax(row) if function == "softmax" else row
            ranked = sorted(({"label": labels[i], "score": s.item()} for i, s in enumerate(scores)),
                            key=lambda x: x["score"], reverse=True)
            results.append(ranked[:k])
        return results[0] if single else results

    def __repr__(self):
        return f"{type(self).__name__}(task={self.task!r}, model={self.model!r}, compiles={self.compile_count})"

    @classmethod
    def create(cls, task, model, tokenizer, batch_size, dtype, min_length_bucket, model_kwargs, backend=None):
        loaded = load_model(task, cls.head, model, dtype=dtype, model_kwargs=model_kwargs, backend=backend)
        if not isinstance(model, (str, pathlib.Path)):
            raise PipelineError(f"{task}: a loaded model needs its folder for the image processor; pass the folder")
        return cls(loaded, load_processor(task, model), batch_size=batch_size)


class ZeroShotImageClassificationPipeline(Pipeline):
    """`pipe(image, candidate_labels=[...], hypothesis_template="This is a photo of {}.")` → one
    `{"score", "label"}` per label, best first (softmax of CLIP's logits_per_image over the labels); a
    list of images → one such list each."""

    task = "zero-shot-image-classification"
    head = "base"

    def __init__(self, model, tokenizer, image_processor: ImageProcessor, batch_size: int = 1,
                 min_length_bucket: int = 8):
        check_model(self.task, model)
        if not hasattr(model.module, "get_text_features") and "logits_per_image" not in _output_fields(model):
            raise PipelineError(f"{self.task} needs a CLIP-style model (image and text towers, logits_per_image); "
                                f"{model.config.model_type!r} is not one")
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.batch_size = check_batch_size(batch_size)
        self.min_length_bucket = int(min_length_bucket)
        text_config = getattr(model.config, "text_config", None)
        self.max_positions = getattr(text_config, "max_position_embeddings", None)
        self._traces = 0

        def forward(call, xp, input_ids, attention_mask, pixel_values):
            return call(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits_per_image

        self.backend = backend_of(model)
        self._forward = self.backend.compile(self, forward)

    def __call__(self, image=None, candidate_labels=None, *, hypothesis_template: str = "This is a photo of {}.",
                 timeout=None, tokenizer_kwargs=None, batch_size=None, images=None) -> Any:
        if images is not None:
            image = images
        if candidate_labels is None or isinstance(candidate_labels, str) or not candidate_labels:
            raise PipelineError(f"{self.task}: pass candidate_labels=[...] (a non-empty list of label strings)")
        labels = list(candidate_labels)
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label.strip():
                raise PipelineError(f"{self.task}: candidate_labels[{i}] must be a non-empty string, got {label!r}")
        items, single = _image_list(image, self.task)
        sequences = [hypothesis_template.format(label) for label in labels]
        encoded = self.tokenizer(sequences, **(tokenizer_kwargs or {}))["input_ids"]
        longest = max(len(ids) for ids in encoded)
        length = max(self.min_length_bucket, 1 << max(longest - 1, 0).bit_length())
        if self.max_positions is not None:
            if longest > self.max_positions:
                raise PipelineError(f"{self.task}: a hypothesis of {longest} tokens exceeds the text model's maximum "
                                    f"of {self.max_positions} positions; shorten the labels or the template")
            length = min(length, self.max_positions)
        rows = 1 << max(len(labels) - 1, 0).bit_length()
        pad = self.tokenizer.pad_token_id or 0
        ids = np.full((rows, length), pad, np.int32)
        mask = np.zeros((rows, length), np.int32)
        for row, tokens in enumerate(encoded):
            ids[row, :len(tokens)] = tokens
            mask[row, :len(tokens)] = 1
        mask[len(labels):, 0] = 1
        results = []
        for i, item in enumerate(items):
            loaded = load_image(item, self.task, "image" if single else f"image[{i}]")
            try:
                pixels = self.image_processor([loaded])["pixel_values"]
            except (ImageProcessorError, ValueError) as error:
                raise PipelineError(f"{self.task}: {error}") from error
            logits = np.asarray(self._forward(ids, mask, pixels))[0, :len(labels)]
            scores = softmax(logits.astype(np.float32))
            results.append([{"score": s, "label": label}
                            for s, label in sorted(zip(scores.tolist(), labels), key=lambda x: -x[0])])
        return results[0] if single else results

    def __repr__(self):
        return f"{type(self).__name__}(task={self.task!r}, model={self.model!r}, compiles={self.compile_count})"

    @classmethod
    def create(cls, task, model, tokenizer, batch_size, dtype, min_length_bucket, model_kwargs, backend=None):
        if isinstance(model, (str, pathlib.Path)) and pathlib.Path(model).is_dir():
            config = read_config(model)
            if not hasattr(config, "text_config") or not hasattr(config, "vision_config"):
                raise PipelineError(f"{task} needs a CLIP-style model (text and vision towers); "
                                    f"{config.model_type!r} is not one")
        loaded = load_model(task, cls.head, model, dtype=dtype, model_kwargs=model_kwargs, backend=backend)
        if not isinstance(model, (str, pathlib.Path)):
            raise PipelineError(f"{task}: a loaded model needs its folder for the image processor; pass the folder")
        return cls(loaded, load_tokenizer(task, tokenizer, model), load_processor(task, model),
                   batch_size=batch_size, min_length_bucket=min_length_bucket)


def _output_fields(model) -> tuple:
    return ("logits_per_image",) if model.config.model_type in ("clip",) else ()
