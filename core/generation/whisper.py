"""Whisper's `generate`: `transformers`' WhisperGenerationMixin semantics, short- and long-form.

    model = AutoModelForSpeechSeq2Seq.from_pretrained(folder)
    features = AutoFeatureExtractor.from_pretrained(folder)(waves, sampling_rate=16000)["input_features"]
    tokens = model.generate(input_features=features, language="en", task="transcribe", max_new_tokens=64)
    out = model.generate(input_features=features, return_timestamps=True, return_segments=True)
    # long-form (> 30 s): the extractor's features without truncation, and its attention_mask for a batch
    batch = extractor(waves, sampling_rate=16000, truncation=False, padding="longest", return_attention_mask=True)
    tokens = model.generate(input_features=batch["input_features"], attention_mask=batch["attention_mask"])

The decoder prompt is `<|startoftranscript|> [<|lang|>] [<|task|>] [<|notimestamps|>]` from
generation_config.json (`decoder_start_token_id`, `lang_to_id`, `task_to_id`,
`no_timestamps_token_id`; `forced_decoder_ids` when neither language nor task is given); with
`return_timestamps=True` it has no `<|notimestamps|>` and WhisperTimeStampLogitsProcessor runs
(`processors.whisper_timestamps` / `host.whisper_timestamps`, its settings handed to the decode loop
in `cfg.extra[TIMESTAMPS_KEY]`, so a Backend needs nothing more). Without `language` on a
multilingual model the language is detected per row (one decoder step on the start token, argmax
over `lang_to_id`, on the first 30 s), as `transformers` does. `suppress_tokens` apply at every
step, `begin_suppress_tokens` at the first generated one.

`transformers`' seek loop, for short- and long-form alike: per row a seek pointer; each round
decodes the next 30 s window (2 × max_source_positions frames, zero-padded) of every unfinished
row, splits its tokens into segments at the timestamp pairs (`retrieve_segment`) and moves the
pointer to the last pair's timestamp (the whole window when the output ends with a single
timestamp or has no pair). Long-form (more frames than one window) forces timestamps
(`return_timestamps=False` is an error, as in `transformers`); a batch needs the feature
extractor's `attention_mask` (each row's frame count). Returns what `transformers` 5 returns:
int64 (batch, length), each row its segments' tokens concatenated (no prompt, the final
end-of-text token removed; with timestamps, the timestamp tokens kept and the tokens after a
window's last pair dropped), right-padded with `pad_token_id`; with `return_segments=True` a dict
{"sequences", "segments": per row [{"start", "end" (seconds), "tokens", "idxs", "result"}]}.

Not implemented (NotImplementedError): `prompt_ids`, `condition_on_prev_tokens`, temperature
fallback (a temperature list; also compression_ratio / logprob / no_speech thresholds),
`return_token_timestamps` (word timestamps), `return_dict_in_generate`, `num_return_sequences` > 1.

This driver imports no JAX: the framework comes in as a `Backend` (the JAX model's in
`core.generation.seq2seq`, the torch and TF ports' in their runtimes), so the prompt, language
detection, the seek loop, lengths and post-processing are one copy for all three frameworks.
A round with fewer unfinished rows than the batch is filled up with copies of one of them, so
every round decodes at one batch size (one compiled loop in JAX).
"""
from __future__ import annotations

from typing import Optional, Protocol

import numpy as np

from core.generation.config import GenerationConfig


class Backend(Protocol):
    """What the driver needs from a framework. `encoder_hidden` is the framework's own array."""

    def encode(self, features: np.ndarray):
        """(batch, num_mel_bins, frames) float32 → the encoder's last hidden state (batch, positions, d_model)."""

    def first_logits(self, start_ids: np.ndarray, encoder_hidden) -> np.ndarray:
        """One decoder step without a cache on `start_ids` (batch, P): the last position's logits
        (batch, vocab) as float32 numpy (language detection)."""

    def decode(self, cfg: GenerationConfig, encoder_hidden, prompt: np.ndarray, max_length: int, min_length: int,
               seed: Optional[int], prng_key, streamer, tokenizer) -> np.ndarray:
        """The decode loop (greedy / sampling / beam, per `cfg`) from the decoder prompt (batch, P)
        int32, with `encoder_hidden` repeated for cfg.num_beams: int64 (batch, length) starting
        with the prompt."""

