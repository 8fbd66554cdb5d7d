"""`Module`, the base class of every generated torch module: a `torch.nn.Module` that

- lists its parameters in the Flax layout (`flax_leaves`, `flax_shapes`, `export_flax`,
  `load_flax`, `flax_grads`): paths and shapes exactly as the canonical Flax module's param
  tree, so the numpy-only key maps in `core/` load and save Hugging Face folders for it;
- loads and saves Hugging Face folders (`from_pretrained`, `from_config`, `save_pretrained`),
  strictly: one `KeyMapError` lists every missing / unexpected / mis-shaped tensor;
- runs its creation ops (`ops.zeros`, `ops.arange`, ...) on its parameters' device.

Primitive twins map their own weights (`flax_params`: Flax name → (torch attribute,
transposed)); `P.Repeat` shows its layers as one stacked leaf per parameter (`flax_stack_name`).
Everything else is structural: a submodule attribute `x` is the Flax scope `x/`, a list
attribute `xs` (`nn.ModuleList`) gives `xs_0/`, `xs_1/`, ..., a raw parameter is a leaf.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
from typing import Mapping, Optional

import ml_dtypes
import numpy as np
import torch
from torch import nn

from core import outputs, registry
from core.checkpoint import keymap as km
from core.checkpoint import loading
from core.configuration import PretrainedConfig
from core.generation import host
from core.generation.config import GenerationConfig
from ports.torch.runtime import ops

_PORT = __name__.rsplit(".runtime", 1)[0]          # "ports.torch"

# Model outputs are pytrees for torch.export / torch.compile, as for jit in JAX.
for _cls in outputs.ALL_OUTPUTS:
    torch.export.register_dataclass(_cls, serialized_type_name=f"{_cls.__module__}.{_cls.__qualname__}")


# -- numpy <-> torch (bfloat16 through ml_dtypes, which numpy lacks) -----------------------------

def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A host numpy copy of `t` (never sharing memory with a parameter)."""
    t = t.detach().to("cpu")
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return np.array(t.numpy(), copy=True)


def from_numpy(a: np.ndarray) -> torch.Tensor:
    """A tensor sharing `a`'s memory where possible."""
    a = np.asarray(a)
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a)


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    if dtype == torch.bfloat16:
        return np.dtype(ml_dtypes.bfloat16)
    return torch.empty((), dtype=dtype).numpy().dtype


# -- the Flax-layout view -------------------------------------------------------------------------

class Leaf:
    """One Flax leaf backed by one torch parameter, in the twin's layout: `transposed` is False
    (the same layout), True (axes reversed: Dense kernels) or a permutation `perm` with
    flax = torch_value.permute(perm) (Conv kernels: torch (out, in, *k) → Flax (*k, in, out))."""

    def __init__(self, owner: nn.Module, attr: str, transposed):
        self.owner, self.attr, self.transposed = owner, attr, transposed

    @property
    def param(self) -> nn.Parameter:
        return self.owner._parameters[self.attr]

    def _perm(self, ndim: int):
        if self.transposed is True:
            return tuple(reversed(range(ndim)))
        if self.transposed is False or self.transposed is None:
            return None
        return tuple(self.transposed)

    def _to_flax(self, value: torch.Tensor) -> torch.Tensor:
        perm = self._perm(value.ndim)
        return value if perm is None else value.permute(perm)

    def _from_flax(self, value: torch.Tensor) -> torch.Tensor:
        perm = self._perm(value.ndim)
        if perm is None:
            return value
        inverse = [0] * len(perm)
        for i, p in enumerate(perm):
            inverse[p] = i
        return value.permute(inverse)

    @property
    def shape(self) -> tuple:
        shape = tuple(self.param.shape)
        perm = self._perm(len(shape))
        return shape if perm is None else tuple(shape[p] for p in perm)

    @property
    def dtype(self) -> torch.dtype:
        return self.param.dtype

    def get(self) -> torch.Tensor:
        return self._to_flax(self.param.detach())

    def grad(self) -> Optional[torch.Tensor]:
        g = self.param.grad
        return None if g is None else self._to_flax(g)

    def set(self, value: torch.Tensor, assign: bool = False) -> None:
        """Copy `value` (Flax layout) in; `assign` makes it the parameter's storage instead
        (used when the module was built on the meta device: no second copy of the weights)."""
        value = self._from_flax(value)
        old = self.param
        if assign:
            self.owner._parameters[self.attr] = nn.Parameter(value.to(old.dtype).contiguous(),
                                                             requires_grad=old.requires_grad)
        else:
            with torch.no_grad():
                old.copy_(value)


