"""Peak memory of loading a checkpoint folder: the raw reader and the whole model load.

    python scripts/bench/load_memory.py                 # a random BERT-base folder (needs torch, transformers)
    python scripts/bench/load_memory.py --folder DIR    # an existing model folder

Two measurements, each in a new process: `reader` reads every tensor into a dict of fresh
numpy arrays with `open_checkpoint`; `model` runs `AutoModel.from_pretrained` (key-map planning,
streaming, device arrays on the CPU backend). Each prints the growth of peak RSS (ru_maxrss)
over the RSS after imports, as a ratio to the size of the weight files. Ideal is 1.0 (the arrays themselves); a reader whose mmap'd pages stay resident
shows ~2.0.

Each step runs in its own subprocess, and this parent process stays small, because Linux
carries a process's peak RSS across fork+exec into the child's ru_maxrss: a child of a
parent that had built a 440 MB model would start with that peak as its "baseline".
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _build(folder: str, max_shard_size: str) -> None:
    """Save a randomly initialised BERT-base (110M parameters) with transformers."""
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig())
    model.save_pretrained(folder, max_shard_size=max_shard_size)


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _measure(folder: str, mode: str) -> None:
    """Load the folder and print the peak-RSS growth as JSON; run in a fresh process."""
    sys.path.insert(0, str(REPO))
    from core.checkpoint.io import TORCH_WEIGHTS_INDEX_NAME, TORCH_WEIGHTS_NAME, open_checkpoint

    path = Path(folder)
    if any((path / name).exists() for name in (TORCH_WEIGHTS_NAME, TORCH_WEIGHTS_INDEX_NAME)):
        import torch  # noqa: F401  (imported before the baseline so it is not counted as load cost)
    if mode == "model":
        import jax
        import jax.numpy as jnp
        from core.auto import AutoModel

        jnp.zeros(1).block_until_ready()       # the backend's own start-up is not load cost

    with open_checkpoint(path) as source:
        files = source.files
    baseline = _peak_rss()
    if mode == "model":
        model = AutoModel.from_pretrained(path)
        jax.block_until_ready(model.params)
        tensors = {p: a for p, a in jax.tree_util.tree_flatten_with_path(model.params)[0]}
    else:
        with open_checkpoint(path) as source:
            tensors = {key: source.get(key) for key in source.keys()}
    peak = _peak_rss()
    file_bytes = sum(f.stat().st_size for f in files)
    print(json.dumps({
        "mode": mode,
        "folder": str(path),
        "files": [f.name for f in files],
        "file_bytes": file_bytes,
        "tensors": len(tensors),
        "tensor_bytes": sum(a.nbytes for a in tensors.values()),
        "baseline_rss": baseline,
        "peak_rss": peak,
        "ratio": (peak - baseline) / file_bytes,
    }))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", help="model folder to load (default: build a random BERT-base in a temp dir)")
    parser.add_argument("--max-shard-size", default="5GB", help="sharding of the built folder (default 5GB: one file)")
    parser.add_argument("--max-ratio", type=float, help="exit with status 1 if a ratio exceeds this")
    parser.add_argument("--modes", default="reader,model", help="comma-separated: reader, model")
    parser.add_argument("--_build", help=argparse.SUPPRESS)
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    parser.add_argument("--_mode", default="reader", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._build:
        _build(args._build, args.max_shard_size)
        return 0
    if args._measure:
        _measure(args._measure, args._mode)
        return 0

    with tempfile.TemporaryDirectory(prefix="rosetta-load-memory-") as temp:
        folder = args.folder
        if folder is None:
            folder = temp
            print(f"building a random BERT-base folder in {folder} ...", flush=True)
            subprocess.run(
                [sys.executable, __file__, "--_build", folder, "--max-shard-size", args.max_shard_size], check=True
            )
        results = []
        for mode in args.modes.split(","):
            out = subprocess.run([sys.executable, __file__, "--_measure", folder, "--_mode", mode],
                                 check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))

    mb = 1e6
    failed = False
    for result in results:
        print(f"[{result['mode']}] folder: {result['folder']} ({', '.join(result['files'])})")
        print(f"  weight files:       {result['file_bytes'] / mb:.1f} MB, {result['tensors']} tensors "
              f"({result['tensor_bytes'] / mb:.1f} MB of data)")
        print(f"  peak RSS growth:    {(result['peak_rss'] - result['baseline_rss']) / mb:.1f} MB "
              f"(baseline after imports {result['baseline_rss'] / mb:.1f} MB)")
        print(f"  ratio to file size: {result['ratio']:.3f}")
        if args.max_ratio is not None and result["ratio"] > args.max_ratio:
            print(f"  FAIL: ratio {result['ratio']:.3f} > {args.max_ratio}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
