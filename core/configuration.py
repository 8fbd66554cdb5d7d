"""Typed model configs, built from and written back to Hugging Face `config.json`.

Every family subclasses `PretrainedConfig` as a frozen, keyword-only dataclass. This module
imports nothing heavier than the standard library: configs must load without JAX, torch or TF
(the torch port and the tokenizers use them).

Round trip: `from_dict(d).to_dict() == d` exactly — unknown keys are kept in `extra`, the key
order of the source is kept, and fields the source did not mention are only written back when
they were changed from their default.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import json
import pathlib
import types
import typing
from typing import Any, ClassVar, Literal, Mapping, Optional

# Activation names as Hugging Face spells them; each means exactly what `transformers` computes.
ACTIVATIONS = (
    "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_accurate", "gelu_python",
    "gelu_10", "quick_gelu", "relu", "relu2", "relu6", "leaky_relu", "silu", "swish", "mish",
    "tanh", "sigmoid", "linear", "identity",
)


class ConfigError(ValueError):
    """A config key has a wrong type or value; the message names key, value and expectation."""


class FrozenMapping(Mapping):
    """A hashable read-only dict: Flax modules hold configs as attributes and get hashed."""

    __slots__ = ("_data",)

    def __init__(self, data=()):
        object.__setattr__(self, "_data", dict(data))

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __hash__(self):
        return hash(json.dumps(self._data, sort_keys=True, default=repr))

    def __eq__(self, other):
        return isinstance(other, Mapping) and dict(self._data) == dict(other)

    def __repr__(self):
        return f"FrozenMapping({self._data!r})"


def _freeze(value):
    if isinstance(value, Mapping):
        return FrozenMapping({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is tuple:
        return "a list"
    if origin in (dict, collections.abc.Mapping) or tp in (dict, Mapping):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _matches(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:  # JSON writes 1.0 as 1 sometimes; an int is a valid float
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args))
    if origin in (dict, collections.abc.Mapping) or tp in (dict, Mapping):
        return isinstance(value, Mapping)
    return isinstance(value, tp)


def _labels_for(num_labels) -> dict:
    return {str(i): f"LABEL_{i}" for i in range(num_labels)} if isinstance(num_labels, int) else {}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PretrainedConfig:
    """Fields every family shares. Subclasses set `model_type` and add their own fields."""

    model_type: ClassVar[str] = ""
    # Hugging Face spells some keys differently across families; map old spellings to fields.
    attribute_map: ClassVar[Mapping[str, str]] = {}

    architectures: Optional[tuple[str, ...]] = None
    id2label: Optional[Mapping[str, str]] = None
    label2id: Optional[Mapping[str, int]] = None
    problem_type: Optional[Literal["regression", "single_label_classification",
                                   "multi_label_classification"]] = None
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int | tuple[int, ...]] = None
    tie_word_embeddings: bool = True
    # Keys this class does not model, kept verbatim so that writing back loses nothing.
    extra: Mapping[str, Any] = dataclasses.field(default_factory=FrozenMapping)
    # Key order of the source dict; empty for configs built in code.
    source_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False, compare=False)

    # -- construction -------------------------------------------------------------------
    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.name in ("extra", "source_keys"):
                continue
            value = getattr(self, f.name)
            frozen = _freeze(value)
            if frozen is not value:
                object.__setattr__(self, f.name, frozen)
            tp = self._field_types()[f.name]
            if not _matches(frozen, tp):
                raise ConfigError(
                    f"{type(self).__name__}: key {f.name!r} has value {value!r} "
                    f"({type(value).__name__}); expected {_describe(tp)}")
        object.__setattr__(self, "extra", _freeze(dict(self.extra)))
        self.validate()

    @classmethod
    def _field_types(cls) -> dict[str, Any]:
        cache = cls.__dict__.get("_types_cache")
        if cache is None:
            cache = typing.get_type_hints(cls)
            setattr(cls, "_types_cache", cache)
        return cache

    def validate(self) -> None:
        """Cross-field checks; subclasses extend and raise `ConfigError` via `self.fail`."""
        if self.id2label is not None:
            for key in self.id2label:
                if not str(key).lstrip("-").isdigit():
                    self.fail("id2label", self.id2label, "keys that are label indices")

    def fail(self, key: str, value: Any, expected: str):
        raise ConfigError(f"{type(self).__name__}: key {key!r} has value {value!r}; expected {expected}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides) -> "PretrainedConfig":
        data = dict(data)
        data.update(overrides)
        if cls.model_type and data.get("model_type", cls.model_type) not in cls.accepted_model_types():
            raise ConfigError(
                f"{cls.__name__}: key 'model_type' has value {data['model_type']!r}; expected one of "
                f"{sorted(cls.accepted_model_types())}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "source_keys"}
        known, extra = {}, {}
        for key, value in data.items():
            field_name = cls.attribute_map.get(key, key)
            if key == "model_type":
                extra[key] = value
            elif field_name in names:
                known[field_name] = value
            else:
                extra[key] = value
        # `num_labels` alone (no id2label) means LABEL_0..LABEL_{n-1}, as in transformers.
        if "num_labels" in extra and known.get("id2label") is None:
            n = extra["num_labels"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ConfigError(f"{cls.__name__}: key 'num_labels' has value {n!r}; expected a positive int")
            known["id2label"] = _labels_for(n)
        return cls(**known, extra=extra, source_keys=tuple(data))

    @classmethod
    def accepted_model_types(cls) -> tuple[str, ...]:
        return (cls.model_type,)

    @classmethod
    def from_json_file(cls, path) -> "PretrainedConfig":
        path = pathlib.Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file; a model folder needs a config.json") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e}); re-save the config") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object, found {type(data).__name__}")
        return cls.from_dict(data)

    @classmethod
    def from_pretrained(cls, folder) -> "PretrainedConfig":
        return cls.from_json_file(pathlib.Path(folder) / "config.json")

    # -- writing back ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        values = {}
        defaults = {}
        inverse_map = {v: k for k, v in self.attribute_map.items()}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "source_keys"):
                continue
            values[f.name] = _thaw(getattr(self, f.name))
            if f.default is not dataclasses.MISSING:
                defaults[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                defaults[f.name] = f.default_factory()
        out: dict[str, Any] = {}
        source = list(self.source_keys)
        for key in source:
            field_name = self.attribute_map.get(key, key)
            if key in self.extra:
                out[key] = _thaw(self.extra[key])
            elif field_name in values:
                out[key] = values.pop(field_name)
        if not source:
            out["model_type"] = self.model_type
        for key, value in self.extra.items():
            out.setdefault(key, _thaw(value))
        if "num_labels" in self.extra and values.get("id2label") == _labels_for(self.extra["num_labels"]):
            values.pop("id2label")          # derived from num_labels on the way in
        for name, value in values.items():
            if not source or value != _thaw(defaults.get(name, object())):
                out[inverse_map.get(name, name)] = value
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def save_pretrained(self, folder) -> pathlib.Path:
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "config.json"
        path.write_text(self.to_json_string())
        return path

    def replace(self, **changes) -> "PretrainedConfig":
        """A copy with `changes`; validated like a new config. Keeps the source key order."""
        return dataclasses.replace(self, **changes)

    # -- derived -------------------------------------------------------------------------
    @property
    def num_labels(self) -> int:
        return 2 if self.id2label is None else len(self.id2label)

    @property
    def label_names(self) -> list[str]:
        if self.id2label is None:
            return [f"LABEL_{i}" for i in range(self.num_labels)]
        return [self.id2label[k] for k in sorted(self.id2label, key=int)]
