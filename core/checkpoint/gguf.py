"""GGUF (llama.cpp) checkpoints: the config, the tensors and the tokenizer of one `.gguf` file.

    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.Q4_1.gguf")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="model.Q4_1.gguf")

A GGUF file has no config.json, no safetensors and no tokenizer.json: its metadata (llama.cpp's
key names) is the config and the tokenizer, and its tensors are llama.cpp-named and often
block-quantized. `GGUFCheckpoint` reads the file with the `gguf` package, builds the typed config
(`llama` architecture: Rosetta's LLaMA family), and serves the tensors under their Hugging Face
names and layouts — dequantized to float32 (`gguf.quants.dequantize`), with llama.cpp's q/k rotary
row permutation undone exactly as `transformers`' GGUF loader does — so the ordinary strict loader
(`core.checkpoint.loading.load_folder`: one error listing every missing / unexpected / mis-shaped
key) plans and loads them like any other checkpoint. The model runs in float32 (or the requested
param dtype): quantization only changes which values the weights hold, as in `transformers`.

numpy (and the `gguf` package) only: importable without JAX, torch or TF.
"""
from __future__ import annotations

import functools
import os
import pathlib
import re
from typing import Optional

import numpy as np

from core.checkpoint.io import CheckpointError

SUPPORTED_ARCHITECTURES = ("llama",)

# llama.cpp tensor names (within a block) → transformers' LLaMA names.
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK_RE = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)\Z")
_TOP_RE = re.compile(r"(\w+)\.(weight|bias)\Z")

# `tokenizer.ggml.pre` names for which transformers (integrations/gguf, GGUF_PRE_TOKENIZER_SPLITS)
# replaces GPT-2's split regex with another one; every other name splits like GPT-2.
OTHER_SPLIT_PRE_TOKENIZERS = frozenset({
    "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano",
    "dbrx", "smaug-bpe", "tekken", "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "qwen35", "gpt-4o",
    "llama4", "kanana2", "talkie", "minimax-m2"})

# GGUF token types (llama.cpp `llama_token_type`).
_CONTROL, _USER_DEFINED = 3, 4


def _gguf():
    try:
        import gguf
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise ImportError("reading a GGUF file needs the `gguf` package (pip install gguf==0.19.0)") from e
    return gguf


def _supported_types() -> dict:
    """{GGMLQuantizationType: name} of the tensor types `gguf.quants.dequantize` turns into floats."""
    gguf = _gguf()
    from gguf import quants

    kinds = [gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, *quants._type_traits]
    return {kind: kind.name for kind in kinds}


def resolve(folder, gguf_file: Optional[str] = None) -> Optional[pathlib.Path]:
    """The GGUF file `from_pretrained(folder, gguf_file=...)` names (relative to `folder`, or
    absolute), or `folder` itself when it is a `.gguf` file; None for an ordinary model folder."""
    folder = pathlib.Path(folder)
    if gguf_file is None:
        if folder.suffix.lower() == ".gguf" or (folder.is_file() and _has_gguf_magic(folder)):
            path = folder
        else:
            return None
    else:
        path = pathlib.Path(gguf_file)
        if not path.is_absolute():
            path = folder / path
    if not path.is_file():
        raise CheckpointError(f"{path}: GGUF file not found (from_pretrained({str(folder)!r}, gguf_file="
                              f"{gguf_file!r})). Pass the folder holding the file and the file's name.")
    return path


def _stamp(path: pathlib.Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=2)
def _read(path: str, mtime_ns: int, size: int):
    """The parsed file (`gguf.GGUFReader`: metadata parsed, tensors memory-mapped). Parsing a
    large vocabulary takes seconds in pure Python, so the model and its tokenizer loaded from the
    same unchanged file (same path, mtime and size) share one parse."""
    return _gguf().GGUFReader(path, "r")