TASKS = ("transcribe", "translate")
# cfg.extra key of WhisperTimeStampLogitsProcessor's settings, read by the decode loops
# (`core.generation.model.timestamp_features`, `core.generation.host.process`).
TIMESTAMPS_KEY = "_whisper_timestamps"
_NOT_IMPLEMENTED = ("prompt_ids", "prompt_condition_type", "condition_on_prev_tokens", "compression_ratio_threshold",
                    "logprob_threshold", "no_speech_threshold", "return_token_timestamps", "return_dict_in_generate",
                    "force_unique_generate_call", "monitor_progress")


def _language_id(language: str, lang_to_id: dict) -> int:
    """"en", "english", "<|en|>" (or an exact key of lang_to_id) → its token id, as transformers
    resolves languages."""
    from core.tokenization.whisper import TO_LANGUAGE_CODE

    language = language.lower()
    code = TO_LANGUAGE_CODE.get(language, language)
    for token in (language, f"<|{code}|>"):
        if token in lang_to_id:
            return int(lang_to_id[token])
    raise ValueError(f"Unsupported language: {language!r}; this model's generation_config.lang_to_id has "
                     f"{sorted(lang_to_id)} (pass a language code such as 'en', a name such as 'english' or a "
                     "token such as '<|en|>')")


def _init_tokens(backend: Backend, cfg: GenerationConfig, language, task, return_timestamps: bool, encoder_hidden,
                 batch: int) -> np.ndarray:
    """`WhisperGenerationMixin._retrieve_init_tokens`: (batch, P) int32 prompt."""
    extra = cfg.extra
    if extra.get("is_multilingual") is False and (task is not None or language is not None):
        raise ValueError("Cannot specify `task` or `language` for an English-only model. If the model is intended to "
                         "be multilingual, pass `is_multilingual=True` to generate, or update the generation config.")
    if language is not None and "lang_to_id" not in extra:
        raise ValueError("The generation config is outdated and is thus not compatible with the `language` argument "
                         "to `generate` (it has no lang_to_id).")
    if task is not None and "task_to_id" not in extra:
        raise ValueError("The generation config is outdated and is thus not compatible with the `task` argument to "
                         "`generate` (it has no task_to_id).")
    if cfg.decoder_start_token_id is None:
        raise ValueError("generation_config.decoder_start_token_id (<|startoftranscript|>) is not set")
    init = [int(cfg.decoder_start_token_id)]
    if task is None and language is None:
        forced = extra.get("forced_decoder_ids")
        if forced and forced[0][0] == 1:
            i = 1
            while forced and forced[0][0] == i:
                init.append(forced[0][1])
                forced = forced[1:]
                i += 1
            if forced:
                raise ValueError(f"forced_decoder_ids {extra.get('forced_decoder_ids')} do not follow Whisper's "
                                 "prompt pattern (an entry for every index from 1)")
    lang_undefined = len(init) <= 1 or init[1] is None
    if isinstance(language, (list, tuple)):
        if len(language) != batch:
            raise ValueError(f"When passing a list of languages, the length of the list must match the batch size. "
                             f"Expected length of {batch}, but got {len(language)} languages.")
        languages = list(language)
    else:
        languages = [language] * batch
    rows = [list(init) for _ in range(batch)]
    lang_ids = None
    if language is not None:
        lang_ids = [_language_id(lang, extra["lang_to_id"]) for lang in languages]
    elif "lang_to_id" in extra and lang_undefined:
        lang_ids = detect_language(backend, encoder_hidden, cfg, batch)
    if lang_ids is not None:
        for row, lang in zip(rows, lang_ids):
            if len(row) > 1:
                row[1] = int(lang)
            else:
                row.append(int(lang))
    no_timestamps = extra.get("no_timestamps_token_id")
    for i, row in enumerate(rows):
        if task is not None:
            if task not in TASKS:
                raise ValueError(f"The `{task}` task is not supported. The task should be one of `{list(TASKS)}`")
            row.append(int(extra["task_to_id"][task]))
        elif language is not None and "task_to_id" in extra:
            if not any(t in row for t in extra["task_to_id"].values()):
                row.append(int(extra["task_to_id"]["transcribe"]))
        if not return_timestamps and no_timestamps is not None and row[-1] != no_timestamps:
            row.append(int(no_timestamps))
        elif return_timestamps and row[-1] == no_timestamps:
            row = row[:-1]
        rows[i] = [t for t in row if t is not None]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"decoder prompts of different lengths: {rows}")
    return np.asarray(rows, np.int32)


