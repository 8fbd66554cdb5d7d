"""`Module`, the base class of every generated TensorFlow module: a `tf.Module` that

- lists its variables in the Flax layout (`flax_leaves`, `flax_shapes`, `export_flax`,
  `load_flax`): paths and shapes exactly as the canonical Flax module's param tree, so the
  numpy-only key maps in `core/` load and save Hugging Face folders for it;
- loads and saves Hugging Face folders (`from_pretrained`, `from_config`, `save_pretrained`),
  strictly: one `KeyMapError` lists every missing / unexpected / mis-shaped tensor;
- maps gradients from a `tf.GradientTape` to Flax paths (`flax_grads`).

Primitive twins map their own variables (`flax_params`: Flax name → (attribute, transposed));
`P.Repeat` shows its layers as one stacked leaf per variable (`flax_stack_name`). Everything
else is structural: a submodule attribute `x` is the Flax scope `x/`, a list attribute `xs` gives
`xs_0/`, `xs_1/`, ..., a raw variable is a leaf.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Mapping, Optional

import ml_dtypes
import numpy as np
import tensorflow as tf

from core import outputs, registry
from core.checkpoint import keymap as km
from core.checkpoint import loading
from core.configuration import PretrainedConfig
from core.generation import host
from core.generation.config import GenerationConfig

_PORT = __name__.rsplit(".runtime", 1)[0]          # "ports.tf"


# Model outputs are nested structures for tf.nest (TF's custom nest protocol), so a model's
# `__call__` can run under `tf.function` and return them, as jit returns them in JAX.
def _tf_flatten(self):
    names = tuple(f.name for f in dataclasses.fields(self))
    return names, tuple(getattr(self, name) for name in names)


def _tf_unflatten(cls, names, components):
    return cls(**dict(zip(names, components)))


for _cls in outputs.ALL_OUTPUTS:
    _cls.__tf_flatten__ = _tf_flatten
    _cls.__tf_unflatten__ = classmethod(_tf_unflatten)


# -- numpy <-> tf ---------------------------------------------------------------------------------

def to_numpy(t) -> np.ndarray:
    """A host numpy copy of `t`."""
    return np.array(tf.convert_to_tensor(t).numpy(), copy=True)


def numpy_dtype(dtype) -> np.dtype:
    dtype = tf.as_dtype(dtype)
    if dtype == tf.bfloat16:
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype.as_numpy_dtype)


# -- the Flax-layout view -------------------------------------------------------------------------

class Leaf:
    """One Flax leaf backed by one variable (transposed if its twin says so)."""

    def __init__(self, owner, attr: str, transposed: bool):
        self.owner, self.attr, self.transposed = owner, attr, transposed

    @property
    def variable(self) -> tf.Variable:
        return getattr(self.owner, self.attr)

    @property
    def shape(self) -> tuple:
        shape = tuple(self.variable.shape.as_list())
        return shape[::-1] if self.transposed else shape

    @property
    def dtype(self):
        return self.variable.dtype

    def get(self):
        value = tf.convert_to_tensor(self.variable)
        return tf.transpose(value) if self.transposed else value

    def set(self, value) -> None:
        value = tf.convert_to_tensor(value)
        value = tf.transpose(value) if self.transposed else value
        self.variable.assign(tf.cast(value, self.variable.dtype))

    def variables(self) -> list:
        return [self.variable]

    def combine(self, grads: list):
        g = grads[0]
        return None if g is None else (tf.transpose(g) if self.transposed else g)


class StackedLeaf:
    """The same leaf of every layer of a `P.Repeat`, seen as one (layers, ...) array."""

    def __init__(self, leaves: list):
        self.leaves = leaves

    @property
    def shape(self) -> tuple:
        return (len(self.leaves),) + self.leaves[0].shape

    @property
    def dtype(self):
        return self.leaves[0].dtype

    def get(self):
        return tf.stack([leaf.get() for leaf in self.leaves])

    def set(self, value) -> None:
        for i, leaf in enumerate(self.leaves):
            leaf.set(value[i])

    def variables(self) -> list:
        return [leaf.variable for leaf in self.leaves]

    def combine(self, grads: list):
        grads = [leaf.combine([g]) for leaf, g in zip(self.leaves, grads)]
        return None if any(g is None for g in grads) else tf.stack(grads)


def flax_leaves(module, prefix: str = "") -> dict:
    """{flax path: Leaf | StackedLeaf} for `module` and everything below it."""
    out: dict = {}
    _collect(module, prefix, out)
    return out


def _children(module) -> list:
    """(attribute, value) of a module's variables, submodules and lists of submodules, in
    attribute order (construction order, as Flax's `setup`)."""
    items = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (tf.Variable, tf.Module)):
            items.append((name, value))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, tf.Module) for v in value):
            items.append((name, list(value)))
    return items