def _has_gguf_magic(path: pathlib.Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


class GGUFCheckpoint:
    """One GGUF file: metadata on open; tensors dequantized on `get`. Serves tensors like a
    `core.checkpoint.io.TensorSource` (keys / shape / get / close, context manager), under the
    Hugging Face names of the model its metadata describes. Unknown tensors keep their GGUF names,
    so the strict loader reports them as unexpected."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        gguf = _gguf()
        try:
            with open(self.path, "rb") as f:
                magic = f.read(4)
            if magic != b"GGUF":
                raise CheckpointError(f"{self.path}: not a GGUF file (it starts with {magic!r}, not b'GGUF').")
            self._reader = _read(str(self.path.resolve()), *_stamp(self.path))
        except CheckpointError:
            raise
        except Exception as e:  # the reader raises ValueError / IndexError / struct errors on a bad file
            raise CheckpointError(f"{self.path}: not a readable GGUF file ({type(e).__name__}: {e}); "
                                  "it is truncated or corrupt. Re-download it.") from None
        self.architecture = self.metadata("general.architecture")
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            raise CheckpointError(f"{self.path}: GGUF architecture {self.architecture!r} is not supported; "
                                  f"Rosetta loads GGUF files of {list(SUPPORTED_ARCHITECTURES)}.")
        supported = _supported_types()
        bad = [f"{t.name} ({t.tensor_type.name})" for t in self._reader.tensors if t.tensor_type not in supported]
        if bad:
            raise CheckpointError(
                f"{self.path}: tensor types Rosetta cannot dequantize: {', '.join(bad[:8])}"
                f"{f' and {len(bad) - 8} more' if len(bad) > 8 else ''}. Supported: "
                f"{', '.join(sorted(supported.values()))}.")
        self._tensors = {t.name: t for t in self._reader.tensors}
        self._config = None
        self._names = None

    # -- metadata --------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self._reader.fields

    def metadata(self, key: str, default=None):
        """The value of one metadata key (a scalar, a string, or a list for arrays)."""
        field = self._reader.fields.get(key)
        if field is None:
            return default
        return field.contents()

    def _arch(self, key: str, default=None):
        return self.metadata(f"{self.architecture}.{key}", default)

    def _require(self, key: str):
        value = self._arch(key)
        if value is None:
            raise CheckpointError(f"{self.path}: metadata key {self.architecture}.{key} is missing; "
                                  "the file does not describe its model.")
        return value

    @property
    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def config(self, **overrides):
        """The typed config the metadata describes (`LlamaConfig` for `llama`), as `transformers`
        builds it from the same keys; `overrides` change fields (validated)."""
        if self._config is None:
            self._config = self._llama_config()
        return self._config.replace(**overrides) if overrides else self._config

    def _llama_config(self):
        from core.models.llama.config import LlamaConfig

        heads = int(self._require("attention.head_count"))
        hidden = int(self._require("embedding_length"))
        kv_heads = self._arch("attention.head_count_kv", heads)
        if isinstance(kv_heads, list):
            raise CheckpointError(f"{self.path}: per-layer {self.architecture}.attention.head_count_kv "
                                  f"({kv_heads}) is not supported (Rosetta's LLaMA has one KV head count).")
        head_dim = self._arch("attention.key_length", self._arch("rope.dimension_count"))
        vocab = self._arch("vocab_size")
        if vocab is None:
            tokens = self._reader.fields.get("tokenizer.ggml.tokens")
            if tokens is None and "token_embd.weight" in self._tensors:
                vocab = int(self._tensors["token_embd.weight"].shape[-1])
            else:
                vocab = len(tokens.data) if tokens is not None else None
        rope = {"rope_theta": float(self._arch("rope.freq_base", 10000.0)), "rope_type": "default"}
        rope.update(self._rope_scaling())
        values = dict(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=int(self._require("feed_forward_length")),
            num_hidden_layers=int(self._require("block_count")),
            num_attention_heads=heads,
            num_key_value_heads=int(kv_heads),
            max_position_embeddings=int(self._arch("context_length", 2048)),
            rms_norm_eps=float(self._arch("attention.layer_norm_rms_epsilon", 1e-6)),
            head_dim=None if head_dim is None else int(head_dim),
            rope_parameters=rope,
            # llama.cpp drops `output.weight` when the head shares the embedding (transformers' rule).
            tie_word_embeddings="output.weight" not in self._tensors,
            attention_bias="blk.0.attn_q.bias" in self._tensors,
            mlp_bias="blk.0.ffn_gate.bias" in self._tensors,
            bos_token_id=self.metadata("tokenizer.ggml.bos_token_id"),
            eos_token_id=self.metadata("tokenizer.ggml.eos_token_id"),
            pad_token_id=self.metadata("tokenizer.ggml.padding_token_id"),
        )
        values = {k: v for k, v in values.items() if v is not None}
        rotary = self._arch("rope.dimension_count")
        if head_dim is not None and rotary is not None and int(rotary) != int(head_dim):
            raise CheckpointError(f"{self.path}: rope.dimension_count {rotary} differs from the head size "
                                  f"{head_dim} (a partial rotation), which LLaMA does not have.")
        return LlamaConfig(**values)

    def _rope_scaling(self) -> dict:
        """rope_parameters entries for llama.cpp's rope.scaling.* keys (linear, yarn)."""
        kind = self._arch("rope.scaling.type")
        factor = self._arch("rope.scaling.factor")
        if kind is None and self._arch("rope.scale_linear") is not None:     # older files
            kind, factor = "linear", self._arch("rope.scale_linear")
        if kind in (None, "none"):
            return {}
        if kind == "linear":
            return {"rope_type": "linear", "factor": float(factor)}
        if kind == "yarn":
            out = {"rope_type": "yarn", "factor": float(factor)}
            original = self._arch("rope.scaling.original_context_length")
            if original is not None:
                out["original_max_position_embeddings"] = int(original)
            return out
        raise CheckpointError(f"{self.path}: rope scaling type {kind!r} ({self.architecture}.rope.scaling.type) "
                              "is not supported; Rosetta reads 'none', 'linear' and 'yarn' from GGUF.")

    # -- tensors (the TensorSource interface) ------------------------------------------------------
    def _name_map(self) -> dict[str, str]:
        """{Hugging Face name: GGUF name}."""
        if self._names is None:
            names = {}
            for gguf_name in self._tensors:
                names[_hf_name(gguf_name)] = gguf_name
            self._names = names
        return self._names

    def keys(self) -> list[str]:
        return list(self._name_map())

    def __contains__(self, key) -> bool:
        return key in self._name_map()

    def shape(self, key: str) -> tuple[int, ...]:
        """The tensor's shape in numpy/torch order (GGUF lists dimensions fastest-first)."""
        tensor = self._tensors[self._name_map()[key]]
        return tuple(int(d) for d in reversed(tensor.shape.tolist()))

    def get(self, key: str) -> np.ndarray:
        """The tensor as float32 in the Hugging Face layout: dequantized, q/k rows un-permuted."""
        from gguf import quants

        gguf_name = self._name_map()[key]
        tensor = self._tensors[gguf_name]
        try:
            values = quants.dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError as e:
            raise CheckpointError(f"{self.path}: tensor {gguf_name} ({tensor.tensor_type.name}): {e}") from None
        values = np.asarray(values, np.float32).reshape(self.shape(key))
        match = _BLOCK_RE.match(gguf_name)
        if match and match.group(2) in ("attn_q", "attn_k"):
            config = self.config()
            heads = config.num_attention_heads if match.group(2) == "attn_q" else config.kv_heads
            values = unpermute_rotary(values, heads)
        return values

    def close(self) -> None:
        pass

    def __enter__(self) -> "GGUFCheckpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- tokenizer ----------------------------------------------------------------------------------
    def tokenizer(self, name_or_path: str = "", **overrides):
        """The tokenizer the metadata describes; see `build_tokenizer`."""
        return build_tokenizer(self, name_or_path, **overrides)


def _hf_name(gguf_name: str) -> str:
    match = _BLOCK_RE.match(gguf_name)
    if match:
        layer, part, kind = match.groups()
        if part in _BLOCK_NAMES:
            return f"model.layers.{layer}.{_BLOCK_NAMES[part]}.{kind}"
        return gguf_name
    match = _TOP_RE.match(gguf_name)
    if match and match.group(1) in _TOP_NAMES:
        return f"{_TOP_NAMES[match.group(1)]}.{match.group(2)}"
    return gguf_name


def permute_rotary(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's conversion of q/k projection rows (convert_hf_to_gguf.py `LlamaModel.permute`):
    within each head, the rotate-half layout (first half, second half) becomes interleaved pairs."""
    dim = weights.shape[0] // heads // 2
    return np.reshape(np.swapaxes(np.reshape(weights, (heads, 2, dim) + weights.shape[1:]), 1, 2), weights.shape)


def unpermute_rotary(weights: np.ndarray, heads: int) -> np.ndarray:
    """The inverse of `permute_rotary` (what transformers' `LlamaTensorProcessor` does)."""
    dim = weights.shape[0] // heads // 2
    return np.reshape(np.swapaxes(np.reshape(weights, (heads, dim, 2) + weights.shape[1:]), 1, 2), weights.shape)


def open_gguf(folder, gguf_file: Optional[str] = None) -> GGUFCheckpoint:
    path = resolve(folder, gguf_file)
    if path is None:
        raise CheckpointError(f"{folder}: not a GGUF file; pass gguf_file=... to name one in the folder.")
    return GGUFCheckpoint(path)


# -- tokenizer --------------------------------------------------------------------------------------

def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte ↔ printable-character table (byte-level BPE vocabularies are spelled in it)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def build_tokenizer(checkpoint: GGUFCheckpoint, name_or_path: str = "", **overrides):
    """A Rosetta tokenizer from the GGUF tokenizer metadata, as `transformers` converts it
    (`integrations/gguf`: `byte_level_tokenizer` + `add_gguf_special_tokens`): for
    `tokenizer.ggml.model == "gpt2"` a byte-level BPE (tokens, merges; tokens outside the byte
    alphabet respelled in it), control tokens as special added tokens, user-defined ones as plain
    added tokens; bos/eos/unk/pad from their ids; `add_bos_token`/`add_eos_token`; the chat template."""
    import tokenizers
    from tokenizers import decoders, pre_tokenizers
    from tokenizers.models import BPE

    from core.tokenization.settings import SPECIAL_TOKEN_NAMES, TokenizerSettings
    from core.tokenization.tokenizers_backend import TokenizersTokenizer

    path = checkpoint.path
    model = checkpoint.metadata("tokenizer.ggml.model")
    if model != "gpt2":
        raise CheckpointError(f"{path}: GGUF tokenizer model {model!r} (tokenizer.ggml.model) is not supported; "
                              "Rosetta builds byte-level BPE ('gpt2') tokenizers from GGUF.")
    pre = checkpoint.metadata("tokenizer.ggml.pre")
    if pre in OTHER_SPLIT_PRE_TOKENIZERS:
        raise CheckpointError(f"{path}: GGUF pre-tokenizer {pre!r} (tokenizer.ggml.pre) splits text with its own "
                              "regex, which Rosetta has not ported; supported are those that split like GPT-2 "
                              "(e.g. default, gpt2, smollm, starcoder).")
    tokens = checkpoint.metadata("tokenizer.ggml.tokens")
    merges = checkpoint.metadata("tokenizer.ggml.merges")
    if tokens is None or merges is None:
        raise CheckpointError(f"{path}: the file has no tokenizer.ggml.tokens / tokenizer.ggml.merges.")
    types = checkpoint.metadata("tokenizer.ggml.token_type") or [1] * len(tokens)
    spelling = _bytes_to_unicode()
    alphabet = set(spelling.values())
    vocab = {}
    for index, token in enumerate(tokens):
        if not set(token) <= alphabet:
            token = "".join(spelling[b] for b in token.encode("utf-8"))
        vocab[token] = index
    backend = tokenizers.Tokenizer(BPE(vocab, [tuple(m.split(" ")) for m in merges], continuing_subword_prefix="",
                                       end_of_word_suffix="", fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    # Control tokens spelled outside the byte alphabet are llama.cpp mislabels: transformers skips them.
    control = [t for t, kind in zip(tokens, types) if kind == _CONTROL and set(t) <= alphabet]
    backend.add_special_tokens([tokenizers.AddedToken(t, normalized=False, special=True) for t in control])
    user = [t for t, kind in zip(tokens, types) if kind == _USER_DEFINED and t in vocab]
    if user:
        backend.add_tokens([tokenizers.AddedToken(t, normalized=False, special=False) for t in user])

    special = dict.fromkeys(SPECIAL_TOKEN_NAMES)
    for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                      ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")):
        index = checkpoint.metadata(f"tokenizer.ggml.{key}")
        if index is not None:
            special[name] = tokens[index]
    config = {"chat_template": checkpoint.metadata("tokenizer.chat_template")}
    for key in ("add_bos_token", "add_eos_token"):
        value = checkpoint.metadata(f"tokenizer.ggml.{key}")
        if value is not None:
            config[key] = bool(value)
    config = {k: v for k, v in config.items() if v is not None}
    config.update(overrides)
    for name in SPECIAL_TOKEN_NAMES:
        if name in overrides:
            special[name] = overrides[name]
    named = {t for t in special.values() if t is not None}
    settings = TokenizerSettings(
        name_or_path=os.fspath(name_or_path) if name_or_path else str(path),
        special_tokens=special,
        extra_special_tokens=[t for t in control if t not in named],
        padding_side=config.get("padding_side", "right"),
        truncation_side=config.get("truncation_side", "right"),
        model_max_length=config.get("model_max_length"),
        config=config,
    )
    tokenizer = TokenizersTokenizer(backend, settings)
    tokenizer.chat_template = config.get("chat_template")
    return tokenizer
