"""text2text-generation, summarization, translation: encoder-decoder generation with transformers v4's
pipeline semantics (v5 removed these pipelines).

    t2t = pipeline("text2text-generation", model="path/to/t5-folder")
    t2t("question: ... context: ...", max_new_tokens=16)    # [{"generated_text": "..."}]
    summarize = pipeline("summarization", model=folder)      # [{"summary_text": "..."}]
    translate = pipeline("translation_en_to_fr", model=t5)   # T5's "translate English to French: " prefix,
                                                             # when config.task_specific_params says so
    translate = pipeline("translation", model=mbart)
    translate("Hello", src_lang="en_XX", tgt_lang="fr_XX")  # [{"translation_text": "..."}]

As v4: the prefix is `task_specific_params[task]["prefix"]`, else `config.prefix`; the other task
parameters (num_beams, max_length, ...) are generation defaults under the call's options; outputs are
decoded with skip_special_tokens=True and clean_up_tokenization_spaces=False (unless passed). A single
text gives a list of records (one per returned sequence); a list of texts gives one record each (a list
each when num_return_sequences > 1). Texts are encoded one by one, batched `batch_size` at a time,
padded (on the tokenizer's side) to a bucketed length and row count.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from core.generation.config import GenerationConfig
from core.tokenization.seq2seq import _SourceTargetLanguages

from .base import Pipeline, PipelineError, check_batch_size, check_text, describe, load_model, load_tokenizer
from .text_generation import GenerationPipelineMixin


def task_params(config, task: str) -> dict:
    params = getattr(config, "task_specific_params", None)
    if params is None:
        params = dict(getattr(config, "extra", {})).get("task_specific_params")
    return dict((params or {}).get(task) or {})


class Text2TextGenerationPipeline(GenerationPipelineMixin, Pipeline):
    """See the module docstring. Options: return_tensors / return_text, clean_up_tokenization_spaces,
    truncation, batch_size, seed / prng_key, and every `generate` option."""

    task = "text2text-generation"
    head = "seq2seq-lm"
    return_name = "generated"

    def __init__(self, model, tokenizer, batch_size: int = 1, min_length_bucket: int = 8, task: Optional[str] = None):
        self._init_generation(model, tokenizer, batch_size, min_length_bucket)
        self.task_name = task or self.task
        params = task_params(model.config, self.task_name)
        prefix = params.pop("prefix", None)
        if prefix is None:
            prefix = getattr(model.config, "prefix", None) or dict(getattr(model.config, "extra", {})).get("prefix")
        self.prefix = prefix or ""
        names = set(GenerationConfig.field_names())
        self.task_generation = {k: v for k, v in params.items() if k in names}

    # -- encoding -------------------------------------------------------------------------------------
    def _texts_of(self, inputs):
        if isinstance(inputs, str):
            check_text(inputs, self.task, "inputs")
            return [inputs], True
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise PipelineError(f"{self.task}: inputs is an empty list; pass a string or a non-empty list")
            for i, text in enumerate(inputs):
                check_text(text, self.task, f"inputs[{i}]")
            return list(inputs), False
        raise ValueError(f" `args[0]`: {describe(inputs)} have the wrong format. The should be either of type `str` "
                         "or type `list`")

    def _encode_texts(self, texts, truncation, **kwargs) -> tuple[list[list[int]], dict]:
        """Token ids per text, and generate options the encoding adds."""
        batch = self.tokenizer([self.prefix + t for t in texts], truncation=truncation, return_attention_mask=False)
        return [list(ids) for ids in batch["input_ids"]], {}

    # -- the call ---------------------------------------------------------------------------------------
    def __call__(self, inputs, *, return_tensors=None, return_text=None, clean_up_tokenization_spaces=None,
                 truncation=None, batch_size: Optional[int] = None, **kwargs) -> Any:
        encode_kwargs = {k: kwargs.pop(k) for k in ("src_lang", "tgt_lang") if k in kwargs}
        seed, prng_key = kwargs.pop("seed", None), kwargs.pop("prng_key", None)
        texts, single = self._texts_of(inputs)
        encoded, added = self._encode_texts(texts, truncation, **encode_kwargs)
        for index, ids in enumerate(encoded):
            if self.max_positions is not None and len(ids) > self.max_positions:
                raise PipelineError(f"{self.task}: input {index} has {len(ids)} tokens, more than the model's maximum "
                                    f"of {self.max_positions} positions; pass truncation=True (or shorten the text)")
        gen_kwargs = {**self.task_generation, **self._generate_kwargs(kwargs), **added}
        clean = False if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        tensors = bool(return_tensors) and not return_text
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        right = getattr(self.tokenizer, "padding_side", "right") != "left"
        results = []
        for start in range(0, len(texts), batch_size):
            chunk = encoded[start:start + batch_size]
            longest = max(len(ids) for ids in chunk)
            length = max(self.min_length_bucket, 1 << max(longest - 1, 0).bit_length())
            if self.max_positions is not None:
                length = max(min(length, self.max_positions), longest)
            rows = self.batch_bucket(len(chunk), batch_size)
            ids = np.full((rows, length), pad, np.int64)
            mask = np.zeros((rows, length), np.int64)
            for row, tokens in enumerate(chunk):
                where = slice(0, len(tokens)) if right else slice(length - len(tokens), length)
                ids[row, where] = tokens
                mask[row, where] = 1
            ids[len(chunk):, 0] = chunk[0][0]
            mask[len(chunk):, 0] = 1
            self._note_shape(rows, length, gen_kwargs)
            try:
                out = self.model.generate(ids, attention_mask=mask, seed=seed, prng_key=prng_key, **gen_kwargs)
            except ValueError as error:
                raise PipelineError(f"{self.task}: {error}") from error
            per_row = out.shape[0] // rows
            for row in range(len(chunk)):
                records = []
                for sequence in out[row * per_row:(row + 1) * per_row].tolist():
                    if tensors:
                        records.append({f"{self.return_name}_token_ids": sequence})
                    else:
                        records.append({f"{self.return_name}_text": self.tokenizer.decode(
                            sequence, skip_special_tokens=True, clean_up_tokenization_spaces=clean)})
                results.append(records)
        if single:
            return results[0]
        if all(len(r) == 1 for r in results):
            return [r[0] for r in results]
        return results

    @classmethod
    def create(cls, task, model, tokenizer, batch_size, dtype, min_length_bucket, model_kwargs, backend=None):
        loaded = load_model(task, cls.head, model, dtype=dtype, model_kwargs=model_kwargs, backend=backend)
        return cls(loaded, load_tokenizer(task, tokenizer, model), batch_size=batch_size,
                   min_length_bucket=min_length_bucket, task=task)


class SummarizationPipeline(Text2TextGenerationPipeline):
    """summarization: `[{"summary_text": ...}]` (prefix "summarize: " for T5 via task_specific_params)."""

    task = "summarization"
    return_name = "summary"


class TranslationPipeline(Text2TextGenerationPipeline):
    """translation: `[{"translation_text": ...}]`. `src_lang`/`tgt_lang` (or a task name
    translation_XX_to_YY) select the languages of tokenizers that have language codes (mBART, M2M100):
    the source code frames the input and the target's id is forced as the first generated token."""

    task = "translation"
    return_name = "translation"

    def _encode_texts(self, texts, truncation, src_lang=None, tgt_lang=None):
        if src_lang is None and tgt_lang is None:
            items = self.task_name.split("_")
            if len(items) == 4 and items[0] == "translation" and items[2] == "to":
                src_lang, tgt_lang = items[1], items[3]
        if not isinstance(self.tokenizer, _SourceTargetLanguages):
            return super()._encode_texts(texts, truncation)
        if src_lang is None or tgt_lang is None:
            raise PipelineError(f"{self.task}: Translation requires a `src_lang` and a `tgt_lang` for this model")
        try:
            self.tokenizer.src_lang = src_lang
            if hasattr(self.tokenizer, "lang_token_to_id"):
                target = self.tokenizer.lang_token_to_id.get(f"__{tgt_lang}__")
            else:
                target = self.tokenizer.convert_tokens_to_ids(tgt_lang)
        except (KeyError, ValueError) as error:
            raise PipelineError(f"{self.task}: unknown language code ({error}); use the tokenizer's codes") from error
        if target is None or target == self.tokenizer.unk_token_id:
            raise PipelineError(f"{self.task}: tgt_lang {tgt_lang!r} is not one of the tokenizer's language codes")
        batch = self.tokenizer(list(texts), truncation=truncation, return_attention_mask=False)
        return [list(ids) for ids in batch["input_ids"]], {"forced_bos_token_id": target}
