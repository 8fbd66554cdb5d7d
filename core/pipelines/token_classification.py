"""token-classification (NER): per-token or per-entity labels, as transformers' pipeline returns them.

The aggregation follows transformers exactly: word boundaries come from the tokenizer's offsets
(a token is a sub-word when its text in the sentence is not its vocabulary string, for tokenizers
with a continuing-subword prefix such as WordPiece's `##`; otherwise when it does not follow a space),
B-/I- prefixes group adjacent tokens, and scores are softmax probabilities (numpy float32, as
transformers returns them).
"""
from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

import numpy as np

from core.tokenization.tokenizers_backend import TokenizersTokenizer

from .base import Pipeline, PipelineError

STRATEGIES = ("none", "simple", "first", "average", "max")


def check_strategy(aggregation_strategy) -> str:
    name = getattr(aggregation_strategy, "value", aggregation_strategy)
    if not isinstance(name, str) or name.lower() not in STRATEGIES:
        raise ValueError(f"aggregation_strategy must be one of {', '.join(STRATEGIES)}, got {aggregation_strategy!r}")
    return name.lower()


class TokenClassificationPipeline(Pipeline):
    """`pipe("Hugging Face is in New York")` → a list of entities; a list of texts → a list of lists.
    aggregation_strategy "none" gives one dict per token (`entity`, `score`, `index`, `word`, `start`,
    `end`); the others group tokens into entities (`entity_group`, `score`, `word`, `start`, `end`).
    Entities labelled with one of `ignore_labels` (default ["O"]) are left out."""

    task = "token-classification"
    head = "token-classification"
    token_outputs = ("logits",)

    def _select(self, out, extra, xp):
        return {"logits": out.logits}

    def __call__(self, inputs, *, aggregation_strategy="none", ignore_labels: Optional[Sequence[str]] = None,
                 batch_size: Optional[int] = None, stride: Optional[int] = None, **unsupported) -> Any:
        if unsupported:
            raise PipelineError(f"{self.task}: {sorted(unsupported)} not supported by Rosetta's pipeline "
                                "(is_split_into_words / offset_mapping / delimiter: pass plain text)")
        if stride is not None:
            raise PipelineError(f"{self.task}: stride (windows over texts longer than the model) is not supported "
                                "yet; texts are truncated to the tokenizer's model_max_length")
        strategy = check_strategy(aggregation_strategy)
        if strategy in ("first", "max", "average") and not self.tokenizer.is_fast:
            raise ValueError('Slow tokenizers cannot handle subwords. Please set the `aggregation_strategy` option'
                             ' to `"simple"` or use a fast tokenizer.')
        if ignore_labels is None:
            ignore_labels = ["O"]
        elif isinstance(ignore_labels, str) or not all(isinstance(x, str) for x in ignore_labels):
            raise TypeError(f"{self.task}: ignore_labels must be a list of label names, got {ignore_labels!r}")
        texts, single = self._texts(inputs)
        truncation = bool(self.tokenizer.model_max_length and self.tokenizer.model_max_length > 0)
        features = self._encode(texts, truncation=truncation or None, offsets=True, special_tokens_mask=True)
        outputs = self._run(features, self._batch_size(batch_size))
        results = [self.postprocess(text, f, o["logits"], strategy, ignore_labels)
                   for text, f, o in zip(texts, features, outputs)]
        return results[0] if single else results

    # -- transformers' postprocessing ------------------------------------------------------------------
    def postprocess(self, sentence: str, feature, logits, strategy: str, ignore_labels) -> list[dict]:
        logits = np.asarray(logits, np.float32)
        maxes = np.max(logits, axis=-1, keepdims=True)
        shifted_exp = np.exp(logits - maxes)
        scores = shifted_exp / shifted_exp.sum(axis=-1, keepdims=True)
        pre_entities = self.gather_pre_entities(sentence, feature.input_ids, scores,
                                                feature.meta.get("offset_mapping"),
                                                feature.meta["special_tokens_mask"], strategy)
        grouped = self.aggregate(pre_entities, strategy)
        return [entity for entity in grouped
                if entity.get("entity", None) not in ignore_labels
                and entity.get("entity_group", None) not in ignore_labels]

    def _subword_prefix(self) -> Optional[str]:
        if isinstance(self.tokenizer, TokenizersTokenizer):
            return getattr(self.tokenizer.backend_tokenizer.model, "continuing_subword_prefix", None)
        return None

    def gather_pre_entities(self, sentence, input_ids, scores, offset_mapping, special_tokens_mask, strategy):
        pre_entities = []
        prefix = self._subword_prefix()
        for idx, token_scores in enumerate(scores):
            if special_tokens_mask[idx]:
                continue
            word = self.tokenizer.convert_ids_to_tokens(int(input_ids[idx]))
            if offset_mapping is not None:
                start_ind, end_ind = offset_mapping[idx]
                word_ref = sentence[start_ind:end_ind]
                if prefix:
                    is_subword = len(word) != len(word_ref)
                else:
                    if strategy in ("first", "average", "max"):
                        warnings.warn("Tokenizer does not support real words, using fallback heuristic", UserWarning)
                    is_subword = start_ind > 0 and " " not in sentence[start_ind - 1:start_ind + 1]
                if int(input_ids[idx]) == self.tokenizer.unk_token_id:
                    word = word_ref
                    is_subword = False
            else:
                start_ind = end_ind = None
                is_subword = False
            pre_entities.append({"word": word, "scores": token_scores, "start": start_ind, "end": end_ind,
                                 "index": idx, "is_subword": is_subword})
        return pre_entities

    def aggregate(self, pre_entities: list[dict], strategy: str) -> list[dict]:
        labels = self.model.config.label_names
        if strategy in ("none", "simple"):
            entities = []
            for pre_entity in pre_entities:
                entity_idx = pre_entity["scores"].argmax()
                score = pre_entity["scores"][entity_idx]
                entities.append({"entity": labels[entity_idx], "score": score, "index": pre_entity["index"],
                                 "word": pre_entity["word"], "start": pre_entity["start"],
                                 "end": pre_entity["end"]})
        else:
            entities = self.aggregate_words(pre_entities, strategy)
        if strategy == "none":
            return entities
        return self.group_entities(entities)

    def aggregate_word(self, entities: list[dict], strategy: str) -> dict:
        labels = self.model.config.label_names
        word = self.tokens_to_string([entity["word"] for entity in entities])
        if strategy == "first":
            scores = entities[0]["scores"]
            idx = scores.argmax()
            score = scores[idx]
            entity = labels[idx]
        elif strategy == "max":
            max_entity = max(entities, key=lambda entity: entity["scores"].max())
            scores = max_entity["scores"]
            idx = scores.argmax()
            score = scores[idx]
            entity = labels[idx]
        else:  # average
            scores = np.stack([entity["scores"] for entity in entities])
            average_scores = np.nanmean(scores, axis=0)
            entity_idx = average_scores.argmax()
            entity = labels[entity_idx]
            score = average_scores[entity_idx]
        return {"entity": entity, "score": score, "word": word, "start": entities[0]["start"],
                "end": entities[-1]["end"]}

    def aggregate_words(self, entities: list[dict], strategy: str) -> list[dict]:
        word_entities = []
        word_group = None
        for entity in entities:
            if word_group is None:
                word_group = [entity]
            elif entity["is_subword"]:
                word_group.append(entity)
            else:
                word_entities.append(self.aggregate_word(word_group, strategy))
                word_group = [entity]
        if word_group is not None:
            word_entities.append(self.aggregate_word(word_group, strategy))
        return word_entities

    def group_sub_entities(self, entities: list[dict]) -> dict:
        entity = entities[0]["entity"].split("-", 1)[-1]
        scores = np.nanmean([entity["score"] for entity in entities])
        tokens = [entity["word"] for entity in entities]
        return {"entity_group": entity, "score": np.mean(scores), "word": self.tokens_to_string(tokens),
                "start": entities[0]["start"], "end": entities[-1]["end"]}

    @staticmethod
    def get_tag(entity_name: str) -> tuple[str, str]:
        if entity_name.startswith("B-"):
            return "B", entity_name[2:]
        if entity_name.startswith("I-"):
            return "I", entity_name[2:]
        return "I", entity_name        # not in B-/I- format: default to I- for continuation

    def group_entities(self, entities: list[dict]) -> list[dict]:
        entity_groups = []
        entity_group_disagg = []
        for entity in entities:
            if not entity_group_disagg:
                entity_group_disagg.append(entity)
                continue
            bi, tag = self.get_tag(entity["entity"])
            last_bi, last_tag = self.get_tag(entity_group_disagg[-1]["entity"])
            if tag == last_tag and bi != "B":
                entity_group_disagg.append(entity)
            else:
                entity_groups.append(self.group_sub_entities(entity_group_disagg))
                entity_group_disagg = [entity]
        if entity_group_disagg:
            entity_groups.append(self.group_sub_entities(entity_group_disagg))
        return entity_groups
