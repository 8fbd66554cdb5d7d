"""zero-shot-classification: an NLI classifier scores "premise = the text, hypothesis = the template
filled with each candidate label", as transformers' pipeline does."""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

from .base import Feature, Pipeline, PipelineError, check_text

logger = logging.getLogger(__name__)


def parse_labels(labels) -> list[str]:
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    if not isinstance(labels, (list, tuple)) or not all(isinstance(label, str) for label in labels):
        raise TypeError(f"candidate_labels must be a string (comma-separated) or a list of strings, got {labels!r}")
    return list(labels)


class ZeroShotClassificationPipeline(Pipeline):
    """`pipe("I love pizza", candidate_labels=["food", "sport"])` → `{"sequence", "labels", "scores"}`
    with the labels sorted best first; a list of texts → a list of those dicts.

    The entailment logit is read at the id of the first label (in the config's label2id order) whose
    name starts with "entail" (case-insensitive), as transformers finds it. Without multi_label the
    scores are a softmax of the entailment logits over the candidates; with multi_label (or a single
    candidate) each candidate gets softmax(contradiction, entailment)[entailment], contradiction being
    id 0 (or the last id when entailment is 0).
    """

    task = "zero-shot-classification"
    head = "sequence-classification"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.entailment_id == -1:
            logger.warning(
                "Failed to determine 'entailment' label id from the label2id mapping in the model config. Setting to "
                "-1. Define a descriptive label2id mapping in the model config to ensure correct outputs.")

    @property
    def entailment_id(self) -> int:
        config = self.model.config
        label2id = config.label2id
        if label2id is None:          # transformers keeps label2id from config.json; derive it if absent
            label2id = {name: i for i, name in enumerate(config.label_names)}
        for label, ind in label2id.items():
            if label.lower().startswith("entail"):
                return int(ind)
        return -1

    def _select(self, out, extra, xp):
        return {"logits": out.logits}

    def _encode_pair(self, sequence: str, hypothesis: str) -> Feature:
        try:
            (feature,) = self._encode([sequence], [hypothesis], truncation="only_first")
        except ValueError as error:
            if "too short" not in str(error):
                raise
            # transformers: the hypothesis alone is too long to truncate the premise; encode untruncated.
            (feature,) = self._encode([sequence], [hypothesis], truncation=None)
        return feature

    def __call__(self, sequences, candidate_labels=None, *, hypothesis_template: str = "This example is {}.",
                 multi_label: bool = False, batch_size: Optional[int] = None) -> Any:
        if candidate_labels is None:
            raise PipelineError(f"{self.task}: pass candidate_labels=[...] (or a comma-separated string)")
        labels = parse_labels(candidate_labels)
        if not isinstance(hypothesis_template, str):
            raise TypeError("hypothesis_template must be a string with a {} for the label, "
                            f"got {hypothesis_template!r}")
        if (isinstance(sequences, (list, tuple)) and len(sequences) == 0) or len(labels) == 0:
            raise ValueError("You must include at least one label and at least one sequence.")
        if hypothesis_template.format(labels[0]) == hypothesis_template:
            raise ValueError(
                f'The provided hypothesis_template "{hypothesis_template}" was not able to be formatted with the '
                "target labels. Make sure the passed template includes formatting syntax such as {} where the label "
                "should go.")
        texts, single = self._texts(sequences, "sequences")
        for i, label in enumerate(labels):
            check_text(label, self.task, f"candidate_labels[{i}]")
        hypotheses = [hypothesis_template.format(label) for label in labels]
        features = [self._encode_pair(text, hypothesis) for text in texts for hypothesis in hypotheses]
        outputs = self._run(features, self._batch_size(batch_size))
        n = len(labels)
        results = []
        for k, text in enumerate(texts):
            logits = np.stack([np.asarray(o["logits"], np.float32) for o in outputs[k * n:(k + 1) * n]])
            results.append(self.postprocess(text, labels, logits, multi_label))
        return results[0] if single else results

    def postprocess(self, sequence: str, candidate_labels: list[str], logits: np.ndarray, multi_label: bool) -> dict:
        reshaped_outputs = logits.reshape((1, len(candidate_labels), -1))
        if multi_label or len(candidate_labels) == 1:
            entailment_id = self.entailment_id
            contradiction_id = -1 if entailment_id == 0 else 0
            entail_contr_logits = reshaped_outputs[..., [contradiction_id, entailment_id]]
            scores = np.exp(entail_contr_logits) / np.exp(entail_contr_logits).sum(-1, keepdims=True)
            scores = scores[..., 1]
        else:
            entail_logits = reshaped_outputs[..., self.entailment_id]
            scores = np.exp(entail_logits) / np.exp(entail_logits).sum(-1, keepdims=True)
        top_inds = list(reversed(scores[0].argsort()))
        return {"sequence": sequence, "labels": [candidate_labels[i] for i in top_inds],
                "scores": scores[0, top_inds].tolist()}