class StackedLeaf:
    """The same leaf of every layer of a `P.Repeat`, seen as one (layers, ...) array."""

    def __init__(self, leaves: list):
        self.leaves = leaves

    @property
    def shape(self) -> tuple:
        return (len(self.leaves),) + self.leaves[0].shape

    @property
    def dtype(self) -> torch.dtype:
        return self.leaves[0].dtype

    def get(self) -> torch.Tensor:
        return torch.stack([leaf.get() for leaf in self.leaves])

    def grad(self) -> Optional[torch.Tensor]:
        grads = [leaf.grad() for leaf in self.leaves]
        return None if any(g is None for g in grads) else torch.stack(grads)

    def set(self, value: torch.Tensor, assign: bool = False) -> None:
        for i, leaf in enumerate(self.leaves):
            leaf.set(value[i], assign)


def flax_leaves(module: nn.Module, prefix: str = "") -> dict:
    """{flax path: Leaf | StackedLeaf} for `module` and everything below it."""
    out: dict = {}
    _collect(module, prefix, out)
    return out


def _collect(module: nn.Module, prefix: str, out: dict) -> None:
    own = getattr(module, "flax_params", None)
    if own is not None:                                   # a primitive twin
        for name, (attr, transposed) in own().items():
            out[prefix + name] = Leaf(module, attr, transposed)
        return
    stack_name = getattr(module, "flax_stack_name", None)
    if stack_name is not None:                            # P.Repeat: layers stacked on axis 0
        layers = [flax_leaves(block) for block in module]
        for path in layers[0]:
            out[f"{prefix}{stack_name}/{path}"] = StackedLeaf([layer[path] for layer in layers])
        return
    for name, param in module._parameters.items():        # raw `self.param(...)`
        if param is not None:
            out[prefix + name] = Leaf(module, name, False)
    for name, child in module._modules.items():
        if child is None:
            continue
        if isinstance(child, nn.ModuleList) and getattr(child, "flax_stack_name", None) is None:
            for i, item in enumerate(child):               # Flax names list items `name_0`, ...
                _collect(item, f"{prefix}{name}_{i}/", out)
        else:
            _collect(child, f"{prefix}{name}/", out)


@dataclasses.dataclass(frozen=True)
class LeafSpec:
    """Shape and numpy dtype of a leaf: what `core.checkpoint` plans a load against."""
    shape: tuple
    dtype: np.dtype


def _param_device(module: nn.Module) -> Optional[torch.device]:
    for param in module.parameters():
        return param.device
    return None


# -- the base class -------------------------------------------------------------------------------

