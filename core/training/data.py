"""Training data: text / JSONL in, tokenized with the project's tokenizers, packed into
fixed-length rows, served in a deterministic, resumable, per-host-sharded order.

Everything here is numpy on the host. The order of examples is a pure function of
(seed, step): step `s` of a run with global batch `B` reads positions `s*B ... s*B+B-1` of an
endless stream of epochs, each epoch a seeded permutation of the rows. So the data position
to checkpoint is just the step, a restarted run reads exactly what the original would have, and
the global batch is the same whatever the number of hosts or devices: host `p` of `P` reads
rows `p*B/P ... (p+1)*B/P - 1` of it. Each row also carries `index`, its position in the global
batch, from which per-example RNG (MLM masking here, dropout in the step) is derived, so results
do not depend on how the batch is split across hosts, devices or accumulation micro-batches.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from typing import Any, Optional, Sequence

import numpy as np
from absl import logging

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
IGNORE_INDEX = -100
LM_TASKS = ("masked-lm", "causal-lm")
EVAL_STREAM = 2**31 - 1          # the (seed, stream, row) RNG stream of the fixed eval masks


def resolve_path(path: str | pathlib.Path) -> pathlib.Path:
    """A path as given if it exists, else relative to the repository root (configs name the
    embedded data as `experiments/data/...`)."""
    p = pathlib.Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p.absolute()
    if (REPO_ROOT / p).exists():
        return REPO_ROOT / p
    return p


def _files(path: pathlib.Path) -> list[pathlib.Path]:
    if path.is_dir():
        found = sorted([*path.glob("*.txt"), *path.glob("*.jsonl")])
        if not found:
            raise FileNotFoundError(f"{path}: a data directory needs *.txt or *.jsonl files")
        return found
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file or directory")
    return [path]


def _jsonl_rows(path: pathlib.Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not valid JSON ({e})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}")
        rows.append(row)
    return rows


def read_documents(path, text_field: str = "text") -> list[str]:
    """Documents of a corpus: a .txt file (documents separated by blank lines), a .jsonl file
    (one object per line, text under `text_field`), or a directory of those (sorted by name)."""
    docs: list[str] = []
    for f in _files(resolve_path(path)):
        if f.suffix == ".jsonl":
            for number, row in enumerate(_jsonl_rows(f), 1):
                if text_field not in row:
                    raise KeyError(f"{f}: row {number} has no {text_field!r} field (data.text_field)")
                docs.append(str(row[text_field]))
        else:
            docs.extend(d.strip() for d in re.split(r"\n\s*\n", f.read_text(encoding="utf-8")))
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise ValueError(f"{path}: no non-empty documents")
    return docs


def split_documents(docs: Sequence[str], eval_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic hold-out: every k-th document (k = round(1/fraction)) goes to eval."""
    if eval_fraction <= 0:
        return list(docs), []
    k = max(2, int(round(1.0 / eval_fraction)))
    train = [d for i, d in enumerate(docs) if i % k != k - 1]
    evals = [d for i, d in enumerate(docs) if i % k == k - 1]
    return train, evals


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    cls: Optional[int]
    sep: Optional[int]
    pad: int
    mask: Optional[int]
    eos: Optional[int]
    vocab_size: int

    @classmethod
    def of(cls, tokenizer) -> "SpecialIds":
        get = lambda name: getattr(tokenizer, f"{name}_token_id", None)   # noqa: E731
        pad = get("pad")
        return cls(get("cls"), get("sep"), 0 if pad is None else pad, get("mask"), get("eos"), len(tokenizer))


def tokenize_documents(tokenizer, docs: Sequence[str]) -> list[list[int]]:
    return list(tokenizer(list(docs), add_special_tokens=False)["input_ids"])


