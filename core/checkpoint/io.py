"""Read and write the tensor files of a Hugging Face model folder, with numpy only.

Reading is split in two so that a caller can validate a whole checkpoint before loading
any of it: `open_checkpoint` reads only the headers (names, shapes, dtypes, which file
holds what) and checks that the files agree with each other; `TensorSource.get` then
reads one tensor at a time into a fresh numpy array.

This module must import without JAX, PyTorch or TensorFlow. `torch` is imported lazily,
and only to read the legacy `pytorch_model.bin` format.
"""
from __future__ import annotations

import difflib
import json
import os
import pickle
import re
import struct
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

__all__ = [
    "CheckpointError",
    "TensorSource",
    "open_checkpoint",
    "write_checkpoint",
    "parse_size",
    "SAFE_WEIGHTS_NAME",
    "SAFE_WEIGHTS_INDEX_NAME",
    "TORCH_WEIGHTS_NAME",
    "TORCH_WEIGHTS_INDEX_NAME",
]

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
TORCH_WEIGHTS_NAME = "pytorch_model.bin"
TORCH_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"

# Looked for in this order; the first one present wins (the same preference as transformers).
_CANDIDATES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, TORCH_WEIGHTS_NAME, TORCH_WEIGHTS_INDEX_NAME)

# Shard names transformers (and write_checkpoint) use; anything matching this in a folder we
# save into belongs to a save and may be replaced.
_SAFE_SHARD_RE = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")

_REDOWNLOAD = "Re-download or re-save the checkpoint."

# safetensors dtype codes that numpy can hold. numpy has no bfloat16: ml_dtypes provides it
# (importing ml_dtypes also registers the name "bfloat16", which safetensors' numpy loader looks
# up). The F8 codes are left out because safetensors' numpy loader cannot return them.
_SAFETENSORS_DTYPES = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "U16": np.uint16,
    "I16": np.int16,
    "U32": np.uint32,
    "I32": np.int32,
    "U64": np.uint64,
    "I64": np.int64,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "F32": np.float32,
    "F64": np.float64,
    "C64": np.complex64,
}
_WRITABLE_DTYPES = {np.dtype(t) for t in _SAFETENSORS_DTYPES.values()}

# torch dtype (by name, so torch need not be imported here) -> numpy dtype, and whether torch
# can hand it to numpy directly or it must travel as a same-width integer (torch.Tensor.numpy
# refuses bfloat16).
_TORCH_DTYPES = {
    "torch.bool": (np.bool_, None),
    "torch.uint8": (np.uint8, None),
    "torch.int8": (np.int8, None),
    "torch.int16": (np.int16, None),
    "torch.int32": (np.int32, None),
    "torch.int64": (np.int64, None),
    "torch.float16": (np.float16, None),
    "torch.bfloat16": (ml_dtypes.bfloat16, "int16"),
    "torch.float32": (np.float32, None),
    "torch.float64": (np.float64, None),
    "torch.complex64": (np.complex64, None),
}


class CheckpointError(ValueError):
    """A checkpoint folder or file is missing, malformed or inconsistent.

    The message names the file (and tensor, where there is one) and says how to fix it.
    """


# --------------------------------------------------------------------------- reading