def _collect(module, prefix: str, out: dict) -> None:
    own = getattr(module, "flax_params", None)
    if own is not None:                                   # a primitive twin
        for name, (attr, transposed) in own().items():
            out[prefix + name] = Leaf(module, attr, transposed)
        return
    stack_name = getattr(module, "flax_stack_name", None)
    if stack_name is not None:                            # P.Repeat: layers stacked on axis 0
        layers = [flax_leaves(block) for block in module.layers]
        for path in layers[0]:
            out[f"{prefix}{stack_name}/{path}"] = StackedLeaf([layer[path] for layer in layers])
        return
    for name, value in _children(module):
        if isinstance(value, tf.Variable):                # raw `self.param(...)`
            out[prefix + name] = Leaf(module, name, False)
        elif isinstance(value, list):                     # Flax names list items `name_0`, ...
            for i, item in enumerate(value):
                _collect(item, f"{prefix}{name}_{i}/", out)
        else:
            _collect(value, f"{prefix}{name}/", out)


@dataclasses.dataclass(frozen=True)
class LeafSpec:
    """Shape and numpy dtype of a leaf: what `core.checkpoint` plans a load against."""
    shape: tuple
    dtype: np.dtype


# -- the base class -------------------------------------------------------------------------------

class Module(tf.Module):
    """`tf.Module` plus the Flax-layout view and Hugging Face I/O (see the module doc)."""

    # -- the Flax view ----------------------------------------------------------------------------
    def flax_leaves(self) -> dict:
        return flax_leaves(self)

    def flax_shapes(self) -> dict[str, tuple]:
        """{flax path: shape}: the canonical module's param tree, flattened with '/'."""
        return {path: leaf.shape for path, leaf in self.flax_leaves().items()}

    def export_flax(self) -> dict[str, np.ndarray]:
        """{flax path: numpy array} in the Flax layout (host copies)."""
        return {path: to_numpy(leaf.get()) for path, leaf in self.flax_leaves().items()}

    def flax_variables(self) -> dict[str, list]:
        """{flax path: [variables]}: what to pass to `tape.gradient` for `flax_grads`."""
        return {path: leaf.variables() for path, leaf in self.flax_leaves().items()}

    def flax_grads(self, tape: tf.GradientTape, target) -> dict[str, Optional[np.ndarray]]:
        """d target / d params from `tape` (which recorded the forward pass), in the Flax
        layout (None where a leaf has no gradient)."""
        leaves = self.flax_leaves()
        sources = {path: leaf.variables() for path, leaf in leaves.items()}
        grads = tape.gradient(target, sources)
        out = {}
        for path, leaf in leaves.items():
            g = leaf.combine(list(grads[path]))
            out[path] = None if g is None else to_numpy(g)
        return out

    def load_flax(self, flat: Mapping[str, object], missing_ok=(), source: str = "Flax params",
                  consume: bool = False) -> None:
        """Load a flat {flax path: array} (numpy or tf, Flax layout). Strict: every leaf must
        be given (except those in `missing_ok`) with its shape, and nothing else; one
        `KeyMapError` lists every problem and nothing is loaded. `consume` empties `flat` leaf
        by leaf, so a loaded buffer is freed as soon as its variable holds the data."""
        leaves = self.flax_leaves()
        missing = [p for p in leaves if p not in flat and p not in set(missing_ok)]
        unexpected = [p for p in flat if p not in leaves]
        misshaped = [f"{p}: given {tuple(np.shape(flat[p]))}, the module has {leaves[p].shape}"
                     for p in flat if p in leaves and tuple(np.shape(flat[p])) != leaves[p].shape]
        if missing or unexpected or misshaped:
            lines = [f"{source}: do not match {type(self).__name__}; nothing was loaded."]
            for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
                if items:
                    lines.append(f"  {title}: {len(items)}")
                    lines.extend(f"    {item}" for item in items)
            raise km.KeyMapError("\n".join(lines))
        for path in list(flat):
            value = flat.pop(path) if consume else flat[path]
            leaves[path].set(value)
            del value

    # -- Hugging Face folders -----------------------------------------------------------------------
    @classmethod
    def head_task(cls, config: PretrainedConfig) -> str:
        """The registry task whose head (for `config.model_type`) is this class."""
        family = registry.family(config.model_type)
        module = port_module(family)
        for task, (name, _) in family.heads.items():
            if getattr(module, name, None) is cls:
                return task
        raise TypeError(f"{cls.__name__} is not a registered head of model_type {config.model_type!r}; "
                        f"its heads are {', '.join(name for name, _ in family.heads.values())}")

    @classmethod
    def from_config(cls, config: PretrainedConfig, seed: int = 0, dtype=tf.float32, param_dtype=tf.float32,
                    remat: bool = False, module_kwargs: Optional[Mapping] = None):
        """Randomly initialised weights (the family's initializer_range)."""
        tf.random.set_seed(seed)
        return cls(config=config, dtype=dtype, param_dtype=param_dtype, remat=remat, **dict(module_kwargs or {}))

    @classmethod
    def from_pretrained(cls, folder, dtype=tf.float32, param_dtype=tf.float32, remat: bool = False,
                        init_new_head: bool = False, seed: int = 0, module_kwargs: Optional[Mapping] = None,
                        **config_overrides):
        """Load a Hugging Face folder (config.json + safetensors, sharded or not), as
        `core.PretrainedModel.from_pretrained` does (same options, same strict errors), into
        this class. Returns the module with `.config` and `.load_report`."""
        config = loading.read_config(folder)
        if config_overrides:
            config = config.replace(**config_overrides)
        family = registry.family(config.model_type)
        task = cls.head_task(config)
        model = cls.from_config(config, seed=seed, dtype=dtype, param_dtype=param_dtype, remat=remat,
                                module_kwargs=module_kwargs)
        abstract = {p: LeafSpec(s, numpy_dtype(param_dtype)) for p, s in model.flax_shapes().items()}
        loaded = loading.load_folder(folder, family, config, task, abstract, init_new_head)
        model.load_flax(loaded.flat, missing_ok=loaded.new_head, source=str(folder), consume=True)
        model.load_report = {"dropped": loaded.dropped, "initialised": loaded.new_head}
        if hasattr(model, "init_cache"):
            model.generation_config = GenerationConfig.from_pretrained(folder, config)
        return model

    def save_pretrained(self, folder, max_shard_size: int | str = "5GB"):
        """Write config.json and safetensors that `transformers` (and the JAX model) load."""
        config = self.config
        family = registry.family(config.model_type)
        folder = loading.save_folder(folder, family, config, type(self).head_task(config), self.export_flax(),
                                     max_shard_size)
        if hasattr(self, "init_cache"):
            self._generation_defaults().save_pretrained(folder)
        return folder

    # -- generation ---------------------------------------------------------------------------------
    def _generation_defaults(self) -> GenerationConfig:
        return getattr(self, "generation_config", None) or GenerationConfig.from_model_config(self.config)

    def generate(self, input_ids=None, attention_mask=None, generation_config: Optional[GenerationConfig] = None,
                 seed: Optional[int] = None, streamer=None, tokenizer=None, jit_compile: bool = False,
                 **kwargs) -> tf.Tensor:
        """`transformers`' `generate` for a causal-LM head (one with `init_cache`): greedy,
        sampling and beam search with the same options as `core`'s `CausalLMModel.generate`;
        returns prompt + new tokens (int64). A seq2seq-LM head (one with `encode`) generates as
        `core`'s `Seq2SeqLMModel.generate`: decoder tokens from decoder_start_token_id.
        The model steps in TF with its KV cache; tokens are
        chosen by `core.generation.host` (greedy and beam outputs equal JAX's and
        `transformers`').

        Speech models (Whisper: `config.encoder_input == "input_features"`) take `input_features=`
        (or it positionally) and Whisper's options (language, task, ...), as `core`'s model does:
        `core.generation.whisper.generate` with this module as its backend.

        jit_compile: compile the cached decoder step with XLA (`tf.function(jit_compile=True)`).
        GPT-2 124M decodes ~1.6× faster, at ~50% more first-call time per shape (XLA
        compiles the prefill and the decode step); tokens are the same. Off by default."""
        if not hasattr(self, "init_cache"):
            raise TypeError(f"{type(self).__name__} cannot generate: only causal-LM and seq2seq-LM heads (with a "
                            "KV cache) do")
        if hasattr(self, "encode"):
            if type(self).head_task(self.config) != "seq2seq-lm":
                raise TypeError(f"{type(self).__name__} cannot generate: it has no language-model head; load the "
                                "folder with AutoModelForSeq2SeqLM")
            if getattr(self.config, "encoder_input", "input_ids") == "input_features":
                from core.generation import whisper
                features = kwargs.pop("input_features", None) if input_ids is None else input_ids
                tokens = whisper.generate(self.config, self._generation_defaults(), _WhisperBackend(self, jit_compile),
                                          input_features=None if features is None else np.asarray(features),
                                          attention_mask=None if attention_mask is None else np.asarray(attention_mask),
                                          generation_config=generation_config,
                                          seed=seed, streamer=streamer, tokenizer=tokenizer, **kwargs)
                if isinstance(tokens, dict):        # return_segments=True: {"sequences", "segments"}
                    return {**tokens, "sequences": tf.constant(tokens["sequences"])}
                return tf.constant(tokens)
        if input_ids is None:
            raise TypeError("generate() needs input_ids")
        config = self._generation_defaults().merged(generation_config, **kwargs)
        if hasattr(self, "encode"):
            return self._generate_seq2seq(input_ids, attention_mask, config, seed, streamer, tokenizer, jit_compile)

        step = self._decode_step("causal", jit_compile)

        def forward(ids, slot_mask, positions, cache, index):
            as_tensor = lambda a: tf.constant(np.asarray(a, np.int32))   # noqa: E731
            logits, cache = step(as_tensor(ids), as_tensor(slot_mask), as_tensor(positions), cache,
                                 tf.constant(index, tf.int32))
            return logits.numpy(), cache

        def reorder(cache, beam_idx):
            index = tf.constant(np.asarray(beam_idx, np.int32))
            return _tree_map(lambda c: tf.gather(c, index, axis=1), cache)

        host_ids = np.asarray(input_ids)
        host_mask = None if attention_mask is None else np.asarray(attention_mask)
        limit = getattr(self.config, "max_position_embeddings", None)
        tokens = host.generate(forward, self.init_cache, reorder, config, host_ids, host_mask, self.config.vocab_size,
                               limit, limit, seed, streamer, tokenizer)
        return tf.constant(tokens)

    def _generate_seq2seq(self, input_ids, attention_mask, config, seed, streamer, tokenizer, jit_compile=False):
        """Encoder-decoder generate: the encoder runs once on the rows repeated for beams; the
        decoder's first step fills the cross-attention cache; returns decoder tokens starting with
        decoder_start_token_id, as `transformers` does."""
        request, enc_ids, enc_mask = host.prepare_seq2seq(
            config, np.asarray(input_ids), None if attention_mask is None else np.asarray(attention_mask),
            self.config.vocab_size, tokenizer)
        as_tensor = lambda a: tf.constant(np.asarray(a, np.int32))   # noqa: E731
        encoder_mask = as_tensor(enc_mask)
        expand = enc_ids.shape[0] // request.batch         # encode each source once, repeat for the beams
        encoder_hidden = self.encode(as_tensor(enc_ids[::expand]), as_tensor(enc_mask[::expand])).last_hidden_state
        encoder_hidden = tf.repeat(encoder_hidden, expand, axis=0)
        return tf.constant(self._run_decoder(request, encoder_hidden, encoder_mask, seed, streamer, jit_compile))

    def _decode_step(self, kind: str, jit_compile: bool = False):
        """One cached decoder step of this model as a `tf.function` ("causal": `__call__`;
        "seq2seq": `decode`, `fill_cross_cache` static), kept per model and traced once per input
        shapes. Eager TF dispatches every op of every layer from Python at each token, which made
        the port's decoding about 15× slower than transformers (GPT-2 124M, scripts.bench ports).
        `jit_compile` keeps a second, XLA-compiled step (see `generate`)."""
        steps = self.__dict__.setdefault("_decode_steps", {})    # outside tf.Module's variable tracking
        if (kind, jit_compile) not in steps:
            if kind == "causal":
                def step(ids, slot_mask, positions, cache, index):
                    out = self(input_ids=ids, attention_mask=slot_mask, position_ids=positions, cache=cache,
                               cache_index=index, logits_to_keep=1)
                    return tf.cast(out.logits[:, -1], tf.float32), out.cache
            else:
                def step(ids, encoder_hidden, encoder_mask, slot_mask, cache, index, fill_cross_cache):
                    out = self.decode(ids, encoder_hidden, encoder_mask, slot_mask, cache, index, fill_cross_cache,
                                      logits_to_keep=1)
                    return tf.cast(out.logits[:, -1], tf.float32), out.cache
            steps[kind, jit_compile] = tf.function(step, jit_compile=jit_compile)
        return steps[kind, jit_compile]

    def _run_decoder(self, request: host.Request, encoder_hidden, encoder_mask, seed, streamer,
                     jit_compile: bool = False) -> np.ndarray:
        """The host decode loop of an encoder-decoder once the encoder has run (`encoder_hidden`
        already has the request's rows): the decoder's first step (the whole prompt, cache index 0)
        fills the cross-attention cache, later steps read it. int64 numpy, starting with the prompt."""
        as_tensor = lambda a: tf.constant(np.asarray(a, np.int32))   # noqa: E731
        encoder_length = int(encoder_hidden.shape[1])

        def init_cache(rows, max_length):
            return self.init_cache(rows, max_length, encoder_length)

        step = self._decode_step("seq2seq", jit_compile)

        def forward(ids, slot_mask, positions, cache, index):
            logits, cache = step(as_tensor(ids), encoder_hidden, encoder_mask, as_tensor(slot_mask), cache,
                                 tf.constant(index, tf.int32), index == 0)
            return logits.numpy(), cache

        def reorder(cache, beam_idx):
            index = as_tensor(beam_idx)
            return _tree_map(lambda c: tf.gather(c, index, axis=1), cache)

        return host.run(request, forward, init_cache, reorder, seed, streamer)


