"""question-answering: extractive answer spans, with transformers v4's semantics.

transformers v5 removed this pipeline; Rosetta follows v4.5x's QuestionAnsweringPipeline (fast
tokenizer path): the question and the context are encoded as a pair, a long context is split into
windows of `max_seq_len` tokens overlapping by `doc_stride` tokens, each window's start/end logits
are softmaxed over its context tokens (and the CLS token), the best spans with
start <= end < start + max_answer_len are kept, spans are widened to whole words, answers with the
same text (case-insensitive) from different windows add their scores, and the `top_k` best are
returned. `handle_impossible_answer` adds the empty answer, scored by the lowest CLS start x end
probability over the windows.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from core.tokenization.tokenizers_backend import TokenizersTokenizer

from .base import Feature, Pipeline, PipelineError, check_top_k, describe


def decode_spans(start: np.ndarray, end: np.ndarray, topk: int, max_answer_len: int,
                 undesired_tokens: np.ndarray) -> tuple:
    """The top-k (start, end) pairs by start x end probability, end >= start, length <= max_answer_len,
    both in the context (transformers v4's `decode_spans`)."""
    if start.ndim == 1:
        start = start[None]
    if end.ndim == 1:
        end = end[None]
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    scores_flat = candidates.flatten()
    if topk == 1:
        idx_sort = [np.argmax(scores_flat)]
    elif len(scores_flat) < topk:
        idx_sort = np.argsort(-scores_flat)
    else:
        idx = np.argpartition(-scores_flat, topk)[0:topk]
        idx_sort = idx[np.argsort(-scores_flat[idx])]
    starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
    desired_spans = np.isin(starts, undesired_tokens.nonzero()) & np.isin(ends, undesired_tokens.nonzero())
    starts = starts[desired_spans]
    ends = ends[desired_spans]
    scores = candidates[0, starts, ends]
    return starts, ends, scores


def select_starts_ends(start, end, p_mask, attention_mask, min_null_score=1000000, top_k=1,
                       handle_impossible_answer=False, max_answer_len=15):
    """Mask non-context logits, softmax, score the null answer, decode the spans (transformers v4)."""
    undesired_tokens = np.abs(np.array(p_mask) - 1)
    if attention_mask is not None:
        undesired_tokens = undesired_tokens & attention_mask
    undesired_tokens_mask = undesired_tokens == 0.0
    start = np.where(undesired_tokens_mask, -10000.0, start)
    end = np.where(undesired_tokens_mask, -10000.0, end)
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
    start[0, 0] = end[0, 0] = 0.0          # the CLS token is never a span
    starts, ends, scores = decode_spans(start, end, top_k, max_answer_len, undesired_tokens)
    return starts, ends, scores, min_null_score


def _check_positive(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} parameter should be >= 1 (got {value!r})")
    return int(value)


class QuestionAnsweringPipeline(Pipeline):
    """`pipe(question="Who?", context="...")`, `pipe({"question": q, "context": c})` or a list of such
    dicts. One answer → `{"score", "start", "end", "answer"}` (character offsets into the context);
    top_k > 1 → a list of them, best first; several examples → a list with one result each."""

    task = "question-answering"
    head = "question-answering"
    token_outputs = ("start_logits", "end_logits")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.tokenizer, TokenizersTokenizer):
            raise PipelineError(f"{self.task} needs a tokenizer.json (fast) tokenizer: the spans come from its "
                                f"offsets and overflowing windows; {type(self.tokenizer).__name__} has neither")

    def _select(self, out, extra, xp):
        return {"start_logits": out.start_logits, "end_logits": out.end_logits}

    # -- inputs ------------------------------------------------------------------------------------
    @staticmethod
    def _normalize(item, where: str) -> dict:
        if not isinstance(item, dict):
            raise ValueError(f"{where}: {describe(item)} argument needs to be of type dict with the keys "
                             "{question: ..., context: ...}")
        for k in ("question", "context"):
            if k not in item:
                raise KeyError("You need to provide a dictionary with keys {question:..., context:...}")
            if item[k] is None:
                raise ValueError(f"`{k}` cannot be None")
            if not isinstance(item[k], str):
                raise TypeError(f"{where}: `{k}` must be a string, got {describe(item[k])}")
            if len(item[k]) == 0 or not item[k].strip():
                raise ValueError(f"`{k}` cannot be empty")
        return {"question": item["question"], "context": item["context"]}

    def _examples(self, args, question, context) -> tuple[list[dict], bool]:
        if args:
            if question is not None or context is not None:
                raise ValueError("pass either positional examples or question=/context=, not both")
            if len(args) == 1:
                inputs = args[0]
            elif len(args) == 2 and all(isinstance(a, str) for a in args):
                inputs = {"question": args[0], "context": args[1]}
            else:
                inputs = list(args)
        elif question is not None and context is not None:
            if isinstance(question, list) and isinstance(context, str):
                inputs = [{"question": q, "context": context} for q in question]
            elif isinstance(question, list) and isinstance(context, list):
                if len(question) != len(context):
                    raise ValueError("Questions and contexts don't have the same lengths")
                inputs = [{"question": q, "context": c} for q, c in zip(question, context)]
            elif isinstance(question, str) and isinstance(context, str):
                inputs = {"question": question, "context": context}
            else:
                raise ValueError("Arguments can't be understood")
        else:
            raise ValueError(f"{self.task}: pass question= and context= (or a {{'question', 'context'}} dict, or a "
                             "list of them)")
        if isinstance(inputs, dict):
            return [self._normalize(inputs, "input")], True
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise PipelineError(f"{self.task}: no examples given (an empty list)")
            examples = [self._normalize(item, f"input {i}") for i, item in enumerate(inputs)]
            return examples, len(examples) == 1
        raise ValueError(f"{describe(inputs)} argument needs to be of type dict (question, context) or a list of them")

    # -- windows -------------------------------------------------------------------------------------
    def _windows(self, example: dict, max_seq_len: int, doc_stride: int, index: int) -> list[Feature]:
        backend = self.tokenizer.backend_tokenizer
        question_first = self.tokenizer.padding_side == "right"
        first, second = ((example["question"], example["context"]) if question_first
                         else (example["context"], example["question"]))
        backend.no_padding()
        backend.enable_truncation(max_seq_len, stride=doc_stride,
                                  strategy="only_second" if question_first else "only_first",
                                  direction=self.tokenizer.truncation_side)
        try:
            encoding = backend.encode(first, second, add_special_tokens=True)
        except Exception as error:
            raise PipelineError(
                f"{self.task}: example {index}: cannot split the context into windows of max_seq_len={max_seq_len} "
                f"tokens with doc_stride={doc_stride} ({error}); the question is probably too long for "
                "max_seq_len: raise max_seq_len or lower doc_stride") from None
        finally:
            backend.no_truncation()
        features = []
        cls_id = self.tokenizer.cls_token_id
        for enc in [encoding] + list(encoding.overflowing):
            p_mask = [int(tok != 1) if question_first else 0 for tok in enc.sequence_ids]
            if cls_id is not None:
                for i, token in enumerate(enc.ids):
                    if token == cls_id:
                        p_mask[i] = 0      # keep CLS unmasked (some models mark impossible answers there)
            features.append(Feature(list(enc.ids), list(enc.type_ids) if self._use_token_types else None,
                                    {"encoding": enc, "p_mask": p_mask, "example": index}))
        return features

    def __call__(self, *args, question=None, context=None, top_k: int = 1, doc_stride: Optional[int] = None,
                 max_answer_len: int = 15, max_seq_len: Optional[int] = None, max_question_len: int = 64,
                 handle_impossible_answer: bool = False, align_to_words: bool = True,
                 batch_size: Optional[int] = None) -> Any:
        top_k = check_top_k(top_k)
        max_answer_len = _check_positive(max_answer_len, "max_answer_len")
        examples, single = self._examples(args, question, context)
        if max_seq_len is None:
            max_seq_len = min(self.tokenizer.model_max_length or 384, 384)
        max_seq_len = _check_positive(max_seq_len, "max_seq_len")
        if self.max_positions is not None and max_seq_len > self.max_positions:
            raise PipelineError(f"{self.task}: max_seq_len={max_seq_len} exceeds the model's maximum of "
                                f"{self.max_positions} positions; pass max_seq_len<={self.max_positions}")
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 128)
        if isinstance(doc_stride, bool) or not isinstance(doc_stride, (int, np.integer)) or doc_stride < 0:
            raise ValueError(f"doc_stride must be an int >= 0, got {doc_stride!r}")
        if doc_stride > max_seq_len:
            raise ValueError(f"`doc_stride` ({doc_stride}) is larger than `max_seq_len` ({max_seq_len})")
        features = []
        for index, example in enumerate(examples):
            features.extend(self._windows(example, max_seq_len, int(doc_stride), index))
        outputs = self._run(features, self._batch_size(batch_size))
        results = []
        for index, example in enumerate(examples):
            mine = [(f, o) for f, o in zip(features, outputs) if f.meta["example"] == index]
            results.append(self.postprocess(example, mine, top_k, handle_impossible_answer, max_answer_len,
                                            align_to_words))
        return results[0] if single else results

    # -- transformers v4's postprocessing -----------------------------------------------------------------
    def postprocess(self, example: dict, windows, top_k: int, handle_impossible_answer: bool,
                    max_answer_len: int, align_to_words: bool):
        min_null_score = 1000000
        answers = []
        question_first = self.tokenizer.padding_side == "right"
        sequence_index = 1 if question_first else 0
        context = example["context"]
        for feature, output in windows:
            n = len(feature.input_ids)
            start_ = np.asarray(output["start_logits"], np.float32)[None]
            end_ = np.asarray(output["end_logits"], np.float32)[None]
            p_mask = np.asarray(feature.meta["p_mask"], np.int64)[None]
            attention_mask = np.ones((1, n), np.int64)
            starts, ends, scores, min_null_score = select_starts_ends(
                start_, end_, p_mask, attention_mask, min_null_score, top_k, handle_impossible_answer,
                max_answer_len)
            enc = feature.meta["encoding"]
            for s, e, score in zip(starts, ends, scores):
                start_index, end_index = self.get_indices(enc, int(s), int(e), sequence_index, align_to_words)
                target_answer = context[start_index:end_index]
                answer = self.get_answer(answers, target_answer)
                if answer:
                    answer["score"] += score.item()
                else:
                    answers.append({"score": score.item(), "start": start_index, "end": end_index,
                                    "answer": context[start_index:end_index]})
        if handle_impossible_answer:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
        if len(answers) == 1:
            return answers[0]
        return answers

    @staticmethod
    def get_answer(answers: list[dict], target: str) -> Optional[dict]:
        for answer in answers:
            if answer["answer"].lower() == target.lower():
                return answer
        return None

    @staticmethod
    def get_indices(enc, s: int, e: int, sequence_index: int, align_to_words: bool) -> tuple[int, int]:
        if align_to_words:
            try:
                start_word = enc.token_to_word(s)
                end_word = enc.token_to_word(e)
                start_index = enc.word_to_chars(start_word, sequence_index=sequence_index)[0]
                end_index = enc.word_to_chars(end_word, sequence_index=sequence_index)[1]
            except Exception:
                # Some tokenizers don't really handle words. Keep to offsets then.
                start_index = enc.offsets[s][0]
                end_index = enc.offsets[e][1]
        else:
            start_index = enc.offsets[s][0]
            end_index = enc.offsets[e][1]
        return start_index, end_index