def detect_language(backend: Backend, encoder_hidden, cfg: GenerationConfig, batch: int) -> list[int]:
    """One decoder step on `<|startoftranscript|>`: per row, the most likely token of `lang_to_id`."""
    start = np.full((batch, 1), int(cfg.decoder_start_token_id), np.int32)
    logits = np.asarray(backend.first_logits(start, encoder_hidden), np.float32)
    lang_ids = np.asarray(sorted(int(v) for v in cfg.extra["lang_to_id"].values()))
    return [int(lang_ids[np.argmax(row[lang_ids])]) for row in logits]


def _trim(seq: np.ndarray, pad: Optional[int], eos: Optional[int]) -> np.ndarray:
    """`generate_with_fallback` on one generated row (prompt dropped): drop the padding (all but
    one pad when pad is the eos), then the final end-of-text token."""
    if len(seq) and pad is not None and seq[-1] == pad:
        num_paddings = int((seq == pad).sum())
        if pad == eos:
            num_paddings -= 1
        if num_paddings:
            seq = seq[:-num_paddings]
    if len(seq) and eos is not None and seq[-1] == eos:
        seq = seq[:-1]
    return seq


def retrieve_segment(seek_sequence: np.ndarray, time_offset: float, timestamp_begin: int, seek_num_frames: int,
                     time_precision: float = 0.02, time_precision_features: float = 0.01, input_stride: int = 2,
                     idx_offset: int = 0, result=None) -> tuple[list[dict], int]:
    """`WhisperGenerationMixin._retrieve_segment`: split one window's tokens at the timestamp
    pairs into segments ({"start", "end" (seconds), "tokens", "idxs", "result"}) and say how many
    frames the window consumed (up to its last timestamp pair, or all of it)."""
    tokens = [int(t) for t in seek_sequence]
    is_timestamp = [t >= timestamp_begin for t in tokens]
    single_timestamp_ending = is_timestamp[-2:] == [False, True]
    slices = [i + 1 for i in range(len(is_timestamp) - 1) if is_timestamp[i] and is_timestamp[i + 1]]
    if slices:
        segments = []
        if single_timestamp_ending:
            slices.append(len(tokens))
        else:
            slices[-1] += 1        # the last segment keeps both timestamps of its closing pair
        last_slice = 0
        for i, current_slice in enumerate(slices):
            is_last = i == len(slices) - 1
            sliced = seek_sequence[last_slice:current_slice]
            end_index = -1 if not is_last or single_timestamp_ending else -2
            segments.append({"start": time_offset + float(int(sliced[0]) - timestamp_begin) * time_precision,
                             "end": time_offset + float(int(sliced[end_index]) - timestamp_begin) * time_precision,
                             "tokens": sliced, "idxs": (idx_offset + last_slice, idx_offset + current_slice),
                             "result": result})
            last_slice = current_slice
        if single_timestamp_ending:
            offset = seek_num_frames           # no speech after the last timestamp
        else:                                   # drop the unfinished segment, seek to the last timestamp
            offset = (tokens[last_slice - 2] - timestamp_begin) * input_stride
    else:
        stamps = [i for i, t in enumerate(is_timestamp) if t]
        last_position = int(seek_num_frames * time_precision_features / time_precision)
        if stamps and tokens[stamps[-1]] != timestamp_begin:
            last_position = float(tokens[stamps[-1]] - timestamp_begin)
        segments = [{"start": time_offset, "end": time_offset + last_position * time_precision,
                     "tokens": seek_sequence, "idxs": (idx_offset, idx_offset + len(tokens)), "result": result}]
        offset = seek_num_frames
    return segments, int(offset)