class _WhisperBackend:
    """`core.generation.whisper.Backend` for a TF Whisper seq2seq-LM head: the port's encoder, one
    cache-free decoder step (language detection), and the host decode loop
    (`host.prepare_prompted` + `Module._run_decoder`)."""

    def __init__(self, module: Module, jit_compile: bool = False):
        self.module, self.jit_compile = module, jit_compile

    def encode(self, features: np.ndarray):
        return self.module.encode(tf.constant(np.asarray(features, np.float32))).last_hidden_state

    def first_logits(self, start_ids: np.ndarray, encoder_hidden) -> np.ndarray:
        out = self.module.decode(tf.constant(np.asarray(start_ids, np.int32)), encoder_hidden)
        return tf.cast(out.logits[:, -1], tf.float32).numpy()

    def decode(self, cfg: GenerationConfig, encoder_hidden, prompt: np.ndarray, max_length: int, min_length: int,
               seed, prng_key, streamer, tokenizer) -> np.ndarray:
        if prng_key is not None:
            raise ValueError("prng_key is JAX's; the TF port samples from seed=<int>")
        request = host.prepare_prompted(cfg, prompt, max_length, min_length, tokenizer)
        expand = request.ids.shape[0] // request.batch
        encoder_hidden = tf.repeat(encoder_hidden, expand, axis=0) if expand > 1 else encoder_hidden
        return self.module._run_decoder(request, encoder_hidden, None, seed, streamer, self.jit_compile)


def _tree_map(fn, tree):
    if isinstance(tree, (tuple, list)):
        return type(tree)(_tree_map(fn, t) for t in tree)
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    return None if tree is None else fn(tree)


def port_module(family: registry.Family):
    """The generated module of `family` in this port (`ports.tf.models.<package>`)."""
    return importlib.import_module(f"{_PORT}.models.{family.modeling.split('.')[2]}")
