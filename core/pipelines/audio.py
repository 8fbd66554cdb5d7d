"""automatic-speech-recognition (CTC models) and audio-classification, answering like transformers' pipelines.

    asr = pipeline("automatic-speech-recognition", model="path/to/wav2vec2-ctc-folder")
    asr(wave)                                   # {"text": "..."}; a list of inputs → a list of dicts
    asr("speech.wav", chunk_length_s=10)        # long audio in overlapping chunks (transformers' striding)
    classify = pipeline("audio-classification", model="path/to/folder")
    classify(wave, top_k=3)                     # [{"score", "label"}, ...] best first

Models: Wav2Vec2 / HuBERT / WavLM with a CTC head (ASR) or a sequence-classification head. The folder's
preprocessor_config.json is read by `core.processing.audio.AutoFeatureExtractor` (a
Wav2Vec2FeatureExtractor); ASR decodes the frame-wise argmax with the folder's tokenizer (a
`Wav2Vec2CTCTokenizer`: repeated tokens grouped, the pad/blank token dropped, `|` → space), as
transformers does with `skip_special_tokens=False`.

Inputs: a 1-D numpy array at the feature extractor's sampling rate (ASR also takes (channels, samples)
with at most 2 channels and averages them, as transformers' `_to_mono`); a dict {"raw" or "array":
array, "sampling_rate": rate}; a local .wav file (read with scipy.io.wavfile; integer samples scaled to
[-1, 1) as ffmpeg does, several channels averaged); raw .wav bytes; or a list of those. Rosetta does not
resample: a sampling rate other than the feature extractor's is an error naming both rates (transformers
resamples with torchaudio, or with ffmpeg for files; resample beforehand, e.g. scipy.signal.resample_poly).

Shapes. Each wave is normalised on its own (as transformers does for one input), then padded with zeros
to a power-of-two number of samples (at least `min_samples_bucket`) with an attention mask over the real
samples, and batches are padded to a bucketed row count, so a run over many lengths compiles once per
bucket (`compile_count`). That is exact only for encoders whose conv features are computed per frame
(`feat_extract_norm="layer"`): with `feat_extract_norm="group"` the first conv's GroupNorm normalises
over the whole (padded) time axis, so, as in transformers (whose docs say not to pad those models), such
models run one wave at a time at its exact length: one compilation per distinct length.
"""
from __future__ import annotations

import io
import pathlib
from typing import Any, Optional

import numpy as np

from core.processing.audio import AutoFeatureExtractor, FeatureExtractorError, Wav2Vec2FeatureExtractor

from .base import (JAX, Pipeline, PipelineError, _next_power_of_two, backend_of, check_batch_size, check_model,
                   check_top_k, describe, load_model, load_tokenizer)
from .text_classification import check_function, sigmoid, softmax


def load_feature_extractor(task: str, folder) -> Wav2Vec2FeatureExtractor:
    try:
        extractor = AutoFeatureExtractor.from_pretrained(folder)
    except FeatureExtractorError as error:
        raise PipelineError(f"{task}: {error}") from error
    if not isinstance(extractor, Wav2Vec2FeatureExtractor):
        raise PipelineError(f"{task}: the folder's feature extractor is a {type(extractor).__name__}; Rosetta's "
                            f"{task} pipeline serves raw-audio models (Wav2Vec2FeatureExtractor)")
    return extractor


def _wav_to_float(data: np.ndarray) -> np.ndarray:
    """Samples of a .wav file as float32 mono in [-1, 1), as ffmpeg's f32le output (channels averaged)."""
    if data.dtype == np.uint8:
        data = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    else:
        data = data.astype(np.float32)
    if data.ndim == 2:                       # (samples, channels)
        data = data.mean(axis=1)
    return data