class _SafetensorsFile:
    """One .safetensors file: header read on open, tensors read on demand."""

    def __init__(self, path: Path):
        self.path = path
        try:
            # backend="pread" rather than the default "mmap": with mmap every page a read
            # touches stays resident and counts against RSS until the file is closed, so
            # loading a whole model into fresh arrays peaked at 2.0x the file size (measured
            # on BERT-base with scripts/bench/load_memory.py); pread copies straight from
            # the file into the new array and peaks at 1.0x.
            self._handle = safe_open(str(path), framework="numpy", backend="pread")
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path}: {_diagnose_safetensors(path, e)} {_REDOWNLOAD}") from e
        self.specs: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        # offset_keys() is the order of the data on disk, so iterating keys() reads sequentially.
        for key in self._handle.offset_keys():
            view = self._handle.get_slice(key)
            code = view.get_dtype()
            if code not in _SAFETENSORS_DTYPES:
                self.close()
                raise CheckpointError(
                    f"{path}: tensor {key!r} has dtype {code}, which numpy cannot hold "
                    f"(supported: {', '.join(_SAFETENSORS_DTYPES)}). Convert that tensor to a "
                    "supported dtype and re-save the checkpoint."
                )
            self.specs[key] = (tuple(view.get_shape()), np.dtype(_SAFETENSORS_DTYPES[code]))

    def get(self, key: str) -> np.ndarray:
        try:
            return self._handle.get_tensor(key)
        except SafetensorError as e:
            raise CheckpointError(f"{self.path}: reading tensor {key!r} failed: {e}. {_REDOWNLOAD}") from e

    def metadata(self) -> dict[str, str]:
        return dict(self._handle.metadata() or {})

    def close(self) -> None:
        # safe_open has no close(); leaving its context is what releases the file.
        self._handle.__exit__(None, None, None)


