"""automatic-speech-recognition with Whisper (encoder-decoder, log-mel features), answering like
transformers 5's pipeline for `model_type == "whisper"`.

    asr = pipeline("automatic-speech-recognition", model="path/to/whisper-folder")
    asr(wave)                                                   # {"text": " ..."}
    asr(wave, generate_kwargs={"language": "en", "task": "transcribe"}, max_new_tokens=64)
    asr(long_wave, chunk_length_s=30)                           # overlapping 30 s chunks, merged
    asr(long_wave)                                              # Whisper's long-form generate (sequential)
    asr(wave, return_timestamps=True)       # {"text", "chunks": [{"timestamp": (start, end), "text"}, ...]}

Inputs as the CTC pipeline (`core.pipelines.audio.load_audio`): arrays at the feature extractor's rate,
{"raw"/"array", "sampling_rate"} dicts, local .wav files, .wav bytes, lists of those.

Generation: the call's keyword arguments and `generate_kwargs` go to `model.generate` (Rosetta's
Whisper generate: language, task, max_new_tokens, num_beams, ...), plus transformers'
pipeline defaults for what neither the call nor the model's generation config sets:
max_new_tokens=256 (not when max_length is set), num_beams=5, pad_token_id from the tokenizer.

Shapes: every input (or chunk) is padded to the feature extractor's 30 s window, so a batch has one
shape; batches are padded to a power-of-two row count ≤ batch_size. `compile_count` counts distinct
(rows, options) generate calls (each compiles Rosetta's decode loop once).

Decoding: transformers' `WhisperTokenizer._decode_asr` with segment-level timestamps or none (its
state machine over language / special / timestamp / text tokens, chunks merged across strides with its
`_find_longest_common_sequence`), reimplemented here. Language tokens are those of
generation_config.lang_to_id.

Long audio: without `chunk_length_s`, audio longer than the 30 s window goes, whole (features without
truncation), through Whisper's long-form generate, one input at a time, as transformers does (which
needs timestamps: a generation_config.json saying return_timestamps false makes it an error, as in
transformers, unless the call passes return_timestamps=True). Not supported: return_timestamps="word"
(cross-attention DTW), return_language.
"""
from __future__ import annotations

import re
from typing import Any, Optional

import numpy as np

from core.processing.audio import AutoFeatureExtractor, FeatureExtractorError, WhisperFeatureExtractor

from .audio import _inputs_list, load_audio
from .base import JAX, PipelineError, check_batch_size, check_model, describe, load_model, load_tokenizer
from .text_generation import GenerationPipelineMixin

# transformers' AutomaticSpeechRecognitionPipeline._default_generation_config
DEFAULTS = {"max_new_tokens": 256, "num_beams": 5}
_TIMESTAMP = re.compile(r"<\|(\d+\.\d+)\|>")


