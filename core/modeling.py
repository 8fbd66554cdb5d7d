"""`PretrainedModel`: a config, a linen Module and its params, loaded from and saved to a
Hugging Face folder, called like a `transformers` model.

    model = AutoModelForMaskedLM.from_pretrained("path/to/folder")
    out = model(input_ids=ids, attention_mask=mask)     # jit-compiled apply
    model.module, model.params, model.config            # the pure-functional pieces
"""
from __future__ import annotations

import importlib
import pathlib
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from core import registry
from core.checkpoint import keymap as km
from core.checkpoint.loading import load_folder, read_config, save_folder
from core.configuration import PretrainedConfig

_STATIC = ("deterministic", "output_attentions", "output_hidden_states")
_ID_INPUTS = ("input_ids", "token_type_ids", "position_ids")
# Tasks whose models are a subclass with more methods (causal-lm: `generate`).
_TASK_MODELS = {"causal-lm": "core.generation.model:CausalLMModel",
                "seq2seq-lm": "core.generation.seq2seq:Seq2SeqLMModel"}


def _task_model(task: str):
    module, name = _TASK_MODELS[task].split(":")
    return getattr(importlib.import_module(module), name)


def _abstract_params(module, task: str) -> dict:
    """Flat {path: ShapeDtypeStruct} of the module's params, without allocating them."""
    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), **_dummy_inputs(task, module.config)))
    return km.flatten(shapes["params"])


def _init_params(module, task: str, seed: int) -> dict:
    return jax.jit(module.init)(jax.random.PRNGKey(seed), **_dummy_inputs(task, module.config))["params"]


# The main input of a model: token ids, or pixels for vision models.
_MAIN_INPUTS = ("input_ids", "pixel_values", "input_values", "input_features")


def _dummy_inputs(task: str, config=None) -> dict:
    """The smallest input that builds every param of the task's module."""
    if hasattr(config, "text_config") and hasattr(config, "vision_config"):       # text + image (CLIP)
        vision = config.vision
        size = vision.image_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        return {"input_ids": jnp.zeros((1, 2), jnp.int32),
                "pixel_values": jnp.zeros((1, vision.num_channels, height, width), jnp.float32)}
    if (hasattr(config, "num_channels") and not hasattr(config, "vocab_size")) or hasattr(config, "image_size"):
        # Convolutional nets without a fixed resolution (ResNet) build the same params at any
        # size that survives their downsampling: 64 pixels does.
        size = getattr(config, "image_size", 64)
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        inputs = {"pixel_values": jnp.zeros((1, config.num_channels, height, width), jnp.float32)}
        if getattr(config, "mask_ratio", 0) > 0:          # ViTMAE draws no random numbers: it takes them
            inputs["noise"] = jnp.zeros((1, config.num_patches), jnp.float32)
        return inputs
    if hasattr(config, "conv_kernel") and hasattr(config, "conv_stride"):         # raw audio (Wav2Vec2)
        samples = 1
        for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride))):
            samples = (samples - 1) * stride + kernel          # the feature encoder's receptive field
        return {"input_values": jnp.zeros((1, samples), jnp.float32)}
    if hasattr(config, "num_mel_bins") and hasattr(config, "max_source_positions"):  # log-mel (Whisper)
        features = {"input_features": jnp.zeros((1, config.num_mel_bins, 2 * config.max_source_positions),
                                                jnp.float32)}
        if task == "sequence-classification":            # the encoder alone classifies
            return features
        return {**features, "decoder_input_ids": jnp.zeros((1, 1), jnp.int32)}
    shape = (1, 2, 2) if task == "multiple-choice" else (1, 2)   # (batch, [choices,] length)
    return {"input_ids": jnp.zeros(shape, jnp.int32)}