def pack(token_lists: Sequence[Sequence[int]], seq_len: int, task: str, special: SpecialIds) -> np.ndarray:
    """Concatenate documents and cut the stream into (rows, seq_len) int32.

    masked-lm: documents joined by [SEP]; each row is [CLS] + seq_len-2 tokens + [SEP].
    causal-lm: each document followed by the end-of-text token; rows are seq_len tokens.
    The last partial row is dropped."""
    if task == "masked-lm":
        if special.cls is None or special.sep is None or special.mask is None:
            raise ValueError("masked-lm packing needs a tokenizer with [CLS], [SEP] and [MASK] tokens")
        body, joiner = seq_len - 2, special.sep
    elif task == "causal-lm":
        if special.eos is None:
            raise ValueError("causal-lm packing needs a tokenizer with an end-of-text (eos) token")
        body, joiner = seq_len, special.eos
    else:
        raise ValueError(f"pack: task {task!r} is not a language-modelling task")
    if body < 1:
        raise ValueError(f"data.seq_len={seq_len} is too short for {task}")
    stream: list[int] = []
    for i, ids in enumerate(token_lists):
        if task == "masked-lm" and i:
            stream.append(joiner)
        stream.extend(ids)
        if task == "causal-lm":
            stream.append(joiner)
    rows = len(stream) // body
    if rows == 0:
        raise ValueError(f"the corpus has {len(stream)} tokens: too few for one row of {seq_len}; "
                         "add text or lower data.seq_len")
    chunks = np.asarray(stream[:rows * body], np.int32).reshape(rows, body)
    if task == "masked-lm":
        cls = np.full((rows, 1), special.cls, np.int32)
        sep = np.full((rows, 1), special.sep, np.int32)
        chunks = np.concatenate([cls, chunks, sep], axis=1)
    return chunks


def mlm_mask(ids: np.ndarray, rng: np.random.Generator, special: SpecialIds,
             probability: float) -> tuple[np.ndarray, np.ndarray]:
    """BERT masking of one row: each non-special token is chosen with `probability` (at least
    one per row); chosen tokens become [MASK] 80%, a random token 10%, unchanged 10%.
    Returns (input_ids, labels) with labels = IGNORE_INDEX where not chosen."""
    specials = [t for t in (special.cls, special.sep, special.pad) if t is not None]
    candidates = ~np.isin(ids, specials)
    chosen = (rng.random(ids.shape) < probability) & candidates
    if not chosen.any() and candidates.any():
        chosen[rng.choice(np.flatnonzero(candidates))] = True
    action = rng.random(ids.shape)
    random_ids = rng.integers(0, special.vocab_size, ids.shape)
    inputs = np.where(chosen & (action < 0.8), special.mask, ids)
    inputs = np.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs).astype(np.int32)
    labels = np.where(chosen, ids, IGNORE_INDEX).astype(np.int32)
    return inputs, labels


# -- the example sets -------------------------------------------------------------------------------

