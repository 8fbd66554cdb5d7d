"""Loading and saving a Hugging Face model folder, independent of the framework.

The steps `from_pretrained` / `save_pretrained` share between the JAX model (`core.modeling`)
and the generated ports (`ports.torch`, `ports.tf`): read the typed config, match checkpoint
names to the model's nesting, plan the load strictly against the model's Flax-layout leaves
(one `KeyMapError` listing every missing / unexpected / mis-shaped key), stream the tensors,
and write a folder `transformers` loads. numpy only: importable without JAX, torch or TF.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Callable, Mapping

import numpy as np

from core import registry
from core.checkpoint import io as ckpt_io
from core.checkpoint import keymap as km
from core.configuration import ConfigError, PretrainedConfig


def read_config(folder) -> PretrainedConfig:
    """The typed config of a Hugging Face folder, by its `model_type`."""
    path = pathlib.Path(folder) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{path}: not found; a Hugging Face model folder needs a config.json")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or "model_type" not in data:
        raise ConfigError(f"{path}: has no 'model_type' key; cannot tell which model family it is")
    return registry.family(data["model_type"]).config_class().from_dict(data)


@dataclasses.dataclass
class LoadedFolder:
    """`flat`: {flax path: array} for every leaf the checkpoint provides; `new_head`: paths
    the caller must initialise itself (init_new_head: the task head, and a pooler the checkpoint
    lacks); `dropped`: checkpoint tensors the
    model does not use (another task's head, ignored buffers)."""
    flat: dict
    new_head: list
    dropped: list


def load_folder(folder, family: registry.Family, config: PretrainedConfig, task: str,
                abstract: Mapping[str, object], init_new_head: bool = False,
                put: Callable[[np.ndarray], object] = lambda a: a, source=None) -> LoadedFolder:
    """Plan and load the tensors of `folder` for `family`'s `task` model.

    `abstract`: flat {flax path: object with .shape and .dtype} of the model's params (the
    dtype is the one tensors are converted to). `put` moves each finished leaf (e.g. to a
    device). Strict: nothing is read unless every key maps and every shape matches.
    `source`: an open tensor source to read instead of the folder's files (a
    `core.checkpoint.gguf.GGUFCheckpoint`: Hugging Face names, keys/shape/get).
    """
    folder = pathlib.Path(folder)
    keymap = family.key_map(config, task)
    with (source if source is not None else ckpt_io.open_checkpoint(folder)) as source:
        shapes = {k: source.shape(k) for k in source.keys()}
        renamed, dropped = align_prefix(shapes, family.base_prefix, task)
        if task != "base":
            # Tensors of another task's head (e.g. MLM weights when fine-tuning a classifier).
            for old, new in list(renamed.items()):
                hit = keymap.to_flax(new)
                if (not new.startswith(family.base_prefix + ".") and not keymap.ignored(new)
                        and (hit is None or hit[0] not in abstract)):
                    dropped.append(old)
                    del renamed[old]
        head_paths = [p for p in abstract if task != "base" and not p.startswith(family.base_prefix + "/")]
        head_present = any(keymap.to_flax(k) is not None and keymap.to_flax(k)[0] in head_paths
                            for k in renamed.values())
        new_head = bool(init_new_head and head_paths and not head_present)
        # A task head that reads the pooler (sequence classification) may start from a checkpoint
        # that never had one (a masked-LM checkpoint): transformers initialises it, and so do we.
        pooler_paths = [p for p in abstract if p.startswith(family.base_prefix + "/pooler/")] \
            if init_new_head and task != "base" and family.base_prefix else []
        fresh = set(head_paths if new_head else []) | set(pooler_paths)
        shaped = {new: shapes[old] for old, new in renamed.items()}
        try:
            plan = km.plan_load(keymap, shaped, abstract, str(folder), optional_missing=fresh.__contains__)
        except km.KeyMapError as e:
            hint = ""
            missing_head = [p for p in head_paths if p in str(e)]
            if missing_head and not init_new_head:
                hint = ("\n  hint: the checkpoint has no weights for this task's head; pass "
                        "init_new_head=True to initialise it for fine-tuning")
            raise km.KeyMapError(str(e) + hint) from None
        original = {new: old for old, new in renamed.items()}
        flat = km.load_tensors(plan, lambda k: source.get(original[k]), abstract, put=put)
    initialised = sorted(p for p in fresh if p not in flat)
    return LoadedFolder(flat, initialised, dropped + plan.ignored)


def save_folder(folder, family: registry.Family, config: PretrainedConfig, task: str,
                flat: Mapping[str, np.ndarray], max_shard_size: int | str = "5GB") -> pathlib.Path:
    """Write config.json and safetensors in the Hugging Face layout `transformers` loads."""
    folder = pathlib.Path(folder)
    keymap = family.key_map(config, task)
    ckpt_io.write_checkpoint(folder, km.export_tensors(keymap, flat), max_shard_size=max_shard_size)
    config.replace(architectures=(family.heads[task][1],)).save_pretrained(folder)
    return folder


def align_prefix(shapes: Mapping[str, tuple], prefix: str, task: str) -> tuple[dict, list]:
    """Match checkpoint names to the model's nesting, as `transformers` does: a base model
    loads from a task checkpoint (the backbone prefix is stripped, head tensors dropped) and a
    task model loads from a base checkpoint (the prefix is added). An empty prefix (T5: its
    task heads hold the backbone's modules directly, not nested) keeps every name as it is."""
    if not prefix:
        return {key: key for key in shapes}, []
    dotted = prefix + "."
    has_prefix = any(k.startswith(dotted) for k in shapes)
    renamed, dropped = {}, []
    for key in shapes:
        if task == "base" and has_prefix:
            if key.startswith(dotted):
                renamed[key] = key[len(dotted):]
            else:
                dropped.append(key)
        elif task != "base" and not has_prefix:
            renamed[key] = dotted + key
        else:
            renamed[key] = key
    return renamed, dropped
