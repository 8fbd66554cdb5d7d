"""Tests for core/checkpoint/io.py: safetensors / pytorch_model.bin folders, numpy only."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors import TensorSpec, serialize_file
from safetensors.numpy import save_file

from core.checkpoint.io import (
    CheckpointError,
    open_checkpoint,
    parse_size,
    write_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]


def _all_dtypes() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    floats = rng.standard_normal((3, 5))
    return {
        "f32": floats.astype(np.float32),
        "f64": floats,
        "f16": floats.astype(np.float16),
        "bf16": floats.astype(ml_dtypes.bfloat16),
        "i8": rng.integers(-128, 127, (4,), dtype=np.int8),
        "i16": rng.integers(-1000, 1000, (2, 2), dtype=np.int16),
        "i32": rng.integers(-(2**31), 2**31 - 1, (7,), dtype=np.int32),
        "i64": rng.integers(-(2**62), 2**62, (2, 3), dtype=np.int64),
        "u8": rng.integers(0, 255, (9,), dtype=np.uint8),
        "u16": rng.integers(0, 2**16 - 1, (3,), dtype=np.uint16),
        "u32": rng.integers(0, 2**32 - 1, (3,), dtype=np.uint32),
        "u64": rng.integers(0, 2**63, (3,), dtype=np.uint64),
        "bool": rng.random((2, 4)) > 0.5,
        "c64": (floats + 1j * floats).astype(np.complex64),
        "scalar": np.array(1.25, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "transposed": floats.T,  # not C-contiguous: must be written in its logical order
    }


def _assert_identical(actual: np.ndarray, expected: np.ndarray, key: str = "") -> None:
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, key
    assert actual.shape == expected.shape, key
    assert actual.tobytes() == np.ascontiguousarray(expected).tobytes(), key


def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


# --------------------------------------------------------------------------- round trips


def test_imports_without_frameworks():
    code = (
        "import sys, core.checkpoint.io;"
        "loaded = [m for m in ('jax', 'flax', 'torch', 'tensorflow') if m in sys.modules];"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_round_trip_single_file_all_dtypes(tmp_path):
    tensors = _all_dtypes()
    written = write_checkpoint(tmp_path, tensors, metadata={"source": "test"})
    assert written == [tmp_path / "model.safetensors"]
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]  # no temporaries left
    with open_checkpoint(tmp_path) as src:
        assert src.files == written
        assert sorted(src.keys()) == sorted(tensors)
        assert src.metadata() == {"format": "pt", "source": "test"}
        for key, expected in tensors.items():
            assert src.shape(key) == expected.shape
            assert src.dtype(key) == expected.dtype
            assert src.file_of(key) == written[0]
            got = src.get(key)
            _assert_identical(got, expected, key)
            assert got.flags.writeable and got.flags.c_contiguous
    assert src.dtype("bf16") == np.dtype(ml_dtypes.bfloat16)  # header facts outlive close()


def test_round_trip_sharded(tmp_path):
    tensors = _all_dtypes()
    limit = 100
    written = write_checkpoint(tmp_path, tensors, max_shard_size=limit)
    *shards, index_path = written
    n = len(shards)
    assert n > 2
    assert [p.name for p in shards] == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    assert index_path.name == "model.safetensors.index.json"
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in written)

    index = json.loads(index_path.read_text())
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in tensors.values())
    assert set(index["weight_map"]) == set(tensors)
    for shard in shards:  # a shard exceeds the limit only when one tensor alone does
        sizes = [np.asarray(tensors[k]).nbytes for k, f in index["weight_map"].items() if f == shard.name]
        assert sum(sizes) <= limit or len(sizes) == 1

    with open_checkpoint(tmp_path) as src:
        assert src.files == shards
        assert sorted(src.keys()) == sorted(tensors)
        assert src.metadata() == {"format": "pt"}
        for key, expected in tensors.items():
            assert src.file_of(key).name == index["weight_map"][key]
            _assert_identical(src.get(key), expected, key)


def test_key_order(tmp_path):
    """Shards are filled in the order given; keys() lists files in order, each in data order."""
    names = [f"layer.{i}.{p}" for i in (3, 0, 2, 1) for p in ("w", "b")]
    tensors = [(name, np.full((4,), i, np.float32)) for i, name in enumerate(names)]
    write_checkpoint(tmp_path, iter(tensors), max_shard_size=40)  # a generator works too
    with open_checkpoint(tmp_path) as src:
        shard_of = [src.files.index(src.file_of(name)) for name in names]
        assert shard_of == sorted(shard_of) and shard_of[-1] > 0
        expected = []
        for path in src.files:
            header = _header(path)
            header.pop("__metadata__")
            expected += sorted(header, key=lambda k: header[k]["data_offsets"][0])
        assert src.keys() == expected
        assert open_checkpoint(tmp_path).keys() == src.keys()  # deterministic


def test_tensor_larger_than_shard_limit_gets_own_shard(tmp_path):
    tensors = {"small": np.zeros(2, np.float32), "big": np.zeros(100, np.float32), "tail": np.zeros(2, np.float32)}
    write_checkpoint(tmp_path, tensors, max_shard_size=20)
    with open_checkpoint(tmp_path) as src:
        assert [sorted(k for k in src.keys() if src.file_of(k) == f) for f in src.files] == [
            ["small"], ["big"], ["tail"]
        ]


def test_resave_removes_stale_weight_files(tmp_path):
    tensors = {f"t{i}": np.full((10,), i, np.float32) for i in range(6)}
    (tmp_path / "config.json").write_text("{}")
    write_checkpoint(tmp_path, tensors, max_shard_size=40)  # 6 shards
    write_checkpoint(tmp_path, tensors, max_shard_size=80)  # 3 shards
    assert sorted(os.listdir(tmp_path)) == [
        "config.json",
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
        "model.safetensors.index.json",
    ]
    write_checkpoint(tmp_path, tensors)  # one file
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]
    write_checkpoint(tmp_path, tensors, max_shard_size=120)  # sharded again: the single file must go
    assert "model.safetensors" not in os.listdir(tmp_path)
    with open_checkpoint(tmp_path) as src:
        assert len(src.files) == 2
        for key, expected in tensors.items():
            _assert_identical(src.get(key), expected, key)


def test_failed_save_leaves_previous_save_untouched(tmp_path):
    old = {"a": np.ones(10, np.float32), "b": np.zeros(10, np.float32)}
    write_checkpoint(tmp_path, old, max_shard_size=40)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing():
        yield "a", np.full(10, 7, np.float32)
        yield "b", np.full(10, 8, np.float32)  # this one fills shard 1 ...
        raise RuntimeError("disk full")  # ... and the save dies before it finishes

    with pytest.raises(RuntimeError, match="disk full"):
        write_checkpoint(tmp_path, failing(), max_shard_size=40)
    with pytest.raises(TypeError, match="'bad'"):  # float8 cannot be stored from numpy
        write_checkpoint(tmp_path, {"a": old["a"], "bad": np.zeros(2, ml_dtypes.float8_e4m3fn)}, max_shard_size=1)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="given twice"):
        write_checkpoint(tmp_path, [("a", np.zeros(1)), ("a", np.zeros(1))])
    with pytest.raises(ValueError, match="no tensors"):
        write_checkpoint(tmp_path, {})
    with pytest.raises(TypeError, match="str to str"):
        write_checkpoint(tmp_path, {"a": np.zeros(1)}, metadata={"step": 3})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "size, expected",
    [
        (123, 123),
        ("5GB", 5 * 10**9),
        ("5GiB", 5 * 2**30),
        ("20KB", 20_000),
        ("20KiB", 20 * 1024),
        ("10MB", 10**7),
        ("3MiB", 3 * 2**20),
        ("1TB", 10**12),
        ("8Gb", 10**9),  # transformers: a lowercase final b means bits
        ("0.5MB", 500_000),
        ("1000", 1000),
    ],
)
def test_parse_size(size, expected):
    assert parse_size(size) == expected


def test_parse_size_rejects_garbage():
    with pytest.raises(ValueError, match="5GB"):
        parse_size("five gigs")


# --------------------------------------------------------------------------- transformers interop


def _torch_to_numpy(tensor) -> np.ndarray:
    import torch

    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


@pytest.fixture(scope="module")
def tiny_bert():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=99
    )
    return transformers.BertModel(config).eval()


def _assert_matches_state_dict(src, state_dict):
    assert sorted(src.keys()) == sorted(state_dict)
    for key, tensor in state_dict.items():
        _assert_identical(src.get(key), _torch_to_numpy(tensor), key)


@pytest.mark.parametrize("max_shard_size", ["20KB", None])
def test_reads_folder_saved_by_transformers(tmp_path, tiny_bert, max_shard_size):
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    tiny_bert.save_pretrained(tmp_path, **kwargs)
    with open_checkpoint(tmp_path) as src:
        if max_shard_size:
            assert len(src.files) > 1
            weight_map = json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"]
            assert {k: src.file_of(k).name for k in src.keys()} == weight_map
        else:
            assert [f.name for f in src.files] == ["model.safetensors"]
        assert src.metadata()["format"] == "pt"
        _assert_matches_state_dict(src, tiny_bert.state_dict())


def test_reads_bf16_folder_saved_by_transformers(tmp_path, tiny_bert):
    import copy

    import torch

    model = copy.deepcopy(tiny_bert).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    with open_checkpoint(tmp_path) as src:
        assert all(src.dtype(k) == ml_dtypes.bfloat16 for k in src.keys())
        _assert_matches_state_dict(src, model.state_dict())


def test_reads_pytorch_model_bin(tmp_path, tiny_bert):
    # transformers 5 always writes safetensors (safe_serialization=False is ignored), so the
    # legacy file is made the way old transformers made it: torch.save(state_dict).
    import torch

    state_dict = tiny_bert.state_dict()
    torch.save(state_dict, tmp_path / "pytorch_model.bin")
    with open_checkpoint(tmp_path) as src:
        assert [f.name for f in src.files] == ["pytorch_model.bin"]
        assert src.metadata() == {}
        assert src.shape("embeddings.word_embeddings.weight") == (99, 32)
        _assert_matches_state_dict(src, state_dict)


def test_reads_sharded_pytorch_model_bin_with_bf16_and_views(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    shard1 = {"w": base, "w_col": base[:, 1]}  # a strided view sharing w's storage
    shard2 = {"h": torch.randn(5).to(torch.bfloat16), "mask": torch.tensor([True, False])}
    names = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    torch.save(shard1, tmp_path / names[0])
    torch.save(shard2, tmp_path / names[1])
    weight_map = {k: names[0] for k in shard1} | {k: names[1] for k in shard2}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with open_checkpoint(tmp_path) as src:
        assert [f.name for f in src.files] == names
        _assert_matches_state_dict(src, shard1 | shard2)
        assert src.dtype("h") == ml_dtypes.bfloat16


def test_safetensors_preferred_over_bin(tmp_path, tiny_bert):
    import torch

    tiny_bert.save_pretrained(tmp_path)
    torch.save({"other": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    with open_checkpoint(tmp_path) as src:
        assert [f.name for f in src.files] == ["model.safetensors"]


@pytest.mark.parametrize("max_shard_size", ["20KB", "5GB"])
def test_transformers_loads_what_rosetta_writes(tmp_path, tiny_bert, max_shard_size):
    import torch
    import transformers

    state_dict = tiny_bert.state_dict()
    tiny_bert.config.save_pretrained(tmp_path)
    written = write_checkpoint(
        tmp_path, ((k, _torch_to_numpy(v)) for k, v in state_dict.items()), max_shard_size=max_shard_size
    )
    assert (len(written) > 1) == (max_shard_size == "20KB")
    loaded, info = transformers.BertModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    loaded_state = loaded.state_dict()
    assert sorted(loaded_state) == sorted(state_dict)
    for key, tensor in state_dict.items():
        assert torch.equal(loaded_state[key], tensor), key


# --------------------------------------------------------------------------- errors


def _good_file(path: Path) -> Path:
    save_file({"a": np.arange(100, dtype=np.float32), "b": np.ones(10, np.int64)}, str(path))
    return path


def test_error_nothing_found(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError) as e:
        open_checkpoint(tmp_path)
    message = str(e.value)
    assert str(tmp_path) in message
    looked_for = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]
    for name in looked_for:
        assert name in message


def test_error_not_a_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not a folder"):
        open_checkpoint(tmp_path / "nope")


def test_error_truncated_file(tmp_path):
    path = _good_file(tmp_path / "model.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[:-50])
    with pytest.raises(CheckpointError) as e:
        open_checkpoint(tmp_path)
    assert str(path) in str(e.value)
    assert "truncated" in str(e.value) and "Re-download" in str(e.value)


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (lambda d, n: d[:8] + b"{" + b"x" * (n - 1) + d[8 + n :], "not valid safetensors JSON"),
        (lambda d, n: struct.pack("<Q", len(d)) + d[8:], "length field"),
        (lambda d, n: struct.pack("<Q", 10**12) + d[8:], "length field"),
        (lambda d, n: d[:5], "too short"),
    ],
    ids=["bad-json", "length-past-end", "huge-length", "stub"],
)
def test_error_corrupt_header(tmp_path, corrupt, expected):
    path = _good_file(tmp_path / "model.safetensors")
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    path.write_bytes(corrupt(data, n))
    with pytest.raises(CheckpointError) as e:
        open_checkpoint(tmp_path)
    assert str(path) in str(e.value)
    assert expected in str(e.value)


def _sharded(tmp_path) -> Path:
    write_checkpoint(tmp_path, {"a": np.zeros(10, np.float32), "b": np.ones(10, np.float32)}, max_shard_size=40)
    return tmp_path / "model.safetensors.index.json"


def test_error_missing_shard(tmp_path):
    index = _sharded(tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError) as e:
        open_checkpoint(tmp_path)
    message = str(e.value)
    assert str(index) in message and "model-00002-of-00002.safetensors" in message
    assert "'b'" in message and "does not exist" in message


def test_error_index_key_absent_from_shard(tmp_path):
    index_path = _sharded(tmp_path)
    index = json.loads(index_path.read_text())
    index["weight_map"]["ghost.weight"] = "model-00001-of-00002.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError) as e:
        open_checkpoint(tmp_path)
    message = str(e.value)
    assert str(index_path) in message and "'ghost.weight'" in message
    assert "model-00001-of-00002.safetensors" in message and "does not contain" in message


def test_error_invalid_index_json(tmp_path):
    index_path = _sharded(tmp_path)
    index_path.write_text('{"weight_map": {"a": ')
    with pytest.raises(CheckpointError) as e:
        open_checkpoint(tmp_path)
    assert str(index_path) in str(e.value) and "not valid JSON" in str(e.value)


def test_error_index_without_weight_map(tmp_path):
    index_path = _sharded(tmp_path)
    index_path.write_text('{"metadata": {}}')
    with pytest.raises(CheckpointError, match="weight_map") as e:
        open_checkpoint(tmp_path)
    assert str(index_path) in str(e.value)


def test_error_index_points_outside_folder(tmp_path):
    index_path = _sharded(tmp_path)
    index_path.write_text(json.dumps({"weight_map": {"a": "../elsewhere.safetensors"}}))
    with pytest.raises(CheckpointError, match="'a'.*not a file name in the same folder"):
        open_checkpoint(tmp_path)


def test_error_duplicate_key_across_shards(tmp_path):
    save_file({"x": np.zeros(2, np.float32), "y": np.zeros(2, np.float32)}, str(tmp_path / "s1.safetensors"))
    save_file({"x": np.ones(2, np.float32), "z": np.zeros(2, np.float32)}, str(tmp_path / "s2.safetensors"))
    weight_map = {"x": "s1.safetensors", "y": "s1.safetensors", "z": "s2.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError) as e:
        open_checkpoint(tmp_path)
    message = str(e.value)
    assert "'x'" in message and "s1.safetensors" in message and "s2.safetensors" in message


def test_error_unsupported_dtype(tmp_path):
    array = np.zeros(4, ml_dtypes.float8_e4m3fn)
    # numpy-side writers refuse float8, so build the file with the raw serializer.
    spec = TensorSpec(dtype=array.dtype.name, shape=[4], data_ptr=array.ctypes.data, data_len=array.nbytes)
    serialize_file({"fp8.weight": spec}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as e:
        open_checkpoint(tmp_path)
    assert "model.safetensors" in str(e.value) and "'fp8.weight'" in str(e.value) and "F8_E4M3" in str(e.value)


def test_error_unknown_key_and_closed_source(tmp_path):
    write_checkpoint(tmp_path, {"encoder.weight": np.zeros(2, np.float32)})
    src = open_checkpoint(tmp_path)
    with pytest.raises(KeyError, match="encoder.weight"):  # suggests the near miss
        src.get("encoder.weights")
    src.close()
    with pytest.raises(CheckpointError, match="closed"):
        src.get("encoder.weight")


def test_error_bin_without_torch(tmp_path, monkeypatch):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(CheckpointError) as e:
        open_checkpoint(tmp_path)
    message = str(e.value)
    assert "pytorch_model.bin" in message and "`torch` extra" in message and "safetensors" in message


_EXECUTED = []


def _record_execution():
    _EXECUTED.append(True)
    return 0


class _Payload:
    """Unpickling this would call _record_execution: the shape of a code-execution exploit."""

    def __reduce__(self):
        return (_record_execution, ())


class _NotATensor:
    def __init__(self):
        self.weights = [1.0, 2.0]


@pytest.mark.parametrize("obj", [{"w": _Payload()}, _NotATensor()], ids=["reduce-payload", "plain-object"])
def test_error_bin_with_arbitrary_object_is_refused(tmp_path, obj):
    torch = pytest.importorskip("torch")
    torch.save(obj, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as e:
        open_checkpoint(tmp_path)
    assert "pytorch_model.bin" in str(e.value) and "refused" in str(e.value)
    assert not _EXECUTED


def test_error_bin_with_non_tensor_entry(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(2), "step": 3}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: entry 'step' is a int"):
        open_checkpoint(tmp_path)


def test_error_bin_truncated_or_legacy(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="pytorch_model.bin: torch cannot read it.*truncated"):
        open_checkpoint(tmp_path)
    torch.save({"w": torch.zeros(100)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="pytorch_model.bin: torch cannot read it.*legacy"):
        open_checkpoint(tmp_path)


# --------------------------------------------------------------------------- benchmark script


def test_load_memory_script_runs_on_tiny_folder(tmp_path):
    write_checkpoint(tmp_path, {"w": np.ones((64, 64), np.float32)})
    result = subprocess.run(
        [sys.executable, "scripts/bench/load_memory.py", "--folder", str(tmp_path), "--modes", "reader"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "ratio to file size:" in result.stdout