@dataclasses.dataclass
class ExampleSet:
    """Fixed-shape examples (rows) of one split, as numpy arrays keyed by model input name."""
    task: str
    arrays: dict[str, np.ndarray]           # each (rows, ...)
    special: SpecialIds
    mlm_probability: float = 0.15
    label_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    @property
    def seq_len(self) -> int:
        return self.arrays["input_ids"].shape[1]

    def rows(self, rows: np.ndarray, global_index: np.ndarray, seed: int, stream: int,
             weights: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
        """The batch made of `rows`; masking RNG is keyed by (seed, stream, global_index)."""
        batch = {k: v[rows] for k, v in self.arrays.items()}
        if self.task == "masked-lm":
            inputs, labels = [], []
            for ids, g in zip(batch["input_ids"], global_index):
                i, l = mlm_mask(ids, np.random.default_rng([seed, stream, int(g)]), self.special,
                                self.mlm_probability)
                inputs.append(i)
                labels.append(l)
            batch["input_ids"] = np.stack(inputs)
            batch["labels"] = np.stack(labels)
        batch["weights"] = (np.ones(len(rows), np.float32) if weights is None else weights.astype(np.float32))
        batch["index"] = np.asarray(global_index, np.int32)
        return batch


def lm_example_set(tokenizer, docs: Sequence[str], task: str, seq_len: int, mlm_probability: float,
                   with_token_types: bool) -> ExampleSet:
    special = SpecialIds.of(tokenizer)
    ids = pack(tokenize_documents(tokenizer, docs), seq_len, task, special)
    arrays = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if with_token_types:
        arrays["token_type_ids"] = np.zeros_like(ids)
    return ExampleSet(task, arrays, special, mlm_probability)


def read_labelled(path, text_field: str, pair_field: str, label_field: str) -> list[dict]:
    rows = []
    for f in _files(resolve_path(path)):
        for number, row in enumerate(_jsonl_rows(f), 1):
            for field in (text_field, label_field) + ((pair_field,) if pair_field else ()):
                if field not in row:
                    raise KeyError(f"{f}: row {number} has no {field!r} field")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no examples")
    return rows


def classification_example_set(tokenizer, rows: Sequence[dict], label_names: Sequence[str], seq_len: int,
                               text_field: str, pair_field: str, label_field: str,
                               with_token_types: bool) -> ExampleSet:
    texts = [str(r[text_field]) for r in rows]
    pairs = [str(r[pair_field]) for r in rows] if pair_field else None
    enc = tokenizer(texts, pairs, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
    regression = len(label_names) == 1
    if regression:
        labels = np.asarray([float(r[label_field]) for r in rows], np.float32)
    else:
        index = {name: i for i, name in enumerate(label_names)}
        unknown = sorted({str(r[label_field]) for r in rows} - set(index))
        if unknown:
            raise ValueError(f"labels {unknown} are not in data.labels={list(label_names)}")
        labels = np.asarray([index[str(r[label_field])] for r in rows], np.int32)
    arrays = {"input_ids": np.asarray(enc["input_ids"], np.int32),
              "attention_mask": np.asarray(enc["attention_mask"], np.int32), "labels": labels}
    if with_token_types:
        types = enc.get("token_type_ids")
        arrays["token_type_ids"] = (np.zeros_like(arrays["input_ids"]) if types is None
                                    else np.asarray(types, np.int32))
    return ExampleSet("sequence-classification", arrays, SpecialIds.of(tokenizer), label_names=tuple(label_names))


# -- the order ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Schedule:
    """Which rows step `s` reads. Pure function of (seed, step); see the module docstring."""
    num_rows: int
    global_batch: int
    seed: int
    shuffle: bool = True
    process_index: int = 0
    process_count: int = 1

    def __post_init__(self):
        if self.num_rows < 1:
            raise ValueError("the training set is empty")
        if self.global_batch % self.process_count:
            raise ValueError(f"train.batch_size={self.global_batch} must divide evenly over "
                             f"{self.process_count} processes")

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_rows)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_rows)

    def positions(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(host-local row ids, their index in the global batch) for `step`."""
        per_host = self.global_batch // self.process_count
        local = np.arange(self.process_index * per_host, (self.process_index + 1) * per_host)
        stream = step * self.global_batch + local
        epochs = stream // self.num_rows
        rows = np.empty_like(stream)
        for epoch in np.unique(epochs):
            sel = epochs == epoch
            rows[sel] = self._epoch_order(int(epoch))[stream[sel] % self.num_rows]
        return rows, local

    def state(self, step: int) -> dict[str, Any]:
        return {"step": int(step), "num_rows": self.num_rows, "global_batch": self.global_batch,
                "seed": self.seed, "shuffle": self.shuffle}

    def check_resume(self, saved: dict) -> None:
        mine = self.state(int(saved.get("step", 0)))
        changed = {k: (saved.get(k), v) for k, v in mine.items() if k != "step" and saved.get(k) != v}
        if changed:
            logging.warning("resuming with a different data setup %s (saved, now): the restarted run "
                            "will not see the batches the original would have", changed)


class TrainBatches:
    """Host-local training batches of an `ExampleSet` in `Schedule` order."""

    def __init__(self, examples: ExampleSet, schedule: Schedule):
        self.examples, self.schedule = examples, schedule

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        rows, index = self.schedule.positions(step)
        return self.examples.rows(rows, index, self.schedule.seed, step)


def eval_batches(examples: ExampleSet, global_batch: int, seed: int, process_index: int = 0,
                 process_count: int = 1) -> list[dict[str, np.ndarray]]:
    """The whole eval split in order, padded with weight-0 rows to full global batches;
    fixed MLM masks (the same at every evaluation)."""
    n = len(examples)
    if n == 0:
        return []
    if global_batch % process_count:
        raise ValueError(f"train.eval_batch_size={global_batch} must divide evenly over {process_count} processes")
    total = -(-n // global_batch) * global_batch
    per_host = global_batch // process_count
    batches = []
    for start in range(0, total, global_batch):
        local = np.arange(start + process_index * per_host, start + (process_index + 1) * per_host)
        weights = (local < n).astype(np.float32)
        rows = np.where(local < n, local, 0)
        batches.append(examples.rows(rows, local, seed, EVAL_STREAM, weights))
    return batches
