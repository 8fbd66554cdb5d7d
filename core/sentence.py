"""Sentence embeddings from a sentence-transformers folder: encoder → pooling → (normalize).

Reads `modules.json`, `1_Pooling/config.json` and `sentence_bert_config.json` as
sentence-transformers writes them; a plain Hugging Face folder defaults to mean pooling.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from core.auto import AutoModel
from core.tokenization import AutoTokenizer

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len")


def pool(last_hidden_state, attention_mask, mode: str = "mean"):
    """(batch, length, d) → (batch, d) over non-padded tokens."""
    mask = jnp.asarray(attention_mask, last_hidden_state.dtype)[..., None]
    if mode == "cls":
        return last_hidden_state[:, 0]
    if mode == "max":
        return jnp.max(jnp.where(mask > 0, last_hidden_state, jnp.finfo(last_hidden_state.dtype).min), axis=1)
    summed = jnp.sum(last_hidden_state * mask, axis=1)
    count = jnp.maximum(jnp.sum(mask, axis=1), 1e-9)     # sentence-transformers' clamp
    if mode == "mean":
        return summed / count
    if mode == "mean_sqrt_len":
        return summed / jnp.sqrt(count)
    raise ValueError(f"pooling mode {mode!r}: expected one of {POOLING_MODES}")


def normalize(embeddings):
    norm = jnp.linalg.norm(embeddings, axis=-1, keepdims=True)
    return embeddings / jnp.maximum(norm, 1e-12)          # torch.nn.functional.normalize's eps


@dataclasses.dataclass(frozen=True)
class PoolingConfig:
    mode: str = "mean"
    normalize: bool = False
    max_seq_length: int | None = None

    @classmethod
    def from_folder(cls, folder: pathlib.Path) -> "PoolingConfig":
        modules_path = folder / "modules.json"
        if not modules_path.exists():
            return cls()
        modules = json.loads(modules_path.read_text())
        mode, do_normalize = "mean", False
        for module in modules:
            kind = module.get("type", "").rsplit(".", 1)[-1]
            if kind == "Pooling":
                pooling = json.loads((folder / module["path"] / "config.json").read_text())
                chosen = [m for m in POOLING_MODES if pooling.get(f"pooling_mode_{m}_token") or
                          pooling.get(f"pooling_mode_{m}_tokens")]
                if len(chosen) != 1:
                    raise ValueError(f"{folder / module['path']}: exactly one pooling mode must be on; "
                                     f"found {chosen or 'none'}")
                mode = chosen[0]
            elif kind == "Normalize":
                do_normalize = True
            elif kind != "Transformer":
                raise ValueError(f"{modules_path}: module type {module.get('type')!r} is not supported "
                                 "(Rosetta reads Transformer, Pooling and Normalize)")
        st_config = folder / "sentence_bert_config.json"
        max_len = json.loads(st_config.read_text()).get("max_seq_length") if st_config.exists() else None
        return cls(mode, do_normalize, max_len)


class SentenceEmbedder:
    """`SentenceEmbedder.from_pretrained(folder).encode(["a sentence", ...])` → (n, d) numpy."""

    def __init__(self, model, tokenizer, pooling: PoolingConfig):
        self.model, self.tokenizer, self.pooling = model, tokenizer, pooling
        self._embed = jax.jit(self._embed_batch)

    @classmethod
    def from_pretrained(cls, folder, **model_kwargs) -> "SentenceEmbedder":
        folder = pathlib.Path(folder)
        return cls(AutoModel.from_pretrained(folder, **model_kwargs), AutoTokenizer.from_pretrained(folder),
                   PoolingConfig.from_folder(folder))

    def _embed_batch(self, params, input_ids, attention_mask, token_type_ids):
        out = self.model.module.apply({"params": params}, input_ids, attention_mask, token_type_ids)
        pooled = pool(out.last_hidden_state, attention_mask, self.pooling.mode)
        return normalize(pooled) if self.pooling.normalize else pooled

    def encode(self, sentences: Sequence[str] | str, batch_size: int = 32) -> np.ndarray:
        if isinstance(sentences, str):
            sentences = [sentences]
        if not isinstance(sentences, (list, tuple)) or not all(isinstance(s, str) for s in sentences):
            raise TypeError("sentences: expected a string or a list of strings")
        if not sentences:
            raise ValueError("sentences: the list is empty; pass at least one sentence")
        max_length = self.pooling.max_seq_length or self.model.max_length
        chunks = []
        for start in range(0, len(sentences), batch_size):
            batch = self.tokenizer(list(sentences[start:start + batch_size]), padding=True, truncation=True,
                                   max_length=max_length, return_tensors="np")
            token_types = batch.get("token_type_ids", np.zeros_like(batch["input_ids"]))
            chunks.append(np.asarray(self._embed(self.model.params, batch["input_ids"], batch["attention_mask"],
                                                 token_types)))
        return np.concatenate(chunks)
