"""What a Hugging Face tokenizer folder says about its tokenizer, apart from the vocabulary itself.

`tokenizer_config.json` holds the special tokens, the length limit, padding and truncation sides and
model-specific switches (`do_lower_case`, `add_bos_token`, ...). `special_tokens_map.json` is the
legacy home of the special tokens: like transformers, it is read only when `tokenizer_config.json`
has no `added_tokens_decoder` (the modern, complete record of the special tokens).

Some defaults are not in any file: transformers keeps them as class attributes of the tokenizer
class that `tokenizer_config.json` names (`tokenizer_class`), or that `config.json`'s `model_type`
maps to. `TOKENIZER_CLASS_DEFAULTS` copies the ones Rosetta needs, checked against transformers 5.x.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

SPECIAL_TOKEN_NAMES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)

# transformers writes int(1e30) as `model_max_length` when a checkpoint has no limit, and treats
# anything above LARGE_INTEGER (int(1e20)) as "unset". Rosetta turns those into None.
_UNSET_LENGTH_THRESHOLD = int(1e20)

_BERT_INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
_DEBERTA_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

# Class-level defaults of transformers tokenizer classes (transformers 5.x). Only classes whose
# defaults differ from the base class (inputs `input_ids` + `attention_mask`, right padding) appear.
TOKENIZER_CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    "BertTokenizer": {"model_input_names": _BERT_INPUT_NAMES},
    "ElectraTokenizer": {"model_input_names": _BERT_INPUT_NAMES},
    "ConvBertTokenizer": {"model_input_names": _BERT_INPUT_NAMES},
    "LayoutLMTokenizer": {"model_input_names": _BERT_INPUT_NAMES},
    "MobileBertTokenizer": {"model_input_names": _BERT_INPUT_NAMES},
    "SqueezeBertTokenizer": {"model_input_names": _BERT_INPUT_NAMES},
    "DebertaTokenizer": {"model_input_names": _DEBERTA_INPUT_NAMES},
    "DebertaV2Tokenizer": {"model_input_names": _DEBERTA_INPUT_NAMES},
    # transformers' LlamaTokenizer defaults to legacy=False: text that follows a special token inside
    # the input gets no SentencePiece dummy-prefix space.
    "LlamaTokenizer": {"padding_side": "left", "legacy": False},
    "CodeLlamaTokenizer": {"padding_side": "left"},
    "GemmaTokenizer": {"padding_side": "left"},
}

# transformers' fallback from config.json's model_type when tokenizer_config.json names no class.
MODEL_TYPE_TO_TOKENIZER_CLASS = {
    "bert": "BertTokenizer",
    "convbert": "BertTokenizer",
    "distilbert": "BertTokenizer",
    "electra": "BertTokenizer",
    "layoutlm": "BertTokenizer",
    "megatron-bert": "BertTokenizer",
    "squeezebert": "BertTokenizer",
    "mobilebert": "MobileBertTokenizer",
    "deberta": "DebertaTokenizer",
    "deberta-v2": "DebertaV2Tokenizer",
    "code_llama": "CodeLlamaTokenizer",
    "gemma": "GemmaTokenizer",
}


@dataclasses.dataclass(frozen=True)
class AddedTokenSpec:
    """A token the tokenizer matches in the text as a whole, outside the model's own vocabulary rules."""

    content: str
    special: bool = True
    # Slow (Python) tokenizers strip the whitespace on that side of the token from the text next to it.
    lstrip: bool = False
    rstrip: bool = False


