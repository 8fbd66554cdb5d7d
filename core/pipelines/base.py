"""The machinery every pipeline shares: load (model, tokenizer), check and encode the inputs, run the
model in padded batches whose shapes come from a small fixed set (so repeated calls do not
recompile), and cut each result back to its own length.

Shapes. A batch of `rows` encodings whose longest has `n` tokens runs as an array of
(`batch_bucket(rows)`, `length_bucket(n)`): the length is rounded up to a power of two (at least
`min_length_bucket`, at most the model's maximum positions) and the row count to a power of two
(at most `batch_size`). Every distinct pair compiles once; `compile_count` counts the traces of
the jitted forward (one trace = one XLA compilation in this process).

Backends. The model call goes through a `Backend` chosen from the model at construction: `JAX`
(a `core.PretrainedModel`; `jax.jit` over `module.apply`) or a port's (`ports.torch.pipelines`: the
generated torch module under `torch.no_grad()`). A forward is written once as
`forward(call, xp, *arrays)`: `call` runs the model, `xp` is the backend's tiny array namespace
(`take_along_axis`, `softmax`, `argmax`, `float32`) used by the pipelines' `_select`; the result
comes back to the host as numpy. This module imports JAX only inside the JAX backend.
"""
from __future__ import annotations

import dataclasses
import inspect
import pathlib
import sys
import types
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from core import registry
from core.checkpoint.keymap import KeyMapError
from core.checkpoint.loading import read_config
from core.tokenization import AutoTokenizer, PreTrainedTokenizer
from core.tokenization.tokenizers_backend import TokenizersTokenizer


class PipelineError(ValueError):
    """A pipeline cannot serve this model, tokenizer or input; the message names the fix."""


@dataclasses.dataclass
class Feature:
    """One model input row (before padding) and whatever the postprocessing needs to know about it."""

    input_ids: list[int]
    token_type_ids: Optional[list[int]] = None
    meta: dict = dataclasses.field(default_factory=dict)


def _next_power_of_two(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} ({text[:60]}{'...' if len(text) > 60 else ''})"


# -- backends --------------------------------------------------------------------------------------------
def is_pretrained(obj) -> bool:
    """Whether `obj` is a core.PretrainedModel (without importing JAX when nothing loaded one)."""
    modeling = sys.modules.get("core.modeling")
    return modeling is not None and isinstance(obj, modeling.PretrainedModel)


class Backend:
    """Where a pipeline's model runs. `load` / `is_loaded` / `adopt` give the pipeline's model object
    (which has config, task, max_length, module, params and, for LMs, generation_config and generate);
    `compile(pipeline, forward)` turns `forward(call, xp, *arrays)` into `runner(*arrays)` → numpy,
    adding 1 to `pipeline._traces` per compiled (or, eagerly, per distinct) input shape."""

    loaded_name = "a Rosetta PretrainedModel"

    def is_loaded(self, obj) -> bool:
        raise NotImplementedError

    def adopt(self, model):
        return model

    def reload_hint(self, head: str) -> str:
        raise NotImplementedError

    def load(self, folder, head: str, dtype, **kwargs):
        raise NotImplementedError

    def module_fields(self, family, head: str) -> set:
        """Constructor fields of the head's module (module_kwargs it accepts)."""
        raise NotImplementedError

    def input_names(self, model) -> set:
        raise NotImplementedError

    def compile(self, pipeline, forward):
        raise NotImplementedError


class _JaxRunner:
    """The jitted forward, called with the model's current params; results fetched to numpy."""

    def __init__(self, jitted, pipeline):
        self.jitted, self.pipeline = jitted, pipeline

    def __call__(self, *arrays):
        import jax
        return jax.device_get(self.jitted(self.pipeline.model.params, *arrays))

    def _cache_size(self) -> int:
        return self.jitted._cache_size()


