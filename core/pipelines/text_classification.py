"""text-classification: labels and scores of a sequence classifier, as transformers' pipeline returns them."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .base import Pipeline, PipelineError, check_text, check_top_k, describe

FUNCTIONS = ("sigmoid", "softmax", "none")
_LEGACY = object()          # top_k not passed: transformers' legacy output format


def sigmoid(outputs):
    return 1.0 / (1.0 + np.exp(-outputs))


def softmax(outputs):
    maxes = np.max(outputs, axis=-1, keepdims=True)
    shifted_exp = np.exp(outputs - maxes)
    return shifted_exp / shifted_exp.sum(axis=-1, keepdims=True)


def default_function(config) -> str:
    """transformers' choice when function_to_apply is not given."""
    if config.problem_type == "regression":
        return "none"
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    if config.problem_type == "single_label_classification" or config.num_labels > 1:
        return "softmax"
    return "none"


def check_function(function_to_apply) -> Optional[str]:
    if function_to_apply is None:
        return None
    if not isinstance(function_to_apply, str) or function_to_apply.lower() not in FUNCTIONS + ("default",):
        raise ValueError(f"function_to_apply must be one of {', '.join(FUNCTIONS)} or 'default', "
                         f"got {function_to_apply!r}")
    name = function_to_apply.lower()
    return None if name == "default" else name


class TextClassificationPipeline(Pipeline):
    """`pipe("a text")` → `[{"label", "score"}]` (the best label); `pipe(["a", "b"])` → one dict each;
    `pipe({"text": a, "text_pair": b})` classifies a pair → one dict. With `top_k=k` (or None for all)
    every input gives a list of its k best labels, best first. `function_to_apply` is sigmoid, softmax or
    none; by default: none for regression, sigmoid for multi-label or one label, softmax otherwise."""

    task = "text-classification"
    head = "sequence-classification"

    def _select(self, out, extra, xp):
        return {"logits": out.logits}

    def _split(self, item, where: str) -> tuple[str, Optional[str]]:
        if isinstance(item, dict):
            unknown = set(item) - {"text", "text_pair"}
            if "text" not in item or unknown:
                raise PipelineError(f"{self.task}: {where} must have the keys 'text' and optionally 'text_pair', "
                                    f"got {sorted(item)}")
            check_text(item["text"], self.task, f"{where}['text']")
            pair = item.get("text_pair")
            if pair is not None:
                check_text(pair, self.task, f"{where}['text_pair']")
            return item["text"], pair
        if isinstance(item, (list, tuple)):
            raise ValueError("The pipeline received invalid inputs, if you are trying to send text pairs, you can try "
                             'to send a dictionary `{"text": "My text", "text_pair": "My pair"}` in order to send a '
                             "text pair.")
        check_text(item, self.task, where)
        return item, None

    def __call__(self, inputs, *, top_k=_LEGACY, function_to_apply=None, batch_size: Optional[int] = None,
                 truncation=None, max_length: Optional[int] = None) -> Any:
        legacy = top_k is _LEGACY
        if not legacy and top_k is not None:
            top_k = check_top_k(top_k)
        function = check_function(function_to_apply) or default_function(self.model.config)
        if isinstance(inputs, (str, dict)):
            items, single = [inputs], True
        elif isinstance(inputs, (list, tuple)):
            items, single = list(inputs), False
            if not items:
                raise PipelineError(f"{self.task}: inputs is an empty list; pass a string, a dict or a non-empty list")
        else:
            raise TypeError(f"{self.task}: inputs must be a string, a {{'text', 'text_pair'}} dict or a list of "
                            f"those, got {describe(inputs)}")
        split = [self._split(item, "inputs" if single else f"inputs[{i}]") for i, item in enumerate(items)]
        features = self._encode([t for t, _ in split], [p for _, p in split], truncation=truncation,
                                max_length=max_length)
        outputs = self._run(features, self._batch_size(batch_size))
        labels = self.model.config.label_names
        results = [self.postprocess(o["logits"], labels, function, 1 if legacy else top_k, legacy) for o in outputs]
        if single:
            return [results[0]] if legacy and isinstance(inputs, str) else results[0]
        return results

    @staticmethod
    def postprocess(logits, labels, function: str, top_k, legacy: bool):
        outputs = np.asarray(logits, np.float32)
        if function == "sigmoid":
            scores = sigmoid(outputs)
        elif function == "softmax":
            scores = softmax(outputs)
        else:
            scores = outputs
        if top_k == 1 and legacy:
            return {"label": labels[scores.argmax().item()], "score": scores.max().item()}
        dict_scores = [{"label": labels[i], "score": score.item()} for i, score in enumerate(scores)]
        if not legacy:
            dict_scores.sort(key=lambda x: x["score"], reverse=True)
            if top_k is not None:
                dict_scores = dict_scores[:top_k]
        return dict_scores