@dataclasses.dataclass
class TokenizerSettings:
    """Everything a tokenizer folder configures, merged from its JSON files and class defaults.

    `config` keeps the merged `tokenizer_config.json` for switches that only one tokenizer family
    reads (`do_lower_case`, `add_bos_token`, `legacy`, ...).
    """

    name_or_path: str
    tokenizer_class: str | None = None
    special_tokens: dict[str, str | None] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(SPECIAL_TOKEN_NAMES)
    )
    extra_special_tokens: list[str] = dataclasses.field(default_factory=list)
    # id -> token, from tokenizer_config.json's `added_tokens_decoder`.
    added_tokens: dict[int, AddedTokenSpec] = dataclasses.field(default_factory=dict)
    model_max_length: int | None = None  # None: no limit
    padding_side: str = "right"
    truncation_side: str = "right"
    model_input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    clean_up_tokenization_spaces: bool = False
    config: dict[str, Any] = dataclasses.field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A model-specific switch from the merged configuration."""
        return self.config.get(key, default)


def _token_content(value: Any) -> str | None:
    """Special tokens are saved either as strings or as serialized AddedToken dicts."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "content" in value:
        return value["content"]
    raise TypeError(f"a special token must be a string or an AddedToken dict, got {value!r}")


def _read_json(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _check_side(name: str, value: Any) -> str:
    if value not in ("left", "right"):
        raise ValueError(f"{name} must be 'left' or 'right', got {value!r}")
    return value


def load_tokenizer_settings(
    folder: str,
    overrides: dict[str, Any] | None = None,
    default_tokenizer_class: str | None = None,
    ignored_config_keys: tuple[str, ...] = (),
) -> TokenizerSettings:
    """Reads `tokenizer_config.json`, `special_tokens_map.json` and `config.json` from `folder`.

    `overrides` (keyword arguments of `from_pretrained`) take precedence over the files, which take
    precedence over the tokenizer class defaults. `default_tokenizer_class` stands in when neither
    file names the class (a bare `vocab.txt` is BERT's). `ignored_config_keys` are dropped from
    `tokenizer_config.json` (overrides still apply).
    """
    config = _read_json(os.path.join(folder, "tokenizer_config.json"))
    for key in ignored_config_keys:
        config.pop(key, None)
    if "added_tokens_decoder" not in config:
        for key, value in _read_json(os.path.join(folder, "special_tokens_map.json")).items():
            config[key] = value
    config.update(overrides or {})

    tokenizer_class = config.get("tokenizer_class")
    if tokenizer_class is None:
        model_type = _read_json(os.path.join(folder, "config.json")).get("model_type")
        tokenizer_class = MODEL_TYPE_TO_TOKENIZER_CLASS.get(model_type, default_tokenizer_class)
    if tokenizer_class is not None and tokenizer_class.endswith("Fast"):
        # transformers 5 has one class per model; the "...Fast" names are aliases of it.
        tokenizer_class = tokenizer_class[: -len("Fast")]
    config = {**TOKENIZER_CLASS_DEFAULTS.get(tokenizer_class, {}), **config}

    special_tokens = {name: _token_content(config.get(name)) for name in SPECIAL_TOKEN_NAMES}
    # transformers 5 renamed `additional_special_tokens` to `extra_special_tokens`; the latter may
    # also be a dict of model-specific named tokens, whose values are what matters here.
    extra = config.get("extra_special_tokens", config.get("additional_special_tokens")) or []
    if isinstance(extra, dict):
        extra = list(extra.values())
    extra_special_tokens = [_token_content(token) for token in extra]

    added_tokens = {
        int(token_id): AddedTokenSpec(
            content=spec["content"],
            special=spec.get("special", False),
            lstrip=spec.get("lstrip", False),
            rstrip=spec.get("rstrip", False),
        )
        for token_id, spec in (config.get("added_tokens_decoder") or {}).items()
    }

    model_max_length = config.get("model_max_length", config.get("max_len"))
    if model_max_length is not None and model_max_length > _UNSET_LENGTH_THRESHOLD:
        model_max_length = None

    return TokenizerSettings(
        name_or_path=folder,
        tokenizer_class=tokenizer_class,
        special_tokens=special_tokens,
        extra_special_tokens=extra_special_tokens,
        added_tokens=added_tokens,
        model_max_length=None if model_max_length is None else int(model_max_length),
        padding_side=_check_side("padding_side", config.get("padding_side", "right")),
        truncation_side=_check_side("truncation_side", config.get("truncation_side", "right")),
        model_input_names=tuple(config.get("model_input_names", ("input_ids", "attention_mask"))),
        clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
        config=config,
    )
