"""Whisper's `generate` (short-form, ≤ 30 s): `transformers`' WhisperGenerationMixin semantics.

    model = AutoModelForSpeechSeq2Seq.from_pretrained(folder)
    features = AutoFeatureExtractor.from_pretrained(folder)(waves, sampling_rate=16000)["input_features"]
    tokens = model.generate(input_features=features, language="en", task="transcribe", max_new_tokens=64)

The decoder prompt is `<|startoftranscript|> [<|lang|>] [<|task|>] [<|notimestamps|>]` from
generation_config.json (`decoder_start_token_id`, `lang_to_id`, `task_to_id`,
`no_timestamps_token_id`; `forced_decoder_ids` when neither language nor task is given). Without
`language` on a multilingual model the language is detected per row (one decoder step on the
start token, argmax over `lang_to_id`), as `transformers` does. `suppress_tokens` apply at every
step, `begin_suppress_tokens` at the first generated one. Returns what `transformers` 5 returns
for short-form audio: int64 (batch, length) holding only the generated tokens (no prompt), the
final end-of-text token removed, rows right-padded with `pad_token_id`.

Not implemented (NotImplementedError): `return_timestamps=True`, long-form audio (more than
2 × max_source_positions frames), `prompt_ids`, temperature fallback, `num_return_sequences` > 1.

This driver imports no JAX: the framework comes in as a `Backend` (the JAX model's in
`core.generation.seq2seq`, the torch and TF ports' in their runtimes), so the prompt, language
detection, lengths and post-processing are one copy for all three frameworks.
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
_NOT_IMPLEMENTED = ("prompt_ids", "prompt_condition_type", "condition_on_prev_tokens", "compression_ratio_threshold",
                    "logprob_threshold", "no_speech_threshold", "return_token_timestamps", "return_segments",
                    "time_precision", "time_precision_features", "return_dict_in_generate",
                    "force_unique_generate_call", "monitor_progress")


def _language_id(language: str, lang_to_id: dict) -> int:
    """"en", "<|en|>" (or an exact key of lang_to_id) → its token id."""
    language = language.lower()
    for token in (language, f"<|{language}|>"):
        if token in lang_to_id:
            return int(lang_to_id[token])
    raise ValueError(f"Unsupported language: {language!r}; this model's generation_config.lang_to_id has "
                     f"{sorted(lang_to_id)} (pass a language code such as 'en' or a token such as '<|en|>')")


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


def _postprocess(sequences: np.ndarray, prompt_len: int, pad: Optional[int], eos: tuple) -> np.ndarray:
    """`generate_with_fallback` + `_pad_to_max_length` for one segment: drop the prompt, the
    padding and the final end-of-text token of each row, right-pad with `pad`."""
    rows = []
    for seq in sequences[:, prompt_len:]:
        if len(seq) and pad is not None and seq[-1] == pad:
            num_paddings = int((seq == pad).sum())
            if eos and pad == eos[0]:
                num_paddings -= 1
            if num_paddings:
                seq = seq[:-num_paddings]
        if len(seq) and eos and seq[-1] == eos[0]:
            seq = seq[:-1]
        rows.append(seq)
    length = max(len(r) for r in rows)
    fill = 0 if pad is None else pad
    return np.stack([np.pad(r, (0, length - len(r)), constant_values=fill) for r in rows]).astype(np.int64)


def generate(config, base_config: GenerationConfig, backend: Backend, input_features=None, attention_mask=None, generation_config: Optional[GenerationConfig] = None,
             seed: Optional[int] = None, prng_key=None, streamer=None, tokenizer=None, language=None, task=None,
             return_timestamps: Optional[bool] = None, is_multilingual: Optional[bool] = None, temperature=None,
             **kwargs) -> np.ndarray:
    """See the module docstring. `config`: the model's WhisperConfig; `base_config`: the model's
    generation config (generation_config.json); `input_features` (batch, num_mel_bins, frames ≤ 2 ×
    max_source_positions; shorter inputs are zero-padded like `transformers` pads them);
    `attention_mask` (the feature extractor's, over frames) is accepted and unused for
    short-form audio, as in `transformers`; generation options as `Seq2SeqLMModel.generate`
    (max_new_tokens, num_beams, ...), plus language ("en", "<|en|>", or one per row), task
    ("transcribe" / "translate")."""
    features = kwargs.pop("inputs", None) if input_features is None else input_features
    if features is None:
        raise TypeError("Whisper's generate() needs input_features (batch, num_mel_bins, frames)")
    for key in _NOT_IMPLEMENTED:
        if kwargs.get(key) not in (None, False):
            raise NotImplementedError(f"generate(..., {key}=...): not implemented in Rosetta's Whisper generate "
                                      "(short-form transcription / translation only)")
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
    frames = 2 * c.max_source_positions
    if features.shape[2] > frames:
        raise NotImplementedError(f"input_features of {features.shape[2]} frames: long-form generation (more than "
                                  f"{frames} frames, 30 s) is not implemented in Rosetta's Whisper generate; split "
                                  "the audio into 30 s chunks")
    if return_timestamps:
        raise NotImplementedError("generate(..., return_timestamps=True): timestamp prediction is not implemented in "
                                  "Rosetta's Whisper generate")
    if features.shape[2] < frames:
        features = np.pad(features, ((0, 0), (0, 0), (0, frames - features.shape[2])))
    # generation_config keys handled here, not by the generic loop.
    whisper_keys = ("return_timestamps", "is_multilingual", "language", "task")
    if generation_config is not None:
        generation_config = GenerationConfig.from_dict(
            {k: v for k, v in generation_config.to_dict().items() if k not in whisper_keys})
    cfg = base_config.merged(generation_config, **kwargs)
    language = cfg.extra.get("language") if language is None else language
    task = cfg.extra.get("task") if task is None else task
    if is_multilingual is not None:
        cfg.extra["is_multilingual"] = is_multilingual
    if cfg.num_return_sequences > 1:
        raise NotImplementedError("generate(..., num_return_sequences > 1) is not implemented in Rosetta's Whisper "
                                  "generate")

    batch = features.shape[0]
    encoder_hidden = backend.encode(features)
    prompt = _init_tokens(backend, cfg, language, task, False, encoder_hidden, batch)
    prompt_len = prompt.shape[1]
    max_target = c.max_target_positions
    if cfg.max_new_tokens is not None:
        if cfg.max_new_tokens + prompt_len > max_target:
            raise ValueError(f"The length of `decoder_input_ids`, including special start tokens, is {prompt_len}, "
                             f"and `max_new_tokens` is {cfg.max_new_tokens}: {cfg.max_new_tokens + prompt_len} "
                             f"exceeds the `max_target_positions` of the Whisper model: {max_target}.")
        max_length = cfg.max_new_tokens + prompt_len
    elif cfg.extra.get("_has_default_max_length"):
        max_length = cfg.max_length + prompt_len
    else:
        max_length = min(cfg.max_length + min(max_target // 2 - 1, prompt_len), max_target)
    if max_length <= prompt_len:
        raise ValueError(f"`max_length` ({max_length}) leaves no room for generated tokens after the decoder prompt "
                         f"of {prompt_len} tokens; set `max_new_tokens`.")
    min_length = cfg.min_length
    if cfg.min_new_tokens is not None:
        min_length = cfg.min_new_tokens + prompt_len
    sequences = backend.decode(cfg, encoder_hidden, prompt, max_length, int(min_length or 0), seed, prng_key, streamer,
                               tokenizer)
    pad = cfg.pad_token_id
    if pad is None and cfg.eos_token_ids:
        pad = cfg.eos_token_ids[0]
    return _postprocess(np.asarray(sequences), prompt_len, pad, cfg.eos_token_ids)