class PretrainedModel:
    """Holds (config, module, params); see the module docstring."""

    def __init__(self, config: PretrainedConfig, module, params: Mapping, task: str,
                 load_report: Optional[dict] = None):
        self.config = config
        self.module = module
        self.params = params
        self.task = task
        self.family = registry.family(config.model_type)
        self.load_report = load_report or {}
        self._apply = jax.jit(module.apply, static_argnames=_STATIC)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def build_module(cls, config: PretrainedConfig, task: str, dtype=jnp.float32,
                     param_dtype=jnp.float32, remat: bool = False, module_kwargs: Optional[Mapping] = None):
        module_cls = registry.family(config.model_type).module_class(task)
        return module_cls(config=config, dtype=dtype, param_dtype=param_dtype, remat=remat,
                          **dict(module_kwargs or {}))

    @classmethod
    def from_config(cls, config: PretrainedConfig, task: str = "base", seed: int = 0,
                    dtype=jnp.float32, param_dtype=jnp.float32, remat: bool = False,
                    module_kwargs: Optional[Mapping] = None) -> "PretrainedModel":
        """Randomly initialised weights (the family's initializer_range)."""
        if cls is PretrainedModel and task in _TASK_MODELS:
            return _task_model(task).from_config(config, task=task, seed=seed, dtype=dtype, param_dtype=param_dtype,
                                                 remat=remat, module_kwargs=module_kwargs)
        module = cls.build_module(config, task, dtype, param_dtype, remat, module_kwargs)
        return cls(config, module, _init_params(module, task, seed), task)

    @classmethod
    def from_pretrained(cls, folder, task: str = "base", dtype=jnp.float32, param_dtype=jnp.float32,
                        remat: bool = False, init_new_head: bool = False, seed: int = 0,
                        module_kwargs: Optional[Mapping] = None, gguf_file: Optional[str] = None,
                        **config_overrides) -> "PretrainedModel":
        """Load a Hugging Face folder (config.json + safetensors, sharded or not; `.bin` via
        torch's weights_only loader). Strict: any missing, unexpected or mis-shaped tensor is
        reported in one error and nothing is loaded.

        module_kwargs: extra fields of the Flax module (e.g. `add_pooling_layer=False`).
        config_overrides: config fields to change (validated like the file's own values).
        init_new_head: when the checkpoint has the backbone but not this task's head (e.g.
        fine-tuning a classifier from a pretrained encoder), initialise the head from `seed`.
        Keys of another task's head in the checkpoint are dropped and listed in `load_report`.
        gguf_file: a llama.cpp GGUF file in `folder` (or `folder` is the .gguf file itself): config,
        dequantized weights and tokenizer come from it (see core/checkpoint/gguf.py).
        """
        if cls is PretrainedModel and task in _TASK_MODELS:
            return _task_model(task).from_pretrained(
                folder, task=task, dtype=dtype, param_dtype=param_dtype, remat=remat, init_new_head=init_new_head,
                seed=seed, module_kwargs=module_kwargs, gguf_file=gguf_file, **config_overrides)
        from core.checkpoint import gguf
        gguf_path = gguf.resolve(folder, gguf_file)
        source = None if gguf_path is None else gguf.GGUFCheckpoint(gguf_path)
        folder = pathlib.Path(folder)
        config = read_config(folder) if source is None else source.config()
        if config_overrides:
            config = config.replace(**config_overrides)
        family = registry.family(config.model_type)
        module = cls.build_module(config, task, dtype, param_dtype, remat, module_kwargs)
        abstract = {p: jax.ShapeDtypeStruct(a.shape, param_dtype) for p, a in _abstract_params(module, task).items()}
        loaded = load_folder(gguf_path or folder, family, config, task, abstract, init_new_head,
                             put=lambda host: jax.device_put(host, may_alias=True),  # zero-copy on CPU
                             source=source)
        flat = loaded.flat
        report = {"dropped": loaded.dropped, "initialised": loaded.new_head}
        if loaded.new_head:
            fresh = km.flatten(_init_params(module, task, seed))
            for path in loaded.new_head:
                flat[path] = fresh[path]
            logging.info("%s: initialised new %s head params: %s", folder, task, loaded.new_head)
        if report["dropped"]:
            logging.info("%s: checkpoint tensors not used by %s: %s", folder, task, report["dropped"])
        return cls(config, module, km.unflatten(flat), task, report)

    # -- calling ----------------------------------------------------------------------------------
    def __call__(self, deterministic: bool = True, dropout_rng: Optional[jax.Array] = None,
                 output_attentions: bool = False, output_hidden_states: bool = False,
                 params: Optional[Mapping] = None, **inputs):
        """Run the model. Inputs are numpy/jax arrays or nested lists, named as in
        `transformers`. Training-mode dropout needs `deterministic=False` and a `dropout_rng`."""
        inputs = {k: v for k, v in inputs.items() if v is not None}
        if not any(name in inputs for name in _MAIN_INPUTS):
            raise TypeError(f"{type(self.module).__name__} needs one of {', '.join(_MAIN_INPUTS)}; got {sorted(inputs)}")
        arrays = {k: self._check_input(k, v) for k, v in inputs.items()}
        rngs = None
        if not deterministic:
            if dropout_rng is None:
                raise ValueError("deterministic=False (training-mode dropout) needs dropout_rng=jax.random.key(...)")
            rngs = {"dropout": dropout_rng}
        return self._apply({"params": self.params if params is None else params}, **arrays,
                           deterministic=deterministic, output_attentions=output_attentions,
                           output_hidden_states=output_hidden_states, rngs=rngs)

    def _check_input(self, name: str, value) -> jax.Array:
        if isinstance(value, jax.Array):
            array = value
        else:
            try:
                array = np.asarray(value)
            except ValueError as e:
                raise ValueError(f"{name}: cannot be made an array ({e}); pad the batch to equal lengths") from None
        if name in _ID_INPUTS or name == "attention_mask":
            if not jnp.issubdtype(array.dtype, jnp.integer) and array.dtype != bool:
                raise TypeError(f"{name}: expected integer ids, got dtype {array.dtype}")
            if array.ndim < 2:
                raise ValueError(f"{name}: expected shape (batch, length), got {array.shape}; "
                                 "wrap a single sequence in a list")
            if array.shape[-1] == 0:
                raise ValueError(f"{name}: empty sequence (length 0); encode at least one token")
        if name == "input_ids" and isinstance(array, np.ndarray) and array.size:
            vocab = getattr(self.config, "vocab_size", None)
            low, high = int(array.min()), int(array.max())
            if low < 0 or (vocab is not None and high >= vocab):
                raise ValueError(f"input_ids: values must lie in [0, {vocab}) (vocab_size); found {low}..{high}")
            limit = self.max_length
            if limit is not None and array.shape[-1] > limit:
                raise ValueError(f"input_ids: length {array.shape[-1]} exceeds the model's maximum of {limit} "
                                 "positions; truncate (tokenizer truncation=True, max_length=...)")
        return jnp.asarray(array)

    @property
    def max_length(self) -> Optional[int]:
        limit = getattr(self.config, "max_input_length", None)
        if limit is not None:
            return limit
        return getattr(self.config, "max_position_embeddings", None)

    # -- saving -------------------------------------------------------------------------------------
    def save_pretrained(self, folder, max_shard_size: int | str = "5GB") -> pathlib.Path:
        """Write config.json and safetensors in the Hugging Face layout `transformers` loads."""
        flat = {p: np.asarray(jax.device_get(v)) for p, v in km.flatten(self.params).items()}
        return save_folder(folder, self.family, self.config, self.task, flat, max_shard_size)

    def num_params(self) -> int:
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.params))

    def __repr__(self):
        return (f"{type(self).__name__}({self.config.model_type}, task={self.task!r}, "
                f"params={self.num_params():,})")
