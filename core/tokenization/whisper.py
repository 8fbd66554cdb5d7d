"""Whisper's tokenizer: byte-level BPE from tokenizer.json, with `transformers`' WhisperTokenizer
behaviour around it.

- Encoding with special tokens wraps the text as Whisper's decoder sees a transcript:
  `<|startoftranscript|> [<|lang|>] [<|task|>] [<|notimestamps|>] text <|endoftext|>`; the
  language, task and predict_timestamps come from tokenizer_config.json (or `set_prefix_tokens`).
  These are the labels a fine-tuning run trains on.
- Decoding drops a `<|startofprev|>` prompt with the special tokens, and removes timestamp tokens
  (`<|1.08|>`) from the text unless `decode_with_timestamps=True`, which writes them, continuing
  across 30 s segments; `output_offsets=True` also returns the timestamped segments.
"""
from __future__ import annotations

import re
from typing import Optional

import numpy as np
from tokenizers import processors

from .tokenizers_backend import TokenizersTokenizer

# Whisper's languages: code → name, in the model's token order.
LANGUAGES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa",
    "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}
# Language name (and common alias) → code.
TO_LANGUAGE_CODE = {
    **{name: code for code, name in LANGUAGES.items()},
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb", "pushto": "ps",
    "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si", "castilian": "es", "mandarin": "zh",
}
TASKS = ("transcribe", "translate")
TIMESTAMP_PATTERN = re.compile(r"<\|(\d+\.\d+)\|>")


def language_code(language: str) -> str:
    """"en", "english" or "<|en|>" → "en"; anything else is an error listing the choices."""
    key = language.lower()
    if key.startswith("<|") and key.endswith("|>"):
        key = key[2:-2]
    if key in LANGUAGES:
        return key
    if key in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[key]
    raise ValueError(f"Unsupported language: {language!r}. Pass a code ({', '.join(LANGUAGES)}) or a name such as "
                     "'english'")