def generate(config, base_config: GenerationConfig, backend: Backend, input_features=None, attention_mask=None,
             generation_config: Optional[GenerationConfig] = None, seed: Optional[int] = None, prng_key=None,
             streamer=None, tokenizer=None, language=None, task=None, return_timestamps: Optional[bool] = None,
             is_multilingual: Optional[bool] = None, temperature=None, return_segments: bool = False,
             time_precision: float = 0.02, time_precision_features: float = 0.01,
             num_segment_frames: Optional[int] = None, **kwargs):
    """See the module docstring. `config`: the model's WhisperConfig; `base_config`: the model's
    generation config (generation_config.json); `input_features` (batch, num_mel_bins, frames;
    up to 2 × max_source_positions frames (30 s) is short-form, shorter inputs zero-padded like
    `transformers` pads them; longer is long-form, which needs `attention_mask` (the feature
    extractor's, over frames) for a batch); generation options as `Seq2SeqLMModel.generate`
    (max_new_tokens, num_beams, ...), plus language ("en", "<|en|>", or one per row), task
    ("transcribe" / "translate"), return_timestamps, return_segments."""
    features = kwargs.pop("inputs", None) if input_features is None else input_features
    if features is None:
        raise TypeError("Whisper's generate() needs input_features (batch, num_mel_bins, frames)")
    for key in _NOT_IMPLEMENTED:
        if kwargs.get(key) is not None and kwargs.get(key) is not False:
            raise NotImplementedError(f"generate(..., {key}=...): not implemented in Rosetta's Whisper generate "
                                      "(greedy / beam transcription and translation, timestamps, sequential "
                                      "long-form; no prompts, conditioning on previous text or fallback)")
        kwargs.pop(key, None)
    if isinstance(temperature, (list, tuple)):
        raise NotImplementedError("generate(..., temperature=[...]): temperature fallback is not implemented in "
                                  "Rosetta's Whisper generate")
    if temperature is not None:
        kwargs["temperature"] = temperature
        if temperature > 0.0:
            kwargs.setdefault("do_sample", True)
    file_timestamps = base_config.extra.get("return_timestamps")
    if generation_config is not None:
        file_timestamps = generation_config.extra.get("return_timestamps", file_timestamps)
    if return_timestamps is None:
        return_timestamps = file_timestamps
    features = np.asarray(features, np.float32)
    c = config
    if features.ndim != 3 or features.shape[1] != c.num_mel_bins:
        raise ValueError(f"input_features: expected (batch, {c.num_mel_bins} mel bins, frames), got {features.shape}")
    input_stride = 2                                   # conv1 stride 1 × conv2 stride 2
    frames = input_stride * c.max_source_positions if num_segment_frames is None else int(num_segment_frames)
    batch, total_frames = features.shape[0], features.shape[2]
    is_shortform = total_frames <= frames
    if not is_shortform:
        if return_timestamps is False:
            raise ValueError("You have passed more than 3000 mel input features (> 30 seconds) which automatically "
                             "enables long-form generation which requires the model to predict timestamp tokens. "
                             "Please either pass `return_timestamps=True` or make sure to pass no more than 3000 mel "
                             "input features.")
        return_timestamps = True
    return_timestamps = bool(return_timestamps)
    # generation_config keys handled here, not by the generic loop.
    whisper_keys = ("return_timestamps", "is_multilingual", "language", "task")
    if generation_config is not None:
        generation_config = GenerationConfig.from_dict(
            {k: v for k, v in generation_config.to_dict().items() if k not in whisper_keys})
    cfg = base_config.merged(generation_config, **kwargs)
    cfg.extra.pop("return_timestamps", None)
    language = cfg.extra.get("language") if language is None else language
    task = cfg.extra.get("task") if task is None else task
    if is_multilingual is not None:
        cfg.extra["is_multilingual"] = is_multilingual
    if cfg.num_return_sequences > 1:
        raise NotImplementedError("generate(..., num_return_sequences > 1) is not implemented in Rosetta's Whisper "
                                  "generate")
    no_timestamps = cfg.extra.get("no_timestamps_token_id")
    if return_timestamps and no_timestamps is None:
        raise ValueError("You are trying to return timestamps, but the generation config is not properly set. Make "
                         "sure to initialize the generation config with the correct attributes that are needed such "
                         "as `no_timestamps_token_id`.")
    timestamp_begin = c.vocab_size + 1 if no_timestamps is None else int(no_timestamps) + 1
    eos = cfg.eos_token_ids[0] if cfg.eos_token_ids else None
    if return_timestamps:
        ts_eos = eos if eos is not None else cfg.bos_token_id
        cfg.extra[TIMESTAMPS_KEY] = {
            "timestamp_begin": timestamp_begin, "no_timestamps_token_id": int(no_timestamps),
            "eos_token_id": int(ts_eos),
            "max_initial_timestamp_index": cfg.extra.get("max_initial_timestamp_index")}

    # transformers' seek loop: per row a seek pointer and its last frame.
    if batch > 1 and not is_shortform:
        if attention_mask is None:
            raise ValueError("When doing batched long-form audio transcription, make sure to pass an "
                             "`attention_mask`. You can retrieve the `attention_mask` by doing "
                             "`processor(audio, ..., return_attention_mask=True)` ")
        max_frames = np.asarray(attention_mask).sum(-1).astype(np.int64)
    else:
        max_frames = np.full(batch, total_frames, np.int64)
    seek = np.zeros(batch, np.int64)

    def window(rows):
        out = np.zeros((len(rows), features.shape[1], frames), np.float32)
        for j, i in enumerate(rows):
            piece = features[i, :, seek[i]:seek[i] + min(max_frames[i] - seek[i], frames)]
            out[j, :, :piece.shape[-1]] = piece
        return out

    first = window(range(batch))
    encoder_hidden = backend.encode(first)
    detect_hidden = encoder_hidden
    if not is_shortform and (max_frames < frames).any() and language is None and "lang_to_id" in cfg.extra:
        # transformers detects the language on the first 30 s of every row, its padding included.
        detect_hidden = backend.encode(np.ascontiguousarray(features[:, :, :frames]))
    init = _init_tokens(backend, cfg, language, task, return_timestamps, detect_hidden, batch)
    prompt_len = init.shape[1]
    max_target = c.max_target_positions
    if cfg.max_new_tokens is not None and cfg.max_new_tokens + prompt_len > max_target:
        raise ValueError(f"The length of `decoder_input_ids`, including special start tokens, is {prompt_len}, "
                         f"and `max_new_tokens` is {cfg.max_new_tokens}: {cfg.max_new_tokens + prompt_len} "
                         f"exceeds the `max_target_positions` of the Whisper model: {max_target}.")
    # Without max_new_tokens, transformers raises the config's max_length by the prompt at every window.
    running_max_length = None if cfg.extra.get("_has_default_max_length") else cfg.max_length
    min_length = cfg.min_length
    if cfg.min_new_tokens is not None:
        min_length = cfg.min_new_tokens + prompt_len
    pad = cfg.pad_token_id
    if pad is None and cfg.eos_token_ids:
        pad = cfg.eos_token_ids[0]
    segments = [[] for _ in range(batch)]
    rows = list(range(batch))
    while (seek < max_frames).any():
        rows = [i for i in rows if seek[i] < max_frames[i]]
        # A smaller batch is filled up with copies of its first row (whose results are dropped): every
        # window decodes at the full batch size (one compiled loop), and rows are independent, so
        # the tokens (and the loop's length: a copy ends with its row) are those of the smaller batch.
        padded = rows + [rows[0]] * (batch - len(rows))
        if encoder_hidden is None:
            encoder_hidden = backend.encode(window(padded))
        time_offset = seek.astype(np.float64) * time_precision / input_stride
        seek_num_frames = np.minimum(max_frames - seek, frames)
        if cfg.max_new_tokens is not None:
            max_length = cfg.max_new_tokens + prompt_len
        elif running_max_length is None:
            max_length = cfg.max_length + prompt_len
        else:
            running_max_length = min(running_max_length + min(max_target // 2 - 1, prompt_len), max_target)
            max_length = running_max_length
        if max_length <= prompt_len:
            raise ValueError(f"`max_length` ({max_length}) leaves no room for generated tokens after the decoder "
                             f"prompt of {prompt_len} tokens; set `max_new_tokens`.")
        out = np.asarray(backend.decode(cfg, encoder_hidden, init[padded], max_length, int(min_length or 0), seed,
                                        prng_key, streamer, tokenizer))[:len(rows)]
        encoder_hidden = None
        for j, i in enumerate(rows):
            seq = _trim(out[j, prompt_len:], pad, eos)
            found, offset = retrieve_segment(seq, float(time_offset[i]), timestamp_begin, int(seek_num_frames[i]),
                                             time_precision, time_precision_features, input_stride, prompt_len,
                                             out[j])
            seek[i] += offset
            segments[i] += found
    sequences = [np.concatenate([np.asarray(s["tokens"], np.int64) for s in row]) if row else np.zeros(0, np.int64)
                 for row in segments]
    length = max(len(r) for r in sequences)
    fill = 0 if cfg.pad_token_id is None else cfg.pad_token_id
    sequences = np.stack([np.pad(r, (0, length - len(r)), constant_values=fill) for r in sequences]).astype(np.int64)
    if return_segments:
        return {"sequences": sequences, "segments": segments}
    return sequences
