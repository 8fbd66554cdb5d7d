"""The measurement of load_memory.py (`_measure`), for `transformers.BertModel.from_pretrained`:
peak-RSS growth over the RSS after imports, as a ratio to the weight files' size.

transformers 5 leaves the weights mmap-backed and unread after from_pretrained, so the ratio is
taken after reading every weight once (as the first forward would); the ratio right after
from_pretrained is reported too (`ratio_before_first_use`).

    python -m scripts.bench.load_memory_transformers FOLDER     # prints one JSON line

Run it in a fresh process started by a small parent (see load_memory.py and spawner.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from scripts.bench.load_memory import _peak_rss


def measure(folder: str) -> dict:
    import torch
    import transformers

    model_class = transformers.BertModel          # resolve the lazy import before the baseline
    (torch.zeros(1) + 1).sum()                    # torch's own start-up is not load cost
    files = sorted(p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin"))
    baseline = _peak_rss()
    model = model_class.from_pretrained(folder, dtype=torch.float32)
    peak_lazy = _peak_rss()
    # The weights are mmap-backed and unread until first use: read each once, as a forward would.
    with torch.inference_mode():
        [p.sum() for p in model.parameters()]
    peak = _peak_rss()
    state = model.state_dict()
    file_bytes = sum(f.stat().st_size for f in files)
    return {
        "mode": "transformers",
        "folder": str(folder),
        "files": [f.name for f in files],
        "file_bytes": file_bytes,
        "tensors": len(state),
        "tensor_bytes": sum(t.numel() * t.element_size() for t in state.values()),
        "baseline_rss": baseline,
        "peak_rss": peak,
        "ratio": (peak - baseline) / file_bytes,
        "peak_rss_before_first_use": peak_lazy,
        "ratio_before_first_use": (peak_lazy - baseline) / file_bytes,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