def _diagnose_safetensors(path: Path, error: Exception) -> str:
    """Turn safetensors' terse open error into what is actually wrong with the file.

    The format is an 8-byte little-endian header length, that many bytes of JSON, then the
    tensor data; re-reading just that much tells truncation apart from a corrupt header.
    """
    if isinstance(error, OSError):
        return f"cannot be read ({error.strerror or error})."
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size < 8:
            return (
                f"is {size} bytes, too short for a safetensors header; it is truncated or not a "
                "safetensors file."
            )
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > size - 8:
            return (
                f"corrupt header: its length field says {header_len} bytes but only {size - 8} follow; "
                "the file is truncated or not a safetensors file."
            )
        try:
            header = json.loads(f.read(header_len))
            data_end = max(
                (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            return f"corrupt header: it is not valid safetensors JSON ({e})."
    available = size - 8 - header_len
    if data_end > available:
        return (
            f"is truncated: its header describes {data_end} bytes of tensor data but the file holds "
            f"only {available} (an interrupted download or save?)."
        )
    if data_end < available:
        return f"has {available - data_end} bytes after the tensor data its header describes."
    return f"is not a valid safetensors file ({error})."


class _TorchFile:
    """One pytorch_model*.bin file, loaded lazily through torch's mmap."""

    def __init__(self, path: Path):
        self.path = path
        try:
            import torch
        except ImportError as e:
            raise CheckpointError(
                f"{path}: this checkpoint is in PyTorch's pickle format, and reading it needs torch, "
                "which is not installed. Install the `torch` extra (pip install 'rosetta[torch]'), "
                "or convert the checkpoint to safetensors."
            ) from e
        try:
            # weights_only=True: the unpickler accepts only tensors and plain containers, so a
            # malicious file cannot run code. mmap=True: tensors stay on disk until get() copies
            # them, so opening a large file costs no memory.
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except pickle.UnpicklingError as e:
            raise CheckpointError(
                f"{path}: refused to load: it holds Python objects other than tensors, which "
                f"torch.load(weights_only=True) will not unpickle ({_unpickling_reason(e)}). If you "
                "trust its source, load it with torch yourself and re-save the state dict as safetensors."
            ) from e
        except (RuntimeError, OSError, EOFError, ValueError) as e:
            raise CheckpointError(
                f"{path}: torch cannot read it ({str(e).splitlines()[0]}). The file may be truncated "
                "or in torch's legacy (pre-1.6, non-zip) format; re-download it, or re-save it with a "
                "current torch.save, or convert it to safetensors."
            ) from e
        if not isinstance(state, dict):
            raise CheckpointError(
                f"{path}: expected a state dict (a dict of name -> tensor) but found a "
                f"{type(state).__name__}. Re-save the model's state_dict()."
            )
        self._tensors = {}
        self.specs = {}
        for key, tensor in state.items():
            if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
                raise CheckpointError(
                    f"{path}: entry {key!r} is a {type(tensor).__name__}, not a tensor; a weights file "
                    "must be a flat dict of name -> tensor. Re-save the model's state_dict()."
                )
            if str(tensor.dtype) not in _TORCH_DTYPES:
                raise CheckpointError(
                    f"{path}: tensor {key!r} has dtype {tensor.dtype}, which numpy cannot hold "
                    f"(supported: {', '.join(_TORCH_DTYPES)}). Convert it and re-save."
                )
            self._tensors[key] = tensor
            self.specs[key] = (tuple(tensor.shape), np.dtype(_TORCH_DTYPES[str(tensor.dtype)][0]))

    def get(self, key: str) -> np.ndarray:
        import torch

        tensor = self._tensors[key]
        np_dtype, carrier = _TORCH_DTYPES[str(tensor.dtype)]
        if carrier is not None:
            array = tensor.view(getattr(torch, carrier)).numpy().view(np_dtype)
        else:
            array = tensor.numpy()
        # A copy: the tensor's memory is the mmap of the file (and may be a strided view of a
        # storage shared with other tensors); the caller gets its own contiguous array.
        return np.array(array, copy=True, order="C")

    def metadata(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        self._tensors = {}


def _unpickling_reason(error: Exception) -> str:
    """The line of torch's long weights_only error that names the offending global."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "global" in line.lower():
            return line.removeprefix("WeightsUnpickler error: ").split(". Please")[0].rstrip(".")
    return lines[0] if lines else type(error).__name__


class TensorSource:
    """The tensors of a checkpoint folder, from one or more files.

    Names, shapes, dtypes and file locations come from the headers, read when the source
    is opened; `get` reads one tensor's data. Use it as a context manager, or call close().
    """

    def __init__(self, folder: Path, readers: list):
        self.folder = folder
        self.files = [r.path for r in readers]
        self._readers = readers
        self._where = {}  # key -> reader
        for reader in readers:
            for key in reader.specs:
                if key in self._where:
                    raise CheckpointError(
                        f"{folder}: tensor {key!r} is in two files, {self._where[key].path.name} and "
                        f"{reader.path.name}, so which one to use is ambiguous. Remove it from one of "
                        "them (re-save the checkpoint)."
                    )
                self._where[key] = reader
        self._closed = False

    def keys(self) -> list[str]:
        """Every tensor name: files in order, and within a file in the order of its data."""
        return list(self._where)

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def __len__(self) -> int:
        return len(self._where)

    def _reader(self, key: str):
        try:
            return self._where[key]
        except KeyError:
            close = difflib.get_close_matches(key, self._where, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            files = [f.name for f in self.files]
            raise KeyError(f"{self.folder}: no tensor named {key!r} in {files}.{hint}") from None

    def shape(self, key: str) -> tuple[int, ...]:
        return self._reader(key).specs[key][0]

    def dtype(self, key: str) -> np.dtype:
        return self._reader(key).specs[key][1]

    def file_of(self, key: str) -> Path:
        return self._reader(key).path

    def get(self, key: str) -> np.ndarray:
        """Read one tensor into a new numpy array (bfloat16 as ml_dtypes.bfloat16)."""
        reader = self._reader(key)
        if self._closed:  # names, shapes and dtypes stay available; data needs the open files
            raise CheckpointError(f"{self.folder}: the checkpoint is closed; open it again to read {key!r}.")
        return reader.get(key)

    def metadata(self) -> dict[str, str]:
        """The safetensors `__metadata__` of all files, later files overriding earlier ones."""
        merged: dict[str, str] = {}
        for reader in self._readers:
            merged.update(reader.metadata())
        return merged

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for reader in self._readers:
                reader.close()

    def __enter__(self) -> TensorSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TensorSource({str(self.folder)!r}, files={[f.name for f in self.files]}, tensors={len(self)})"


def open_checkpoint(folder: str | os.PathLike) -> TensorSource:
    """Open the weights of a Hugging Face model folder, reading only headers.

    Looks for model.safetensors, then model.safetensors.index.json (shards), then
    pytorch_model.bin and pytorch_model.bin.index.json (these need torch). Raises
    CheckpointError if none is present or the files are inconsistent. For an index, every
    listed tensor must be in its shard; the shards' own headers are the truth about what
    exists, so a tensor a shard holds but the index forgot is still served.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder. Pass the model folder (the one holding config.json).")
    for name in _CANDIDATES:
        path = folder / name
        if path.is_file():
            break
    else:
        raise CheckpointError(
            f"{folder}: no weights found; looked for {', '.join(_CANDIDATES)}. Pass the folder that "
            "holds the model's weight files, or download them into it."
        )

    reader_type = _SafetensorsFile if name.startswith("model.safetensors") else _TorchFile
    if not name.endswith(".index.json"):
        return TensorSource(folder, [reader_type(path)])

    weight_map = _read_index(path)
    readers = []
    try:
        by_file: dict[str, list[str]] = {}
        for key, file_name in weight_map.items():
            by_file.setdefault(file_name, []).append(key)
        # Shard names sort in shard order (model-00001-of-...), which is also write order.
        for file_name in sorted(by_file):
            shard = folder / file_name
            if not shard.is_file():
                raise CheckpointError(
                    f"{path}: lists shard {file_name} (holding e.g. {by_file[file_name][0]!r}) but "
                    f"{shard} does not exist. Download the missing shard, or re-save the checkpoint."
                )
            readers.append(reader_type(shard))
            missing = [k for k in by_file[file_name] if k not in readers[-1].specs]
            if missing:
                raise CheckpointError(
                    f"{path}: maps tensor {missing[0]!r} to {shard}, but that file does not contain it"
                    f"{f' (nor {len(missing) - 1} other listed tensors)' if len(missing) > 1 else ''}. "
                    "The index and its shards come from different saves; re-download or re-save the checkpoint."
                )
        return TensorSource(folder, readers)
    except BaseException:
        for reader in readers:
            reader.close()
        raise


def _read_index(path: Path) -> dict[str, str]:
    """The weight_map of a transformers index file, checked for shape."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: the index is not valid JSON ({e}). {_REDOWNLOAD}") from e
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise CheckpointError(
            f'{path}: the index has no "weight_map" object of tensor name -> shard file name. {_REDOWNLOAD}'
        )
    for key, file_name in weight_map.items():
        # Shards live next to the index; refuse anything that would reach elsewhere.
        if Path(file_name).name != file_name or file_name in ("", ".", ".."):
            raise CheckpointError(
                f"{path}: tensor {key!r} maps to {file_name!r}, which is not a file name in the same "
                f"folder. Fix the index's weight_map. {_REDOWNLOAD}"
            )
    return weight_map


# --------------------------------------------------------------------------- writing


def parse_size(size: int | str) -> int:
    """A byte count from an int or a string like "5GB", with transformers' meaning of units.

    KB/MB/GB/TB are powers of 10 and KiB/MiB/GiB/TiB powers of 2; as in transformers, a
    lowercase final "b" ("5Gb") means bits. A bare number is bytes.
    """
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        return int(size)
    if not isinstance(size, str):
        raise TypeError(f"size must be an int or a string like '5GB', not {type(size).__name__}")
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]i?[Bb])?\s*", size, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"cannot parse size {size!r}; use a number and a unit, e.g. '5GB' or '500MiB'")
    number, unit = match.groups()
    if unit is None:
        return int(float(number))
    power = "KMGT".index(unit[0].upper()) + 1
    scale = 2 ** (10 * power) if unit[1] in "iI" else 10 ** (3 * power)
    value = int(float(number) * scale)
    return value // 8 if unit.endswith("b") and unit[1] not in "iI" else value


def write_checkpoint(
    folder: str | os.PathLike,
    tensors: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]],
    *,
    max_shard_size: int | str = "5GB",
    metadata: dict[str, str] | None = None,
) -> list[Path]:
    """Save tensors as a transformers-loadable safetensors checkpoint in `folder`.

    One `model.safetensors` if everything fits in `max_shard_size`, else shards
    `model-0000i-of-0000N.safetensors` plus `model.safetensors.index.json`. Tensors go to
    shards in the order given (a tensor larger than the limit gets a shard of its own);
    within a file safetensors stores them by alignment then name. `tensors` may be a
    generator: only one shard's tensors are held at a time.

    Files are written under temporary names and renamed into place only once all are
    written, the index last, so a failed save never leaves a folder that looks complete.
    Weight files of an earlier safetensors save in the folder that the new one does not
    replace (e.g. a different sharding) are removed. Returns the files written, the index
    last.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    limit = parse_size(max_shard_size)
    # transformers refuses safetensors files without a "format" entry; "pt" is what it writes.
    header = {"format": "pt", **(metadata or {})}
    for k, v in header.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"safetensors metadata must map str to str; got {k!r}: {v!r}")

    token = uuid.uuid4().hex[:8]
    temp_files: list[Path] = []
    shard_keys: list[list[str]] = []
    try:
        # 1. Every shard to a hidden temporary name; nothing visible changes yet.
        pending: dict[str, np.ndarray] = {}
        pending_bytes = total_bytes = 0
        seen: set[str] = set()

        def flush():
            temp = folder / f".model-{len(temp_files) + 1:05d}.{token}.tmp"
            temp_files.append(temp)
            save_file(pending, str(temp), metadata=header)
            shard_keys.append(list(pending))
            pending.clear()

        for key, value in tensors.items() if isinstance(tensors, Mapping) else tensors:
            if not isinstance(key, str):
                raise TypeError(f"tensor names must be strings, got {key!r}")
            if key in seen:
                raise ValueError(f"tensor {key!r} is given twice")
            seen.add(key)
            # np.asarray accepts JAX arrays; safetensors needs one C-ordered buffer.
            array = np.asarray(value, order="C")
            if array.dtype not in _WRITABLE_DTYPES:
                raise TypeError(
                    f"tensor {key!r} has dtype {array.dtype}, which safetensors cannot store from numpy; "
                    f"use one of {sorted(str(d) for d in _WRITABLE_DTYPES)}"
                )
            if pending and pending_bytes + array.nbytes > limit:
                flush()
                pending_bytes = 0
            pending[key] = array
            pending_bytes += array.nbytes
            total_bytes += array.nbytes
        if pending:
            flush()
        if not shard_keys:
            raise ValueError(f"{folder}: no tensors to write (an empty mapping or an exhausted iterator?)")

        n = len(shard_keys)
        if n == 1:
            names = [SAFE_WEIGHTS_NAME]
        else:
            names = [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
            index = {
                "metadata": {"total_size": total_bytes},
                "weight_map": {k: name for name, keys in zip(names, shard_keys) for k in keys},
            }
            temp_index = folder / f".{SAFE_WEIGHTS_INDEX_NAME}.{token}.tmp"
            temp_files.append(temp_index)
            temp_index.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            names.append(SAFE_WEIGHTS_INDEX_NAME)

        # 2. Swap in the new files. Loaders take model.safetensors over an index, and an
        # index is what makes shards look complete, so: a single file is renamed atomically
        # over the old one; for shards, the old single file and index go first and the new
        # index lands last. A failure part-way leaves no complete-looking mix of two saves.
        if n > 1:
            _remove(folder / SAFE_WEIGHTS_NAME)
            _remove(folder / SAFE_WEIGHTS_INDEX_NAME)
        written = []
        for temp, name in zip(temp_files, names):
            os.replace(temp, folder / name)
            written.append(folder / name)
    finally:
        for temp in temp_files:  # already renamed unless the save failed
            _remove(temp)

    # 3. What is left of an earlier save: its index (now shadowed by model.safetensors) and
    # shards of a different count.
    if n == 1:
        _remove(folder / SAFE_WEIGHTS_INDEX_NAME)
    for path in folder.iterdir():
        if _SAFE_SHARD_RE.match(path.name) and path not in written:
            _remove(path)
    return written


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