class Module(nn.Module):
    """`torch.nn.Module` plus the Flax-layout view and Hugging Face I/O (see the module doc)."""

    def __call__(self, *args, **kwargs):
        # Canonical code creates arrays without naming a device (`ops.zeros`, `ops.arange`):
        # while this module runs, torch's default device is its parameters' device.
        device = _param_device(self)
        if device is None or device.type == "cpu" or torch.get_default_device() == device:
            return super().__call__(*args, **kwargs)
        with device:
            return super().__call__(*args, **kwargs)

    # -- the Flax view ----------------------------------------------------------------------------
    def flax_leaves(self) -> dict:
        return flax_leaves(self)

    def flax_shapes(self) -> dict[str, tuple]:
        """{flax path: shape}: the canonical module's param tree, flattened with '/'."""
        return {path: leaf.shape for path, leaf in self.flax_leaves().items()}

    def export_flax(self) -> dict[str, np.ndarray]:
        """{flax path: numpy array} in the Flax layout (host copies)."""
        return {path: to_numpy(leaf.get()) for path, leaf in self.flax_leaves().items()}

    def flax_grads(self) -> dict[str, Optional[np.ndarray]]:
        """Gradients after `backward()`, in the Flax layout (None where a leaf has none)."""
        return {path: None if leaf.grad() is None else to_numpy(leaf.grad())
                for path, leaf in self.flax_leaves().items()}

    def load_flax(self, flat: Mapping[str, object], missing_ok=(), assign: bool = False,
                  source: str = "Flax params", consume: bool = False) -> None:
        """Load a flat {flax path: array} (numpy or torch, Flax layout). Strict: every leaf
        must be given (except those in `missing_ok`) with its shape, and nothing else; one
        `KeyMapError` lists every problem and nothing is loaded. `consume` empties `flat` leaf
        by leaf, so a loaded buffer is freed as soon as its parameter holds the data."""
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
            tensor = value if isinstance(value, torch.Tensor) else from_numpy(value)
            leaves[path].set(tensor, assign=assign)
            del value, tensor

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
    def from_config(cls, config: PretrainedConfig, seed: int = 0, dtype=torch.float32,
                    param_dtype=torch.float32, remat: bool = False, module_kwargs: Optional[Mapping] = None):
        """Randomly initialised weights (the family's initializer_range), in eval mode."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config=config, dtype=dtype, param_dtype=param_dtype, remat=remat,
                        **dict(module_kwargs or {}))
        return model.eval()

    @classmethod
    def from_pretrained(cls, folder, dtype=torch.float32, param_dtype=torch.float32, remat: bool = False,
                        init_new_head: bool = False, seed: int = 0, module_kwargs: Optional[Mapping] = None,
                        **config_overrides):
        """Load a Hugging Face folder (config.json + safetensors, sharded or not), as
        `core.PretrainedModel.from_pretrained` does (same options, same strict errors), into
        this class. Returns the module in eval mode with `.config` and `.load_report`."""
        config = loading.read_config(folder)
        if config_overrides:
            config = config.replace(**config_overrides)
        family = registry.family(config.model_type)
        task = cls.head_task(config)
        kwargs = dict(config=config, dtype=dtype, param_dtype=param_dtype, remat=remat, **dict(module_kwargs or {}))
        # Without a new head every weight comes from the folder: build on the meta device (no
        # random init, no second copy) and adopt the loaded buffers as the parameters.
        build_on_meta = not init_new_head
        with torch.random.fork_rng(devices=[]), (torch.device("meta") if build_on_meta else contextlib.nullcontext()):
            torch.manual_seed(seed)
            model = cls(**kwargs)
        abstract = {p: LeafSpec(s, numpy_dtype(param_dtype)) for p, s in model.flax_shapes().items()}
        loaded = loading.load_folder(folder, family, config, task, abstract, init_new_head, put=from_numpy)
        model.load_flax(loaded.flat, missing_ok=loaded.new_head, assign=build_on_meta, source=str(folder),
                        consume=True)
        unloaded = [name for name, param in model.named_parameters() if param.is_meta]
        if unloaded:
            raise RuntimeError(f"{cls.__name__}: parameters outside the Flax view were not loaded: {unloaded}")
        model.load_report = {"dropped": loaded.dropped, "initialised": loaded.new_head}
        if hasattr(model, "init_cache"):
            model.generation_config = GenerationConfig.from_pretrained(folder, config)
        return model.eval()

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

    @torch.no_grad()
    def generate(self, input_ids=None, attention_mask=None, generation_config: Optional[GenerationConfig] = None,
                 seed: Optional[int] = None, streamer=None, tokenizer=None, **kwargs) -> torch.Tensor:
        """`transformers`' `generate` for a causal-LM head (one with `init_cache`): greedy,
        sampling and beam search with the same options as `core`'s `CausalLMModel.generate`;
        returns prompt + new tokens (int64). A seq2seq-LM head (one with `encode`) generates as
        `core`'s `Seq2SeqLMModel.generate`: decoder tokens from decoder_start_token_id.
        The model steps in torch with its KV cache updated
        in place; tokens are chosen by `core.generation.host` (greedy and beam outputs equal
        JAX's and `transformers`').

        Speech models (Whisper: `config.encoder_input == "input_features"`) take `input_features=`
        (or it positionally) and Whisper's options (language, task, ...), as `core`'s model does:
        `core.generation.whisper.generate` with this module as its backend."""
        if not hasattr(self, "init_cache"):
            raise TypeError(f"{type(self).__name__} cannot generate: only causal-LM and seq2seq-LM heads (with a KV "
                            "cache) do")
        device = _param_device(self)
        if hasattr(self, "encode"):
            if type(self).head_task(self.config) != "seq2seq-lm":
                raise TypeError(f"{type(self).__name__} cannot generate: it has no language-model head; load the "
                                "folder with AutoModelForSeq2SeqLM")
            if getattr(self.config, "encoder_input", "input_ids") == "input_features":
                from core.generation import whisper
                features = kwargs.pop("input_features", None) if input_ids is None else input_ids
                was_training = self.training
                self.eval()
                try:
                    tokens = whisper.generate(self.config, self._generation_defaults(), _WhisperBackend(self, device),
                                              input_features=None if features is None else _host(features),
                                              attention_mask=None if attention_mask is None else _host(attention_mask),
                                              generation_config=generation_config,
                                              seed=seed, streamer=streamer, tokenizer=tokenizer, **kwargs)
                finally:
                    self.train(was_training)
                if isinstance(tokens, dict):        # return_segments=True: {"sequences", "segments"}
                    return {**tokens, "sequences": torch.as_tensor(tokens["sequences"])}
                return torch.as_tensor(tokens)
        if input_ids is None:
            raise TypeError("generate() needs input_ids")
        config = self._generation_defaults().merged(generation_config, **kwargs)
        if hasattr(self, "encode"):
            return self._generate_seq2seq(input_ids, attention_mask, config, seed, streamer, tokenizer, device)

        def forward(ids, slot_mask, positions, cache, index):
            as_tensor = lambda a: torch.as_tensor(a, dtype=torch.int64, device=device)   # noqa: E731
            out = self(input_ids=as_tensor(ids), attention_mask=as_tensor(slot_mask),
                       position_ids=as_tensor(positions), cache=cache, cache_index=index, logits_to_keep=1)
            return to_numpy(out.logits[:, -1].float()), out.cache

        def reorder(cache, beam_idx):
            index = torch.as_tensor(beam_idx, dtype=torch.int64, device=device)
            return _tree_map(lambda c: torch.index_select(c, 1, index), cache)

        was_training = self.training
        self.eval()
        try:
            with ops.inplace_updates():
                tokens = host.generate(forward, self.init_cache, reorder, config, _host(input_ids),
                                       None if attention_mask is None else _host(attention_mask),
                                       self.config.vocab_size, getattr(self.config, "max_position_embeddings", None),
                                       getattr(self.config, "max_position_embeddings", None), seed,
                                       streamer, tokenizer)
        finally:
            self.train(was_training)
        return torch.as_tensor(tokens)

    def _generate_seq2seq(self, input_ids, attention_mask, config, seed, streamer, tokenizer, device):
        """Encoder-decoder generate: the encoder runs once on the rows repeated for beams; the
        decoder's first step fills the cross-attention cache; returns decoder tokens starting with
        decoder_start_token_id, as `transformers` does."""
        request, enc_ids, enc_mask = host.prepare_seq2seq(
            config, _host(input_ids), None if attention_mask is None else _host(attention_mask),
            self.config.vocab_size, tokenizer)
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.int64, device=device)   # noqa: E731
        was_training = self.training
        self.eval()
        try:
            encoder_mask = as_tensor(enc_mask)
            expand = enc_ids.shape[0] // request.batch     # encode each source once, repeat for the beams
            encoder_hidden = self.encode(as_tensor(enc_ids[::expand]), as_tensor(enc_mask[::expand])).last_hidden_state
            encoder_hidden = torch.repeat_interleave(encoder_hidden, expand, dim=0)
            tokens = self._run_decoder(request, encoder_hidden, encoder_mask, seed, streamer, device)
        finally:
            self.train(was_training)
        return torch.as_tensor(tokens)

    def _run_decoder(self, request: host.Request, encoder_hidden, encoder_mask, seed, streamer, device) -> np.ndarray:
        """The host decode loop of an encoder-decoder once the encoder has run (`encoder_hidden`
        already has the request's rows): the decoder's first step (the whole prompt, cache index 0)
        fills the cross-attention cache, later steps read it. int64 numpy, starting with the prompt."""
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.int64, device=device)   # noqa: E731
        encoder_length = encoder_hidden.shape[1]

        def init_cache(rows, max_length):
            return self.init_cache(rows, max_length, encoder_length)

        def forward(ids, slot_mask, positions, cache, index):
            out = self.decode(as_tensor(ids), encoder_hidden, encoder_mask, as_tensor(slot_mask), cache, index,
                              index == 0, logits_to_keep=1)
            return to_numpy(out.logits[:, -1].float()), out.cache

        def reorder(cache, beam_idx):
            index = as_tensor(beam_idx)
            return _tree_map(lambda c: torch.index_select(c, 1, index), cache)

        with ops.inplace_updates():
            return host.run(request, forward, init_cache, reorder, seed, streamer)


class _WhisperBackend:
    """`core.generation.whisper.Backend` for a torch Whisper seq2seq-LM head (called under
    `torch.no_grad()`, in eval mode): the port's encoder, one cache-free decoder step (language
    detection), and the host decode loop (`host.prepare_prompted` + `Module._run_decoder`)."""

    def __init__(self, module: Module, device):
        self.module, self.device = module, device

    def encode(self, features: np.ndarray):
        features = torch.as_tensor(np.asarray(features, np.float32), device=self.device)
        return self.module.encode(features).last_hidden_state

    def first_logits(self, start_ids: np.ndarray, encoder_hidden) -> np.ndarray:
        ids = torch.as_tensor(np.asarray(start_ids), dtype=torch.int64, device=self.device)
        return to_numpy(self.module.decode(ids, encoder_hidden).logits[:, -1].float())

    def decode(self, cfg: GenerationConfig, encoder_hidden, prompt: np.ndarray, max_length: int, min_length: int,
               seed, prng_key, streamer, tokenizer) -> np.ndarray:
        if prng_key is not None:
            raise ValueError("prng_key is JAX's; the torch port samples from seed=<int>")
        request = host.prepare_prompted(cfg, prompt, max_length, min_length, tokenizer)
        expand = request.ids.shape[0] // request.batch
        encoder_hidden = torch.repeat_interleave(encoder_hidden, expand, dim=0) if expand > 1 else encoder_hidden
        return self.module._run_decoder(request, encoder_hidden, None, seed, streamer, self.device)


def _host(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _tree_map(fn, tree):
    if isinstance(tree, (tuple, list)):
        return type(tree)(_tree_map(fn, t) for t in tree)
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    return None if tree is None else fn(tree)


def port_module(family: registry.Family):
    """The generated module of `family` in this port (`ports.torch.models.<package>`)."""
    return importlib.import_module(f"{_PORT}.models.{family.modeling.split('.')[2]}")