class WhisperTokenizer(TokenizersTokenizer):
    """See the module docstring."""

    def __init__(self, backend, settings):
        super().__init__(backend, settings)
        self.language = settings.get("language")
        self.task = settings.get("task")
        self.predict_timestamps = bool(settings.get("predict_timestamps", False))
        self.set_prefix_tokens()

    # -- encoding ---------------------------------------------------------------------------------
    def _id(self, token: str) -> int:
        index = self._token_to_id(token)
        if index is None:
            raise ValueError(f"the Whisper vocabulary has no token {token!r}")
        return index

    @property
    def prefix_tokens(self) -> list[int]:
        """`<|startoftranscript|> [<|lang|>] [<|task|>] [<|notimestamps|>]` for the current settings."""
        prefix = [self._id("<|startoftranscript|>")]
        if self.language is not None:
            prefix.append(self._id(f"<|{language_code(self.language)}|>"))
        if self.task is not None:
            if self.task not in TASKS:
                raise ValueError(f"Unsupported task: {self.task!r}. Task should be in: {list(TASKS)}")
            prefix.append(self._id(f"<|{self.task}|>"))
        if not self.predict_timestamps:
            prefix.append(self._id("<|notimestamps|>"))
        return prefix

    def set_prefix_tokens(self, language: Optional[str] = None, task: Optional[str] = None,
                          predict_timestamps: Optional[bool] = None) -> None:
        """Change the language / task / timestamps of the prefix added when encoding."""
        self.language = self.language if language is None else language
        self.task = self.task if task is None else task
        self.predict_timestamps = self.predict_timestamps if predict_timestamps is None else predict_timestamps
        prefix = self.prefix_tokens
        names = [self._id_to_token(i) for i in prefix]
        template = " ".join(f"{name}:0" for name in names)
        eos = self.eos_token
        self._backend.post_processor = processors.TemplateProcessing(
            single=f"{template} $A:0 {eos}:0", pair=f"{template} $A:0 $B:1 {eos}:1",
            special_tokens=[(eos, self.eos_token_id), *zip(names, prefix)])

    def get_decoder_prompt_ids(self, task: Optional[str] = None, language: Optional[str] = None,
                               no_timestamps: bool = True) -> list[tuple[int, int]]:
        """The forced decoder ids `(position, token)` after the start token, for these settings."""
        self.set_prefix_tokens(task=task, language=language, predict_timestamps=not no_timestamps)
        return [(rank + 1, token) for rank, token in enumerate(self.prefix_tokens[1:])]

    # -- decoding ---------------------------------------------------------------------------------
    @property
    def timestamp_begin(self) -> int:
        """The id of `<|0.00|>`: timestamps follow the last special token."""
        return max(self.all_special_ids) + 1

    def _strip_prompt(self, ids: list[int]) -> list[int]:
        if ids and ids[0] == self._token_to_id("<|startofprev|>"):
            start = self._token_to_id("<|startoftranscript|>")
            return ids[ids.index(start):] if start in ids else []
        return ids

    def decode(self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces=None,
               output_offsets: bool = False, time_precision: float = 0.02, decode_with_timestamps: bool = False):
        if isinstance(token_ids, np.ndarray):
            token_ids = token_ids.tolist()
        if isinstance(token_ids, (list, tuple)) and token_ids and isinstance(token_ids[0], (list, tuple)):
            return [self.decode(ids, skip_special_tokens, clean_up_tokenization_spaces, output_offsets,
                                time_precision, decode_with_timestamps) for ids in token_ids]
        ids = [int(i) for i in np.atleast_1d(np.asarray(token_ids, np.int64))]
        kept = self._strip_prompt(ids) if skip_special_tokens else ids
        if decode_with_timestamps:
            text = self._decode_with_timestamps(kept, skip_special_tokens, time_precision)
        else:
            text = TIMESTAMP_PATTERN.sub("", super().decode(kept, skip_special_tokens, clean_up_tokenization_spaces))
        if output_offsets:
            return {"text": text, "offsets": self._compute_offsets(ids, time_precision)}
        return text

    def batch_decode(self, sequences, skip_special_tokens: bool = False, clean_up_tokenization_spaces=None,
                     **kwargs) -> list:
        if isinstance(sequences, np.ndarray):
            sequences = sequences.tolist()
        return [self.decode(ids, skip_special_tokens, clean_up_tokenization_spaces, **kwargs) for ids in sequences]

    def _decode_with_timestamps(self, ids: list[int], skip_special_tokens: bool, time_precision: float,
                                segment_size: int = 1500) -> str:
        """Text with `<|t|>` marks; a timestamp lower than the last one starts the next 30 s window."""
        begin = self.timestamp_begin
        outputs: list = [[]]
        current = penultimate = offset = 0.0
        for i, token in enumerate(ids):
            if token < begin:
                outputs[-1].append(token)
                continue
            time = (token - begin) * time_precision
            if time < current:
                single_ending = i >= 2 and not (ids[i - 1] >= begin and ids[i - 2] >= begin)
                if single_ending:
                    offset += time_precision * segment_size
                else:
                    current = penultimate
                    offset += penultimate
                    outputs = outputs[:-2]
            penultimate, current = current, time
            outputs += [f"<|{time + offset:.2f}|>", []]
        return "".join(part if isinstance(part, str) else
                       (TokenizersTokenizer.decode(self, part, skip_special_tokens) if part else "") for part in outputs)

    def _compute_offsets(self, ids: list[int], time_precision: float, segment_size: int = 1500) -> list[dict]:
        """The segments between timestamp pairs: {"text", "timestamp": (start, end) in seconds}."""
        ids = np.asarray(ids)
        begin = self.timestamp_begin
        is_time = ids >= begin
        ends = np.where(is_time[:-1] & is_time[1:])[0] + 1
        if ends.shape[0] == 0 and is_time.sum() <= 1:
            return []
        if np.where(is_time)[0][-1] + 1 not in ends:
            ends = np.append(ends, np.where(is_time)[0][-1] + 1)
        start_at = np.where(is_time)[0][0]
        current = offset = 0
        segments = []
        for end_at in ends:
            piece = ids[start_at:end_at]
            if len(piece) > 1:
                first, last = int(piece[0]) - begin, int(piece[-1]) - begin
                if first < current:
                    single_ending = start_at >= 2 and not (ids[start_at - 2] >= begin and ids[start_at - 1] >= begin)
                    offset += segment_size if single_ending else current
                current = last
                text = TIMESTAMP_PATTERN.sub("", self._decode_ids([int(t) for t in piece], False))
                segments.append({"text": text, "timestamp": ((first + offset) * time_precision,
                                                             (last + offset) * time_precision)})
            start_at = end_at
        return segments
