"""feature-extraction: the encoder's last hidden state per token, as transformers' pipeline returns it."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .base import Pipeline, PipelineError


class FeatureExtractionPipeline(Pipeline):
    """`pipe("a text")` → nested lists of shape [1][length][hidden] (python floats); a list of texts →
    a list of those. `return_tensors=True` gives numpy float32 arrays of shape (1, length, hidden)
    instead (transformers gives torch tensors).

    As in transformers, with batch_size > 1 every row comes back padded to the longest input of its
    batch (the padded positions are what the model computes there); batch_size=1 (the default) gives
    each text's own length.
    """

    task = "feature-extraction"
    head = "base"
    token_outputs = ("last_hidden_state",)
    keep_batch_padding = True

    def _select(self, out, extra, xp):
        return {"last_hidden_state": out.last_hidden_state}

    def __call__(self, inputs, *, truncation=None, tokenize_kwargs: Optional[dict] = None,
                 return_tensors: bool = False, batch_size: Optional[int] = None) -> Any:
        tokenize_kwargs = dict(tokenize_kwargs or {})
        if truncation is not None:
            if "truncation" in tokenize_kwargs:
                raise ValueError("truncation parameter defined twice (given as keyword argument as well as in "
                                 "tokenize_kwargs)")
            tokenize_kwargs["truncation"] = truncation
        unknown = set(tokenize_kwargs) - {"truncation", "max_length", "add_special_tokens"}
        if unknown:
            raise PipelineError(f"{self.task}: tokenize_kwargs {sorted(unknown)} are not supported; Rosetta's "
                                "pipeline takes truncation, max_length and add_special_tokens")
        texts, single = self._texts(inputs)
        features = self._encode(texts, **tokenize_kwargs)
        outputs = self._run(features, self._batch_size(batch_size))
        results = []
        for out in outputs:
            hidden = np.asarray(out["last_hidden_state"], np.float32)[None]
            results.append(hidden if return_tensors else hidden.tolist())
        return results[0] if single else results