def read_wav(source, task: str, where: str, sampling_rate: int) -> np.ndarray:
    from scipy.io import wavfile
    name = "the bytes given" if isinstance(source, bytes) else repr(str(source))
    try:
        rate, data = wavfile.read(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except Exception as error:           # scipy raises ValueError / struct.error / EOFError for bad files
        raise PipelineError(f"{task}: {where}: cannot read {name} as a .wav file ({error}); Rosetta reads "
                            "uncompressed .wav files (other formats: decode them to an array first)") from error
    if rate != sampling_rate:
        raise PipelineError(f"{task}: {where}: {name} is sampled at {rate} Hz but the model's feature extractor "
                            f"expects {sampling_rate} Hz; Rosetta does not resample: resample the audio to "
                            f"{sampling_rate} Hz first")
    return _wav_to_float(data)


def load_audio(item, task: str, where: str, sampling_rate: int, allow_stereo: bool) -> np.ndarray:
    """One input → a float 1-D wave at `sampling_rate`, or a PipelineError / TypeError naming the problem."""
    if isinstance(item, (str, pathlib.Path)):
        text = str(item)
        if text.startswith(("http://", "https://")):
            raise PipelineError(f"{task}: {where} is a URL; Rosetta pipelines read local files only")
        if not pathlib.Path(text).is_file():
            raise PipelineError(f"{task}: {where}: no audio file at {text!r}")
        wave = read_wav(text, task, where, sampling_rate)
    elif isinstance(item, bytes):
        wave = read_wav(item, task, where, sampling_rate)
    elif isinstance(item, dict):
        if "sampling_rate" not in item or not ("raw" in item or "array" in item):
            raise PipelineError(f"{task}: {where}: a dict input needs a \"raw\" (or \"array\") key holding the "
                                f"audio array and a \"sampling_rate\" key; got keys {sorted(item)}")
        wave = item["raw"] if item.get("raw") is not None else item.get("array")
        rate = item["sampling_rate"]
        if rate != sampling_rate:
            raise PipelineError(f"{task}: {where}: the audio is sampled at {rate} Hz but the model's feature "
                                f"extractor expects {sampling_rate} Hz; Rosetta does not resample: resample the "
                                f"audio to {sampling_rate} Hz first")
        if not isinstance(wave, np.ndarray):
            raise TypeError(f"{task}: {where}[\"raw\"] must be a numpy array, got {describe(wave)}")
    elif isinstance(item, np.ndarray):
        wave = item
    else:
        raise TypeError(f"{task}: {where} must be a numpy array, a dict with \"raw\"/\"array\" and "
                        f"\"sampling_rate\", a local .wav path or .wav bytes; got {describe(item)}")
    if not (np.issubdtype(wave.dtype, np.floating) or np.issubdtype(wave.dtype, np.integer)):
        raise TypeError(f"{task}: {where}: audio samples must be numbers, got an array of {wave.dtype}")
    if wave.ndim == 2 and allow_stereo:
        if wave.shape[0] > 2:
            raise PipelineError(f"{task}: {where}: an array of shape {wave.shape} is read as (channels, samples) "
                                "with at most 2 channels; transpose a (samples, channels) array or downmix it")
        wave = wave.mean(axis=0)
    if wave.ndim != 1:
        raise PipelineError(f"{task}: {where}: expected mono audio of shape (samples,), got shape {wave.shape}")
    if wave.shape[0] == 0:
        raise PipelineError(f"{task}: {where} is empty (0 samples); there is no audio to process")
    if not np.all(np.isfinite(wave)):
        raise PipelineError(f"{task}: {where} contains NaN or infinite samples")
    return wave


def _inputs_list(inputs, task: str):
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise PipelineError(f"{task}: inputs is an empty list; pass audio or a non-empty list of audio inputs")
        return list(inputs), False
    if inputs is None:
        raise ValueError(f"Cannot call the {task} pipeline without an inputs argument!")
    return [inputs], True


class _AudioPipeline(Pipeline):
    """Shared by both audio pipelines: input loading, feature extraction, bucketed batches."""

    task = ""
    head = ""
    allow_stereo = False

    def __init__(self, model, feature_extractor: Wav2Vec2FeatureExtractor, batch_size: int = 1,
                 min_samples_bucket: int = 1024):
        check_model(self.task, model)
        if model.task != self.head:
            raise PipelineError(f"{self.task} needs a model loaded with the {self.head!r} head, got task={model.task!r}")
        if not isinstance(feature_extractor, Wav2Vec2FeatureExtractor):
            raise TypeError(f"{self.task}: feature_extractor must be a core.processing.audio.Wav2Vec2FeatureExtractor, "
                            f"got {describe(feature_extractor)}")
        self.model = model
        self.feature_extractor = feature_extractor
        self.batch_size = check_batch_size(batch_size)
        self.min_samples_bucket = int(min_samples_bucket)
        config = model.config
        # Padding is exact only when the conv features do not normalise over time (see the module docstring).
        self.exact_lengths = getattr(config, "feat_extract_norm", "layer") == "group"
        self._traces = 0
        select = self._select

        def forward(call, xp, input_values, attention_mask):
            return select(call(input_values, attention_mask=attention_mask), xp)

        self.backend = backend_of(model)
        self._forward = self.backend.compile(self, forward)

    @staticmethod
    def _select(out, xp):
        raise NotImplementedError

    @property
    def compile_count(self) -> int:
        return self._traces

    @property
    def sampling_rate(self) -> int:
        return self.feature_extractor.sampling_rate

    def _load(self, items, single) -> list[np.ndarray]:
        return [load_audio(item, self.task, "inputs" if single else f"inputs[{i}]", self.sampling_rate,
                           self.allow_stereo) for i, item in enumerate(items)]

    def _features(self, wave: np.ndarray, where: str) -> np.ndarray:
        """transformers' per-input feature extraction: one unpadded wave (normalised over itself)."""
        try:
            values = self.feature_extractor(wave, sampling_rate=self.sampling_rate)["input_values"]
        except FeatureExtractorError as error:
            raise PipelineError(f"{self.task}: {where}: {error}") from error
        values = np.asarray(values, np.float32)[0]
        frames = self.model.config.feat_extract_output_length(values.shape[0])
        if frames < 1:
            needed = values.shape[0]
            while self.model.config.feat_extract_output_length(needed) < 1:
                needed += 1
            raise PipelineError(f"{self.task}: {where} has {values.shape[0]} samples, fewer than the {needed} the "
                                "model's convolutional feature encoder needs for one frame")
        return values

    def _run(self, features: list[np.ndarray], batch_size: int) -> list[dict[str, np.ndarray]]:
        """Model outputs per feature row (batch axis removed), in input order."""
        if self.exact_lengths:
            batch_size = 1
        results = []
        for start in range(0, len(features), batch_size):
            chunk = features[start:start + batch_size]
            longest = max(len(f) for f in chunk)
            length = longest if self.exact_lengths else max(self.min_samples_bucket, _next_power_of_two(longest))
            rows = 1 if self.exact_lengths else min(_next_power_of_two(len(chunk)), batch_size)
            values = np.zeros((rows, length), np.float32)
            mask = np.ones((rows, length), np.int32)        # filler rows: zeros, fully visible
            for row, feature in enumerate(chunk):
                values[row, :len(feature)] = feature
                mask[row, len(feature):] = 0
            out = self._forward(values, mask)
            for row in range(len(chunk)):
                results.append({name: np.asarray(value[row]) for name, value in out.items()})
        return results

    def __repr__(self):
        return (f"{type(self).__name__}(task={self.task!r}, model={self.model!r}, batch_size={self.batch_size}, "
                f"compiles={self.compile_count})")


class AutomaticSpeechRecognitionPipeline(_AudioPipeline):
    """`pipe(audio)` → `{"text": ...}` (greedy CTC decoding); a list of inputs → one dict each.
    `chunk_length_s` (seconds) with `stride_length_s` (default chunk_length_s / 6; a number or
    [left, right]): transformers' chunked CTC inference (overlapping chunks, each normalised on its
    own, the frames of the strides dropped before decoding)."""

    task = "automatic-speech-recognition"
    head = "ctc"
    allow_stereo = True

    def __init__(self, model, tokenizer, feature_extractor: Wav2Vec2FeatureExtractor,
                 batch_size: int = 1, min_samples_bucket: int = 1024):
        super().__init__(model, feature_extractor, batch_size, min_samples_bucket)
        self.tokenizer = tokenizer

    @staticmethod
    def _select(out, xp):
        return {"tokens": xp.argmax(out.logits, axis=-1)}

    def _chunks(self, wave: np.ndarray, chunk_length_s, stride_length_s):
        """transformers' chunk_iter: (samples of the chunk, (chunk_len, left, right) stride in samples)."""
        if isinstance(chunk_length_s, bool) or not isinstance(chunk_length_s, (int, float)) or chunk_length_s <= 0:
            raise ValueError(f"chunk_length_s must be a positive number of seconds, got {chunk_length_s!r}")
        if stride_length_s is None:
            stride_length_s = chunk_length_s / 6
        if isinstance(stride_length_s, (int, float)):
            stride_length_s = [stride_length_s, stride_length_s]
        rate = self.sampling_rate
        align_to = int(np.prod(self.model.config.conv_stride))
        chunk_len = int(round(chunk_length_s * rate / align_to) * align_to)
        stride_left = int(round(stride_length_s[0] * rate / align_to) * align_to)
        stride_right = int(round(stride_length_s[1] * rate / align_to) * align_to)
        if chunk_len < stride_left + stride_right:
            raise PipelineError(f"{self.task}: chunk length ({chunk_len} samples) must be longer than the two "
                                f"strides ({stride_left} + {stride_right} samples)")
        if chunk_len - stride_left - stride_right <= 0:
            raise PipelineError(f"{self.task}: chunk_length_s={chunk_length_s} leaves no step between the strides")
        step = chunk_len - stride_left - stride_right
        pieces = []
        for start in range(0, wave.shape[0], step):
            end = start + chunk_len
            piece = wave[start:end]
            left = 0 if start == 0 else stride_left
            is_last = end >= wave.shape[0]
            right = 0 if is_last else stride_right
            if piece.shape[0] > left:
                pieces.append((piece, (piece.shape[0], left, right)))
            if is_last:
                break
        return pieces, align_to

    def __call__(self, inputs=None, *, chunk_length_s: Optional[float] = None, stride_length_s=None,
                 batch_size: Optional[int] = None, return_timestamps=None, **kwargs) -> Any:
        if return_timestamps:
            raise PipelineError(f"{self.task}: return_timestamps is not supported by Rosetta's pipeline")
        if kwargs:
            raise TypeError(f"{self.task}: unexpected arguments {sorted(kwargs)}")
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        items, single = _inputs_list(inputs, self.task)
        waves = self._load(items, single)
        features, owners, strides = [], [], []         # every chunk of every input, batched together
        align_to = int(np.prod(self.model.config.conv_stride))
        for index, wave in enumerate(waves):
            where = "inputs" if single else f"inputs[{index}]"
            if not chunk_length_s:
                pieces = [(wave, None)]
            else:
                pieces, align_to = self._chunks(wave, chunk_length_s, stride_length_s)
            for piece, stride in pieces:
                features.append(self._features(piece, where))
                owners.append(index)
                strides.append(stride)
        tokens = [[] for _ in waves]
        for feature, out, stride, owner in zip(features, self._run(features, batch_size), strides, owners):
            frames = self.model.config.feat_extract_output_length(len(feature))
            row = out["tokens"][:frames]
            if stride is not None:            # transformers' rescale_stride, then cut the strides off
                total, left, right = stride
                token_n = int(round(total / align_to))
                left = int(round(left / total * token_n))
                right = int(round(right / total * token_n))
                row = row[left:token_n - right]
            tokens[owner].append(row)
        results = []
        for rows in tokens:
            ids = np.concatenate(rows).astype(np.int64).tolist()
            results.append({"text": self.tokenizer.decode(ids, skip_special_tokens=False)})
        return results[0] if single else results

    @classmethod
    def create(cls, task, model, tokenizer, batch_size, dtype, min_length_bucket, model_kwargs, backend=None):
        if _is_whisper_folder(model):           # encoder-decoder speech model: generation, see whisper_asr
            from .whisper_asr import WhisperSpeechRecognitionPipeline
            return WhisperSpeechRecognitionPipeline.create(task, model, tokenizer, batch_size, dtype,
                                                           min_length_bucket, model_kwargs, backend=backend)
        if (backend or JAX).is_loaded(model):
            raise PipelineError(f"{task}: a loaded model needs its folder for the feature extractor; pass the folder")
        loaded = load_model(task, cls.head, model, dtype=dtype, model_kwargs=model_kwargs, backend=backend)
        return cls(loaded, load_tokenizer(task, tokenizer, model), load_feature_extractor(task, model),
                   batch_size=batch_size)


def _is_whisper_folder(model) -> bool:
    if not isinstance(model, (str, pathlib.Path)) or not (pathlib.Path(model) / "config.json").is_file():
        return False
    import json
    try:
        return json.loads((pathlib.Path(model) / "config.json").read_text()).get("model_type") == "whisper"
    except (OSError, ValueError):
        return False


def audio_default_function(config) -> str:
    """transformers' audio-classification default: none for regression, sigmoid for multi-label, else softmax."""
    if config.problem_type == "regression":
        return "none"
    if config.problem_type == "multi_label_classification":
        return "sigmoid"
    return "softmax"


class AudioClassificationPipeline(_AudioPipeline):
    """`pipe(audio)` → the `top_k` (default: every label) best `{"score", "label"}`, best first; a list of
    inputs → one such list each. `function_to_apply`: softmax (default), sigmoid (multi-label) or none
    (regression)."""

    task = "audio-classification"
    head = "sequence-classification"

    @staticmethod
    def _select(out, xp):
        return {"logits": out.logits}

    def __call__(self, inputs=None, *, top_k: Optional[int] = None, function_to_apply=None,
                 batch_size: Optional[int] = None) -> Any:
        labels = self.model.config.label_names
        k = len(labels) if top_k is None else min(check_top_k(top_k), len(labels))
        function = check_function(function_to_apply) or audio_default_function(self.model.config)
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        items, single = _inputs_list(inputs, self.task)
        waves = self._load(items, single)
        features = [self._features(w, "inputs" if single else f"inputs[{i}]") for i, w in enumerate(waves)]
        results = []
        for out in self._run(features, batch_size):
            row = np.asarray(out["logits"], np.float32)
            scores = sigmoid(row) if function == "sigmoid" else softmax(row) if function == "softmax" else row
            order = sorted(range(len(labels)), key=lambda i: -float(scores[i]))
            results.append([{"score": float(scores[i]), "label": labels[i]} for i in order[:k]])
        return results[0] if single else results

    @classmethod
    def create(cls, task, model, tokenizer, batch_size, dtype, min_length_bucket, model_kwargs, backend=None):
        if (backend or JAX).is_loaded(model):
            raise PipelineError(f"{task}: a loaded model needs its folder for the feature extractor; pass the folder")
        loaded = load_model(task, cls.head, model, dtype=dtype, model_kwargs=model_kwargs, backend=backend)
        return cls(loaded, load_feature_extractor(task, model), batch_size=batch_size)