def longest_common_sequence(sequences: list[list[int]]) -> list[int]:
    """Merge the token lists of overlapping chunks: for each next chunk, slide it over the merged
    tail, keep the alignment with the best match ratio (more than one match; a tiny bonus for longer
    overlaps), then take the left chunk up to the middle of the overlap and the right one after it
    (transformers' Whisper `_find_longest_common_sequence`, without token timestamps)."""
    left = list(sequences[0])
    total: list[int] = []
    for right in sequences[1:]:
        right = list(right)
        n_left, n_right = len(left), len(right)
        best = 0.0
        indices = (n_left, n_left, 0, 0)
        for i in range(1, n_left + n_right):
            l0, l1 = max(0, n_left - i), min(n_left, n_left + n_right - i)
            r0, r1 = max(0, i - n_left), min(n_right, i)
            matches = sum(1 for a, b in zip(left[l0:l1], right[r0:r1]) if a == b)
            score = matches / i + i / 10000.0
            if matches > 1 and score > best:
                best = score
                indices = (l0, l1, r0, r1)
        l0, l1, r0, r1 = indices
        total.extend(left[:(l0 + l1) // 2])
        left = right[(r0 + r1) // 2:]
    total.extend(left)
    return total


class WhisperSpeechRecognitionPipeline(GenerationPipelineMixin):
    """See the module docstring."""

    task = "automatic-speech-recognition"
    head = "seq2seq-lm"
    default_generation = DEFAULTS

    def __init__(self, model, tokenizer, feature_extractor: WhisperFeatureExtractor, batch_size: int = 1):
        check_model(self.task, model)
        if model.task != self.head:
            raise PipelineError(f"{self.task} needs a Whisper model loaded with the {self.head!r} head, "
                                f"got task={model.task!r}")
        if not isinstance(feature_extractor, WhisperFeatureExtractor):
            raise TypeError(f"{self.task}: feature_extractor must be a core.processing.audio.WhisperFeatureExtractor, "
                            f"got {describe(feature_extractor)}")
        self._init_generation(model, tokenizer, batch_size, 1)
        self.feature_extractor = feature_extractor
        extra = dict(model.generation_config.extra)
        self.languages = {int(i): str(t) for t, i in (extra.get("lang_to_id") or {}).items()}
        ids = tokenizer.convert_tokens_to_ids(["<|notimestamps|>", "<|startofprev|>", "<|startoftranscript|>"])
        self.timestamp_begin = ids[0] + 1 if ids[0] is not None and ids[0] != tokenizer.unk_token_id else None
        self.prompt_id, self.start_id = ids[1], ids[2]
        self.special = set(tokenizer.all_special_ids)
        self.time_precision = feature_extractor.chunk_length / model.config.max_source_positions

    @property
    def sampling_rate(self) -> int:
        return self.feature_extractor.sampling_rate

    # -- generation options ------------------------------------------------------------------------------
    def _generate_kwargs(self, kwargs: dict) -> dict:
        """transformers' `_prepare_generate_kwargs`: a default is added unless the call sets it or the
        model's generation config sets it to a non-default value (its `to_diff_dict`)."""
        from core.generation.config import GLOBAL_DEFAULTS
        config = self.model.generation_config.to_dict()
        set_params = {**{k: v for k, v in config.items() if GLOBAL_DEFAULTS.get(k, object()) != v}, **kwargs}
        added = {k: v for k, v in self.default_generation.items()
                 if k not in set_params and not (k == "max_new_tokens" and "max_length" in set_params)}
        pad = self.tokenizer.pad_token_id
        if pad is not None and "pad_token_id" not in set_params:
            added["pad_token_id"] = pad
        return {**kwargs, **added}

    # -- inputs ------------------------------------------------------------------------------------------
    def _features(self, wave: np.ndarray, where: str) -> np.ndarray:
        try:
            out = self.feature_extractor(wave, sampling_rate=self.sampling_rate)
        except FeatureExtractorError as error:
            raise PipelineError(f"{self.task}: {where}: {error}") from error
        return np.asarray(out["input_features"], np.float32)[0]

    def _chunks(self, wave: np.ndarray, chunk_length_s, stride_length_s):
        """transformers' chunk_iter (align_to 1 for Whisper): (samples, (chunk, left, right) in seconds)."""
        if isinstance(chunk_length_s, bool) or not isinstance(chunk_length_s, (int, float)) or chunk_length_s <= 0:
            raise ValueError(f"chunk_length_s must be a positive number of seconds, got {chunk_length_s!r}")
        if stride_length_s is None:
            stride_length_s = chunk_length_s / 6
        if isinstance(stride_length_s, (int, float)):
            stride_length_s = [stride_length_s, stride_length_s]
        rate = self.sampling_rate
        chunk_len = int(round(chunk_length_s * rate))
        stride_left = int(round(stride_length_s[0] * rate))
        stride_right = int(round(stride_length_s[1] * rate))
        if chunk_len < stride_left + stride_right:
            raise PipelineError(f"{self.task}: chunk length ({chunk_len} samples) must be longer than the two "
                                f"strides ({stride_left} + {stride_right} samples)")
        step = chunk_len - stride_left - stride_right
        if step <= 0:
            raise PipelineError(f"{self.task}: chunk_length_s={chunk_length_s} leaves no step between the strides")
        if chunk_len > self.feature_extractor.n_samples:
            raise PipelineError(f"{self.task}: chunk_length_s={chunk_length_s} is longer than Whisper's "
                                f"{self.feature_extractor.chunk_length} s window; use chunk_length_s="
                                f"{self.feature_extractor.chunk_length} or less")
        pieces = []
        for start in range(0, wave.shape[0], step):
            end = start + chunk_len
            piece = wave[start:end]
            left = 0 if start == 0 else stride_left
            is_last = end >= wave.shape[0]
            right = 0 if is_last else stride_right
            if piece.shape[0] > left:
                pieces.append((piece, (piece.shape[0] / rate, left / rate, right / rate)))
            if is_last:
                break
        return pieces

    # -- the call ------------------------------------------------------------------------------------------
    def __call__(self, inputs=None, *, chunk_length_s: Optional[float] = None, stride_length_s=None,
                 batch_size: Optional[int] = None, return_timestamps=None, return_language=None,
                 generate_kwargs: Optional[dict] = None, ignore_warning=None, seed=None, prng_key=None,
                 **kwargs) -> Any:
        file_timestamps = self.model.generation_config.extra.get("return_timestamps")
        if file_timestamps:
            return_timestamps = return_timestamps or file_timestamps
        if return_timestamps == "word":
            raise PipelineError(f"{self.task}: return_timestamps='word' (word-level timestamps from the "
                                "cross-attentions) is not implemented in Rosetta's Whisper pipeline; "
                                "return_timestamps=True gives segment-level timestamps")
        if return_timestamps not in (None, False, True):
            raise PipelineError(f"{self.task}: return_timestamps={return_timestamps!r}: Whisper returns segment-level "
                                "timestamps (True); 'char' timestamps do not exist for Whisper")
        if return_language:
            raise PipelineError(f"{self.task}: return_language is not supported by Rosetta's Whisper pipeline")
        if generate_kwargs is not None and not isinstance(generate_kwargs, dict):
            raise TypeError(f"{self.task}: generate_kwargs must be a dict, got {describe(generate_kwargs)}")
        gen_kwargs = self._generate_kwargs({**(generate_kwargs or {}), **kwargs})
        if return_timestamps:
            gen_kwargs["return_timestamps"] = True
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        items, single = _inputs_list(inputs, self.task)
        waves = [load_audio(item, self.task, "inputs" if single else f"inputs[{i}]", self.sampling_rate, True)
                 for i, item in enumerate(items)]
        features, owners, strides, long_form = [], [], [], []
        for index, wave in enumerate(waves):
            where = "inputs" if single else f"inputs[{index}]"
            if chunk_length_s:
                pieces = self._chunks(wave, chunk_length_s, stride_length_s)
            elif wave.shape[0] > self.feature_extractor.n_samples:
                # transformers: the whole audio's features (no truncation) to Whisper's long-form generate.
                try:
                    out = self.feature_extractor(wave, sampling_rate=self.sampling_rate, truncation=False,
                                                 padding="longest", return_attention_mask=True)
                except FeatureExtractorError as error:
                    raise PipelineError(f"{self.task}: {where}: {error}") from error
                long_form.append((index, np.asarray(out["input_features"], np.float32),
                                  np.asarray(out["attention_mask"])))
                continue
            else:
                pieces = [(wave, None)]
            for piece, stride in pieces:
                features.append(self._features(piece, where))
                owners.append(index)
                strides.append(stride)
        outputs = [[] for _ in waves]

        def generate(**arguments):
            try:
                return np.asarray(self.model.generate(seed=seed, prng_key=prng_key, **arguments, **gen_kwargs))
            except (NotImplementedError, ValueError) as error:
                raise PipelineError(f"{self.task}: {error}") from error

        for start in range(0, len(features), batch_size):
            chunk = features[start:start + batch_size]
            rows = self.batch_bucket(len(chunk), batch_size)
            array = np.stack(chunk + [chunk[0]] * (rows - len(chunk)))       # filler rows: copies of the first
            self._note_shape(rows, array.shape[-1], gen_kwargs)
            tokens = generate(input_features=array)
            for row in range(len(chunk)):
                k = start + row
                outputs[owners[k]].append((tokens[row].tolist(), strides[k]))
        for index, array, mask in long_form:          # one at a time: each is its own sequence of windows
            self._note_shape(1, array.shape[-1], gen_kwargs)
            tokens = generate(input_features=array, attention_mask=mask)
            outputs[index].append((tokens[0].tolist(), None))
        results = []
        for out in outputs:
            text, chunks = self._decode_asr(out, bool(return_timestamps))
            results.append({"text": text, "chunks": chunks} if return_timestamps else {"text": text})
        return results[0] if single else results

    @staticmethod
    def batch_bucket(rows: int, batch_size: int) -> int:
        return min(1 << max(rows - 1, 0).bit_length(), batch_size)

    # -- decoding ------------------------------------------------------------------------------------------
    def _decode(self, ids: list[int]) -> str:
        return _TIMESTAMP.sub("", self.tokenizer.decode(ids))

    def _strip_prompt(self, ids: list[int]) -> list[int]:
        if ids and ids[0] == self.prompt_id:
            return ids[ids.index(self.start_id):] if self.start_id in ids else []
        return ids

    def _decode_asr(self, outputs: list, return_timestamps: bool = False) -> tuple[str, list[dict]]:
        """transformers' `_decode_asr` (segment-level timestamps or none): the text of (tokens,
        stride) outputs, and its chunks {"text", "timestamp": (start, end)} split at the timestamp
        pairs (chunked audio: merged across the strides)."""
        begin = self.timestamp_begin if self.timestamp_begin is not None else float("inf")
        precision = self.time_precision
        chunks: list[dict] = []
        last_language = None
        chunk = {"timestamp": [None, None], "text": ""}
        time_offset = 0.0
        previous: list[list[int]] = []
        skip = False
        for ids, stride in outputs:
            ids = self._strip_prompt(list(ids))
            last_timestamp = None
            first_timestamp = begin
            cur_max = prev_segments = penultimate = 0.0
            if stride is not None:
                chunk_len, stride_left, stride_right = stride
                time_offset -= stride_left
                right_stride_start = chunk_len - stride_right
                if stride_left:
                    first_timestamp = stride_left / precision + begin
                if stride_right:
                    for token in reversed(ids):
                        if token >= begin:
                            if last_timestamp is not None and (token - begin) * precision < right_stride_start:
                                break
                            last_timestamp = token
            current: list[int] = []
            for i, token in enumerate(ids):
                if token in self.special:
                    language = self.languages.get(token)
                    if language is not None:
                        if last_language and language != last_language and not return_timestamps:
                            previous.append(current)
                            chunk["text"] = self._decode(longest_common_sequence(previous))
                            chunks.append(chunk)
                            previous, current = [], []
                            chunk = {"timestamp": [None, None], "text": ""}
                        last_language = language
                elif token >= begin:
                    timestamp = float((token - begin) * precision)
                    if timestamp < cur_max:
                        single_ending = i >= 2 and not (ids[i - 1] >= begin and ids[i - 2] >= begin)
                        if single_ending:
                            prev_segments += precision * 1500
                        else:
                            cur_max = penultimate
                            prev_segments += penultimate
                    penultimate, cur_max = cur_max, timestamp
                    time = round((token - begin) * precision + time_offset + prev_segments, 2)
                    if last_timestamp and token >= last_timestamp:
                        skip = True
                    elif skip or (previous and token < first_timestamp):
                        skip = False
                    elif chunk["timestamp"][0] is None:
                        chunk["timestamp"][0] = time
                    elif time != chunk["timestamp"][0]:
                        chunk["timestamp"][1] = time
                        previous.append(current)
                        chunk["text"] = self._decode(longest_common_sequence(previous))
                        chunks.append(chunk)
                        previous, current = [], []
                        chunk = {"timestamp": [None, None], "text": ""}
                else:
                    current.append(token)
            if stride is not None:
                time_offset += chunk_len - stride_right
            if current:
                previous.append(current)
            elif not any(p for p in previous):
                chunk = {"timestamp": [None, None], "text": ""}
                previous = []
        if previous:
            chunk["text"] = self._decode(longest_common_sequence(previous))
            chunks.append(chunk)
        text = "".join(c["text"] for c in chunks)
        return text, [{"timestamp": tuple(c["timestamp"]), "text": c["text"]} for c in chunks]

    def __repr__(self):
        return (f"{type(self).__name__}(task={self.task!r}, model={self.model!r}, batch_size={self.batch_size}, "
                f"compiles={self.compile_count})")

    @classmethod
    def create(cls, task, model, tokenizer, batch_size, dtype, min_length_bucket, model_kwargs, backend=None):
        if (backend or JAX).is_loaded(model):
            raise PipelineError(f"{task}: a loaded model needs its folder for the feature extractor; pass the folder")
        try:
            extractor = AutoFeatureExtractor.from_pretrained(model)
        except FeatureExtractorError as error:
            raise PipelineError(f"{task}: {error}") from error
        if not isinstance(extractor, WhisperFeatureExtractor):
            raise PipelineError(f"{task}: a Whisper folder needs a WhisperFeatureExtractor "
                                f"(preprocessor_config.json), got {type(extractor).__name__}")
        loaded = load_model(task, cls.head, model, dtype=dtype, model_kwargs=model_kwargs, backend=backend)
        return cls(loaded, load_tokenizer(task, tokenizer, model), extractor, batch_size=batch_size)
