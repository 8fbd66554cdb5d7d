"""`GenerationConfig`: the settings of `generate`, named and defaulted as in `transformers`.

Importable without JAX. Priority, as `transformers`: arguments of `generate(...)` > the model's
`generation_config.json` (or, without one, the token ids of its config.json) > the global
defaults below. Keys Rosetta does not implement are kept (so a file round-trips) and refused
with a clear error only when they would change the result.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Mapping, Optional

# `transformers`' GenerationConfig._get_default_generation_params (the subset Rosetta uses).
GLOBAL_DEFAULTS = {
    "max_length": 20,
    "min_length": 0,
    "do_sample": False,
    "use_cache": True,
    "early_stopping": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "repetition_penalty": 1.0,
    "length_penalty": 1.0,
    "num_return_sequences": 1,
}

# Options of `transformers` that Rosetta does not implement: key → test "this value is active".
UNSUPPORTED = {
    "max_time": lambda v: v is not None,
    "encoder_repetition_penalty": lambda v: v not in (None, 1.0),
    "bad_words_ids": lambda v: bool(v),
    "force_words_ids": lambda v: bool(v),
    "constraints": lambda v: bool(v),
    "sequence_bias": lambda v: bool(v),
    "exponential_decay_length_penalty": lambda v: v is not None,
    "renormalize_logits": lambda v: bool(v),
    "remove_invalid_values": lambda v: bool(v),
    "typical_p": lambda v: v not in (None, 1.0),
    "epsilon_cutoff": lambda v: v not in (None, 0.0),
    "eta_cutoff": lambda v: v not in (None, 0.0),
    "top_h": lambda v: v is not None,
    "penalty_alpha": lambda v: bool(v),
    "num_beam_groups": lambda v: v not in (None, 1),
    "diversity_penalty": lambda v: v not in (None, 0.0),
    "guidance_scale": lambda v: v not in (None, 1.0),
    "token_healing": lambda v: bool(v),
    "watermarking_config": lambda v: v is not None,
    "prompt_lookup_num_tokens": lambda v: v is not None,
    "assistant_early_exit": lambda v: v is not None,
    "use_mtp": lambda v: bool(v),
    "output_scores": lambda v: bool(v),
    "output_logits": lambda v: bool(v),
    "output_attentions": lambda v: bool(v),
    "output_hidden_states": lambda v: bool(v),
    "return_dict_in_generate": lambda v: bool(v),
    "prefill_chunk_size": lambda v: v is not None,
}


@dataclasses.dataclass
class GenerationConfig:
    """The options Rosetta implements; anything else from a file lands in `extra`. Unset
    (None) means "not given here": see `merged`."""

    max_length: Optional[int] = None
    max_new_tokens: Optional[int] = None
    min_length: Optional[int] = None
    min_new_tokens: Optional[int] = None
    early_stopping: Optional[bool | str] = None
    do_sample: Optional[bool] = None
    num_beams: Optional[int] = None
    use_cache: Optional[bool] = None
    temperature: Optional[float] = None
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    min_p: Optional[float] = None
    repetition_penalty: Optional[float] = None
    length_penalty: Optional[float] = None
    num_return_sequences: Optional[int] = None
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int | list[int]] = None
    decoder_start_token_id: Optional[int] = None
    forced_bos_token_id: Optional[int] = None
    forced_eos_token_id: Optional[int | list[int]] = None
    no_repeat_ngram_size: Optional[int] = None
    encoder_no_repeat_ngram_size: Optional[int] = None
    stop_strings: Optional[str | list[str]] = None
    suppress_tokens: Optional[list[int]] = None
    begin_suppress_tokens: Optional[list[int]] = None
    extra: dict = dataclasses.field(default_factory=dict)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GenerationConfig":
        names = set(cls.field_names())
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**known, extra=extra)

    @classmethod
    def from_model_config(cls, config) -> "GenerationConfig":
        """The token ids of a model config (what `transformers` does without a generation_config.json)."""
        return cls(bos_token_id=getattr(config, "bos_token_id", None),
                   eos_token_id=_as_list_or_int(getattr(config, "eos_token_id", None)),
                   pad_token_id=getattr(config, "pad_token_id", None),
                   decoder_start_token_id=getattr(config, "decoder_start_token_id", None))

    @classmethod
    def from_pretrained(cls, folder, model_config=None) -> "GenerationConfig":
        """`generation_config.json` of a model folder if present, else the model config's token ids."""
        path = pathlib.Path(folder) / "generation_config.json"
        if not path.is_file():
            if model_config is None:
                raise FileNotFoundError(f"{path}: not found")
            return cls.from_model_config(model_config)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.field_names() if getattr(self, k) is not None}
        out.update(self.extra)
        return out

    def save_pretrained(self, folder) -> pathlib.Path:
        path = pathlib.Path(folder) / "generation_config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    # -- resolution -----------------------------------------------------------------------------
    def merged(self, overrides: "GenerationConfig | None" = None, **kwargs) -> "GenerationConfig":
        """A complete config: `kwargs` > `overrides` > self > GLOBAL_DEFAULTS. Unknown kwargs are
        an error (as `transformers` rejects model kwargs it cannot use)."""
        names = set(self.field_names())
        unknown = sorted(k for k in kwargs if k not in names and k not in UNSUPPORTED)
        if unknown:
            raise TypeError(f"generate() got unexpected arguments {unknown}; generation options are "
                            f"{sorted(names)}")
        values = {k: getattr(self, k) for k in names}
        extra = dict(self.extra)
        if overrides is not None:
            for k in names:
                if getattr(overrides, k) is not None:
                    values[k] = getattr(overrides, k)
            extra.update(overrides.extra)
        for k, v in kwargs.items():
            if k in names:
                values[k] = v
            else:
                extra[k] = v
        user_set_max_length = values["max_length"] is not None
        for k, v in GLOBAL_DEFAULTS.items():
            if values[k] is None:
                values[k] = v
        result = GenerationConfig(**values, extra=extra)
        result.extra["_has_default_max_length"] = not user_set_max_length
        result.validate()
        return result

    def validate(self) -> None:
        active = [k for k, test in UNSUPPORTED.items() if k in self.extra and test(self.extra[k])]
        if active:
            raise NotImplementedError(
                f"generation options {active} are not implemented in Rosetta's generate (set: "
                f"{ {k: self.extra[k] for k in active} }); supported: greedy, sampling (temperature, top_k, "
                "top_p, min_p), repetition_penalty, no_repeat_ngram_size, encoder_no_repeat_ngram_size, "
                "stop_strings (with tokenizer=), streamer=, suppress_tokens, begin_suppress_tokens, beam search (num_beams, length_penalty, early_stopping, "
                "num_return_sequences), max/min (new) tokens, eos/pad handling")
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"`early_stopping` must be a boolean or 'never', but is {self.early_stopping}.")
        if self.max_new_tokens is not None and self.max_new_tokens <= 0:
            raise ValueError(f"`max_new_tokens` must be greater than 0, but is {self.max_new_tokens}.")
        for key in ("num_beams", "num_return_sequences"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f"`{key}` must be a positive int, but is {getattr(self, key)!r}.")
        if self.num_return_sequences > 1:
            if self.num_beams == 1 and not self.do_sample:
                raise ValueError("Greedy methods without beam search do not support `num_return_sequences` "
                                 f"different than 1 (got {self.num_return_sequences}).")
            if self.num_beams > 1 and self.num_return_sequences > self.num_beams:
                raise ValueError(f"`num_return_sequences` ({self.num_return_sequences}) has to be smaller or equal "
                                 f"to `num_beams` ({self.num_beams}).")
        if self.do_sample:
            if not isinstance(self.temperature, (int, float)) or not self.temperature > 0:
                raise ValueError(f"`temperature` (={self.temperature}) has to be a strictly positive float; "
                                 "for greedy decoding set `do_sample=False`.")
            if not isinstance(self.top_k, int) or self.top_k < 0:
                raise ValueError(f"`top_k` has to be a non-negative integer, but is {self.top_k}")
            if not 0.0 <= self.top_p <= 1.0:
                raise ValueError(f"`top_p` has to be a float in [0, 1], but is {self.top_p}")
            if self.min_p is not None and not 0.0 <= self.min_p <= 1.0:
                raise ValueError(f"`min_p` has to be a float in the [0, 1] interval, but is {self.min_p}")
        if not self.repetition_penalty > 0:
            raise ValueError(f"`penalty` has to be a strictly positive float, but is {self.repetition_penalty}")
        for key in ("no_repeat_ngram_size", "encoder_no_repeat_ngram_size"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"`{key}` has to be a non-negative integer (0: off), but is {value!r}")
        stops = self.stop_strings
        if stops is not None and not (
                isinstance(stops, str) or (isinstance(stops, (list, tuple)) and all(isinstance(s, str) for s in stops))):
            raise ValueError(f"`stop_strings` has to be a string or a list of strings, but is {self.stop_strings!r}")
        for key in ("suppress_tokens", "begin_suppress_tokens"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, (list, tuple)) and all(
                    isinstance(t, int) and not isinstance(t, bool) for t in value)):
                raise ValueError(f"`{key}` has to be a list of token ids, but is {value!r}")
        for key in ("min_length", "min_new_tokens"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"`{key}` has to be a non-negative integer, but is {value}")

    def begin_suppress_index(self, prompt_length: int) -> int:
        """The sequence length at which `begin_suppress_tokens` apply (the first generated token), as
        `transformers` sets SuppressTokensAtBeginLogitsProcessor's begin_index: the prompt length,
        plus one when a one-token prompt is followed by a forced BOS."""
        if prompt_length > 1 or self.forced_bos_token_id is None:
            return prompt_length
        return prompt_length + 1

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        eos = self.eos_token_id
        if eos is None:
            return ()
        return (int(eos),) if isinstance(eos, int) else tuple(int(e) for e in eos)


def _as_list_or_int(value):
    if isinstance(value, tuple):
        return list(value)
    return value
