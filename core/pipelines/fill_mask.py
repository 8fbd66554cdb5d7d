"""fill-mask: the most likely tokens at each mask position, as transformers' FillMaskPipeline returns them."""
from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np

from .base import Feature, Pipeline, PipelineError, _next_power_of_two, check_top_k, describe

logger = logging.getLogger(__name__)


class FillMaskPipeline(Pipeline):
    """`pipe("Paris is the [MASK] of France.", top_k=5, targets=None)`.

    One mask → a list of `{"score", "token", "token_str", "sequence"}` (best first); several masks →
    one such list per mask (the sequences then keep the special tokens, as in transformers); a list
    of texts → a list of those (a one-element list is unwrapped, as in transformers). `targets`
    restricts the candidates to those tokens (an unknown target is replaced by the first token of its
    tokenization, with a warning). Scores are each mask position's softmax probability.
    """

    task = "fill-mask"
    head = "masked-lm"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.tokenizer.mask_token_id is None:
            raise PipelineError(f"{self.task}: the tokenizer at {self.tokenizer.name_or_path} does not define a "
                                "mask_token; fill-mask needs a masked-LM tokenizer (e.g. BERT's [MASK])")

    def _extra_inputs(self, chunk: Sequence[Feature], rows: int, length: int):
        # The mask positions of each row, padded to a power of two so the shape set stays small.
        most = max(len(f.meta["mask_positions"]) for f in chunk)
        positions = np.zeros((rows, _next_power_of_two(most)), np.int32)
        for row, feature in enumerate(chunk):
            found = feature.meta["mask_positions"]
            positions[row, :len(found)] = found
        return positions

    def _select(self, out, positions, xp):
        picked = xp.take_along_axis(out.logits, positions[:, :, None], axis=1)     # (rows, masks, vocab)
        return {"probs": xp.softmax(xp.float32(picked), axis=-1)}

    def get_target_ids(self, targets) -> np.ndarray:
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise TypeError(f"{self.task}: targets must be a string or a list of strings, got {describe(targets)}")
        vocab = self.tokenizer.get_vocab()
        target_ids = []
        for target in targets:
            id_ = vocab.get(target)
            if id_ is None:
                input_ids = self.tokenizer(target, add_special_tokens=False, return_attention_mask=False,
                                           return_token_type_ids=False, max_length=1, truncation=True)["input_ids"]
                if len(input_ids) == 0:
                    logger.warning("The specified target token `%s` does not exist in the model vocabulary. "
                                   "We cannot replace it with anything meaningful, ignoring it", target)
                    continue
                id_ = input_ids[0]
                logger.warning("The specified target token `%s` does not exist in the model vocabulary. "
                               "Replacing with `%s`.", target, self.tokenizer.convert_ids_to_tokens(id_))
            target_ids.append(id_)
        target_ids = list(set(target_ids))
        if len(target_ids) == 0:
            raise ValueError("At least one target must be provided when passed.")
        return np.array(target_ids)

    def __call__(self, inputs, *, top_k: int = 5, targets=None, tokenizer_kwargs: Optional[dict] = None,
                 batch_size: Optional[int] = None) -> Any:
        top_k = check_top_k(top_k)
        target_ids = self.get_target_ids(targets) if targets is not None else None
        tokenizer_kwargs = dict(tokenizer_kwargs or {})
        unknown = set(tokenizer_kwargs) - {"truncation", "max_length"}
        if unknown:
            raise PipelineError(f"{self.task}: tokenizer_kwargs {sorted(unknown)} are not supported; Rosetta's "
                                "pipeline takes truncation and max_length")
        texts, single = self._texts(inputs)
        features = self._encode(texts, **tokenizer_kwargs)
        mask_id = self.tokenizer.mask_token_id
        for index, feature in enumerate(features):
            feature.meta["mask_positions"] = [i for i, t in enumerate(feature.input_ids) if t == mask_id]
            if not feature.meta["mask_positions"]:
                where = "the input" if single else f"input {index}"
                raise PipelineError(f"{self.task}: No mask_token ({self.tokenizer.mask_token}) found on {where}: "
                                    f"{texts[index][:60]!r}")
        outputs = self._run(features, self._batch_size(batch_size))
        results = [self.postprocess(f, o, top_k, target_ids) for f, o in zip(features, outputs)]
        if single or len(results) == 1:
            return results[0]
        return results

    def postprocess(self, feature: Feature, output, top_k: int, target_ids: Optional[np.ndarray]):
        if target_ids is not None and target_ids.shape[0] < top_k:
            top_k = target_ids.shape[0]
        input_ids = np.asarray(feature.input_ids)
        masked_index = feature.meta["mask_positions"]
        probs = output["probs"][:len(masked_index)]
        if target_ids is not None:
            probs = probs[..., target_ids]
        top_k = min(top_k, probs.shape[-1])
        single_mask = len(masked_index) == 1
        result = []
        for i, row_probs in enumerate(probs):
            order = np.argsort(-row_probs, kind="stable")[:top_k]
            row = []
            for p in order:
                v = float(row_probs[p])
                token = int(target_ids[p]) if target_ids is not None else int(p)
                tokens = input_ids.copy()
                tokens[masked_index[i]] = token
                tokens = tokens[np.where(tokens != self.tokenizer.pad_token_id)]
                sequence = self.tokenizer.decode(tokens, skip_special_tokens=single_mask)
                row.append({"score": v, "token": token, "token_str": self.tokenizer.decode([token]),
                            "sequence": sequence})
            result.append(row)
        if single_mask:
            return result[0]
        return result