class JaxBackend(Backend):
    def is_loaded(self, obj) -> bool:
        return is_pretrained(obj)

    def reload_hint(self, head: str) -> str:
        return f"PretrainedModel.from_pretrained(folder, task={head!r})"

    def load(self, folder, head, dtype, **kwargs):
        from core.modeling import PretrainedModel
        if dtype is not None:
            kwargs["dtype"] = dtype
        return PretrainedModel.from_pretrained(folder, task=head, **kwargs)

    def module_fields(self, family, head):
        return {f.name for f in dataclasses.fields(family.module_class(head))}

    def input_names(self, model):
        return set(inspect.signature(type(model.module).__call__).parameters)

    def compile(self, pipeline, forward):
        import jax
        import jax.numpy as jnp
        xp = types.SimpleNamespace(take_along_axis=jnp.take_along_axis, softmax=jax.nn.softmax, argmax=jnp.argmax,
                                   float32=lambda x: jnp.asarray(x, jnp.float32))
        module = pipeline.model.module

        def traced(params, *arrays):
            pipeline._traces += 1          # runs once per trace, i.e. once per compiled shape
            return forward(lambda *a, **k: module.apply({"params": params}, *a, **k), xp, *arrays)

        return _JaxRunner(jax.jit(traced), pipeline)


JAX = JaxBackend()


def backend_of(model) -> Backend:
    """The backend that runs `model`: a port's adapter names its own; a PretrainedModel runs in JAX."""
    return getattr(model, "pipeline_backend", None) or JAX


def check_model(task: str, model) -> None:
    if getattr(model, "pipeline_backend", None) is None and not is_pretrained(model):
        raise TypeError(f"{task}: model must be a Rosetta PretrainedModel, got {describe(model)}")


class Pipeline:
    """Base class. Subclasses set `task`, `head` (the Rosetta task whose weights they need),
    `token_outputs` (outputs with a length axis, cut back per row) and implement `_select(out, extra, xp)`
    (traceable, written with the backend's `xp`: which model outputs to bring back to the host) and
    `__call__`."""

    task: str = ""
    head: str = "base"
    token_outputs: tuple[str, ...] = ()
    # feature-extraction: transformers returns each row padded to its batch's longest input.
    keep_batch_padding: bool = False

    def __init__(self, model, tokenizer: PreTrainedTokenizer, batch_size: int = 1, min_length_bucket: int = 8):
        check_model(self.task, model)
        if not isinstance(tokenizer, PreTrainedTokenizer):
            raise TypeError(f"{self.task}: tokenizer must be a Rosetta tokenizer (core.AutoTokenizer), "
                            f"got {describe(tokenizer)}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = check_batch_size(batch_size)
        self.min_length_bucket = int(min_length_bucket)
        self.max_positions = model.max_length
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.backend = backend_of(model)
        self._use_token_types = ("token_type_ids" in self.backend.input_names(model)
                                 and "token_type_ids" in tokenizer.model_input_names)
        self._traces = 0
        self._forward = self.backend.compile(self, self._make_forward())

    # -- the model call --------------------------------------------------------------------------
    def _make_forward(self):
        select = self._select

        def forward(call, xp, input_ids, attention_mask, token_type_ids, extra):
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                inputs["token_type_ids"] = token_type_ids
            return select(call(**inputs), extra, xp)

        return forward

    def _select(self, out, extra, xp) -> dict:
        raise NotImplementedError

    def _extra_inputs(self, chunk: Sequence[Feature], rows: int, length: int):
        """Additional (numpy) inputs of `_select` for a padded batch; None when there are none."""
        return None

    @property
    def compile_count(self) -> int:
        """How many shapes the forward has been compiled for, in this pipeline's lifetime."""
        return self._traces

    def length_bucket(self, n: int) -> int:
        limit = self.max_positions
        if limit is not None and n > limit:
            raise PipelineError(f"{self.task}: a sequence of {n} tokens exceeds the model's maximum of {limit} "
                                "positions; pass truncation=True (or shorter texts)")
        bucket = max(self.min_length_bucket, _next_power_of_two(n))
        return bucket if limit is None else min(bucket, limit)

    @staticmethod
    def batch_bucket(rows: int, batch_size: int) -> int:
        return min(_next_power_of_two(rows), batch_size)

    def _run(self, features: Sequence[Feature], batch_size: int) -> list[dict[str, np.ndarray]]:
        """Model outputs per feature (numpy, batch axis removed, token axes cut to the feature's length),
        computed `batch_size` features at a time in input order."""
        results = []
        for start in range(0, len(features), batch_size):
            chunk = features[start:start + batch_size]
            lengths = [len(f.input_ids) for f in chunk]
            longest = max(lengths)
            length = self.length_bucket(longest)
            rows = self.batch_bucket(len(chunk), batch_size)
            ids = np.full((rows, length), self._pad_id, np.int32)
            mask = np.zeros((rows, length), np.int32)
            types = np.zeros((rows, length), np.int32) if self._use_token_types else None
            for row, feature in enumerate(chunk):
                n = len(feature.input_ids)
                ids[row, :n] = feature.input_ids
                mask[row, :n] = 1
                if types is not None and feature.token_type_ids is not None:
                    types[row, :n] = feature.token_type_ids
            mask[len(chunk):, 0] = 1       # filler rows: one visible token, no all-masked softmax
            extra = self._extra_inputs(chunk, rows, length)
            out = self._forward(ids, mask, types, extra)
            for row, n in enumerate(lengths):
                keep = longest if self.keep_batch_padding else n
                results.append({name: (value[row, :keep] if name in self.token_outputs else value[row])
                                for name, value in out.items()})
        return results

    # -- inputs and tokenization -----------------------------------------------------------------------
    def _texts(self, inputs, argument: str = "inputs") -> tuple[list[str], bool]:
        """The texts of a string or a list of strings, and whether a single string was given."""
        if isinstance(inputs, str):
            texts, single = [inputs], True
        elif isinstance(inputs, (list, tuple)):
            texts, single = list(inputs), False
            if not texts:
                raise PipelineError(f"{self.task}: `{argument}` is an empty list; pass a string or a non-empty "
                                    "list of strings")
        else:
            raise TypeError(f"{self.task}: `{argument}` must be a string or a list of strings, got {describe(inputs)}")
        for index, text in enumerate(texts):
            check_text(text, self.task, f"{argument}[{index}]" if not single else argument)
        return texts, single

    def _encode(self, texts: Sequence[str], pairs: Optional[Sequence[Optional[str]]] = None, *,
                truncation=None, max_length: Optional[int] = None, offsets: bool = False,
                special_tokens_mask: bool = False, add_special_tokens: bool = True) -> list[Feature]:
        """Tokenize (unpadded), as transformers' pipelines call the tokenizer; one Feature per text."""
        if offsets and not self.tokenizer.supports_offsets:
            offsets = False
        singles = [i for i in range(len(texts)) if pairs is None or pairs[i] is None]
        paired = [i for i in range(len(texts)) if pairs is not None and pairs[i] is not None]
        features: list[Optional[Feature]] = [None] * len(texts)
        kwargs = dict(add_special_tokens=add_special_tokens, truncation=truncation, max_length=max_length,
                      return_token_type_ids=self._use_token_types, return_attention_mask=False,
                      return_special_tokens_mask=special_tokens_mask, return_offsets_mapping=offsets)
        for group, second in ((singles, None), (paired, [pairs[i] for i in paired] if paired else None)):
            if not group:
                continue
            batch = self.tokenizer([texts[i] for i in group], second, **kwargs)
            for k, i in enumerate(group):
                meta = {}
                if special_tokens_mask:
                    meta["special_tokens_mask"] = batch["special_tokens_mask"][k]
                if offsets:
                    meta["offset_mapping"] = [tuple(o) for o in batch["offset_mapping"][k]]
                features[i] = Feature(batch["input_ids"][k],
                                      batch["token_type_ids"][k] if self._use_token_types else None, meta)
        for index, feature in enumerate(features):
            if self.max_positions is not None and len(feature.input_ids) > self.max_positions:
                raise PipelineError(
                    f"{self.task}: input {index} has {len(feature.input_ids)} tokens, more than the model's maximum "
                    f"of {self.max_positions} positions; pass truncation=True (or shorten the text)")
        return features

    def _batch_size(self, batch_size) -> int:
        return self.batch_size if batch_size is None else check_batch_size(batch_size)

    def tokens_to_string(self, tokens: list[str]) -> str:
        """transformers' `convert_tokens_to_string`: the backend decoder on the tokens."""
        if isinstance(self.tokenizer, TokenizersTokenizer):
            decoder = self.tokenizer.backend_tokenizer.decoder
            return decoder.decode(tokens) if decoder is not None else " ".join(tokens)
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        return self.tokenizer.decode(ids, clean_up_tokenization_spaces=False)

    def __repr__(self):
        return (f"{type(self).__name__}(task={self.task!r}, model={self.model!r}, batch_size={self.batch_size}, "
                f"compiles={self.compile_count})")


def check_text(text, task: str, where: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{task}: {where} must be a string, got {describe(text)}")
    if not text.strip():
        raise PipelineError(f"{task}: {where} is an empty string; there is nothing to process")


def check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def check_top_k(top_k, name: str = "top_k") -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"{name} must be an int >= 1, got {top_k!r}")
    return int(top_k)


# -- loading -------------------------------------------------------------------------------------------
def load_model(task: str, head: str, model, dtype=None, model_kwargs: Optional[Mapping] = None,
               optional_pooler: bool = False, backend: Optional[Backend] = None):
    """The model with `head` weights, from a folder (or as given), with pipeline-worded errors; `backend`
    (default JAX: a core.PretrainedModel, dtype None = float32) loads it."""
    backend = backend or JAX
    if backend.is_loaded(model):
        model = backend.adopt(model)
        if model.task != head:
            raise PipelineError(f"{task} needs a model with the {head!r} head; the model given was loaded with "
                                f"task={model.task!r}. Load it with {backend.reload_hint(head)} or pass the folder")
        return model
    if not isinstance(model, (str, pathlib.Path)):
        raise TypeError(f"{task}: model must be a local folder path or {backend.loaded_name}, "
                        f"got {describe(model)}")
    folder = pathlib.Path(model)
    if not folder.is_dir():
        raise FileNotFoundError(f"{task}: {str(folder)!r} is not a directory. Rosetta pipelines read a local "
                                "Hugging Face model folder; they do not download from the Hub")
    config = read_config(folder)
    family = registry.family(config.model_type)
    if head not in family.heads:
        raise PipelineError(f"{task} needs a {head!r} model, and Rosetta's {config.model_type!r} family has none "
                            f"(it has: {', '.join(family.heads)}); use a model type that has one")
    kwargs = dict(model_kwargs or {})
    try:
        return backend.load(folder, head, dtype, **kwargs)
    except KeyMapError as error:
        message = str(error)
        if optional_pooler and "pooler" in message:
            if "add_pooling_layer" in backend.module_fields(family, head):
                # feature-extraction needs no pooler: load the encoder whether or not the folder has one.
                kwargs.setdefault("module_kwargs", {})
                kwargs["module_kwargs"] = {**kwargs["module_kwargs"], "add_pooling_layer": False}
                return backend.load(folder, head, dtype, **kwargs)
        if "init_new_head" in message:
            architectures = list(config.architectures or ())
            raise PipelineError(
                f"{task} needs the trained weights of a {family.heads[head][1]} head, and {folder} has none "
                f"(config.json architectures: {architectures or 'not given'}). Use a checkpoint saved from "
                f"{family.heads[head][1]} (fine-tune one first if needed); a folder of another head cannot "
                f"serve {task}.") from error
        raise


def load_tokenizer(task: str, tokenizer, model_source) -> PreTrainedTokenizer:
    if isinstance(tokenizer, PreTrainedTokenizer):
        return tokenizer
    if tokenizer is None:
        if not isinstance(model_source, (str, pathlib.Path)):
            raise PipelineError(f"{task}: a loaded model needs tokenizer=... (a folder or a Rosetta tokenizer)")
        tokenizer = model_source
    if not isinstance(tokenizer, (str, pathlib.Path)):
        raise TypeError(f"{task}: tokenizer must be a folder path or a Rosetta tokenizer, got {describe(tokenizer)}")
    return AutoTokenizer.from_pretrained(tokenizer)
