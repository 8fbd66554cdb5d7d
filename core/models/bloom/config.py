"""BLOOM configuration (`model_type: bloom`), importable without JAX.

Fields keep `transformers`' own spelling (`n_layer`, `n_head`), so a saved config.json
round-trips; the generic names (`num_hidden_layers`, `num_attention_heads`) and the old
`n_embed` (bigscience checkpoints' spelling of `hidden_size`) are accepted as input keys, as
`transformers` accepts them. BLOOM has no position table (ALiBi), so no input length limit.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class BloomConfig(PretrainedConfig):
    model_type: ClassVar[str] = "bloom"
    attribute_map: ClassVar[Mapping[str, str]] = {
        "num_hidden_layers": "n_layer",
        "num_attention_heads": "n_head",
        "n_embed": "hidden_size",
    }

    vocab_size: int = 250880
    hidden_size: int = 64
    n_layer: int = 2
    n_head: int = 8
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    use_cache: bool = True
    bos_token_id: Optional[int] = 1
    eos_token_id: Optional[int | tuple[int, ...]] = 2
    pad_token_id: Optional[int] = None
    apply_residual_connection_post_layernorm: bool = False
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    # Tensor-parallel rank of the original training; only matters with slow_but_exact (refused).
    pretraining_tp: int = 1
    slow_but_exact: bool = False
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "hidden_size", "n_layer", "n_head", "pretraining_tp"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.hidden_size % self.n_head:
            self.fail("hidden_size", self.hidden_size, f"a multiple of n_head={self.n_head}")
        for key in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                self.fail(key, getattr(self, key), "a probability in [0, 1)")
        rate = self.classifier_dropout_rate
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
            self.fail("classifier_dropout", self.extra.get("classifier_dropout"), "null or a probability in [0, 1)")
        if self.layer_norm_epsilon <= 0:
            self.fail("layer_norm_epsilon", self.layer_norm_epsilon, "a positive float")
        if self.slow_but_exact and self.pretraining_tp > 1:
            self.fail("slow_but_exact", self.slow_but_exact,
                      "false when pretraining_tp > 1: transformers' slow path splits the output projections by "
                      "tensor-parallel slices and drops their biases; Rosetta implements the standard path only")

    def to_dict(self) -> dict[str, Any]:
        # Fields the source did not name are written in transformers' spelling (`n_layer`, not
        # the generic alias the base class would pick; `hidden_size`, not the old `n_embed`).
        out = super().to_dict()
        return {(key if key in self.source_keys else self.attribute_map.get(key, key)): value
                for key, value in out.items()}

    # -- generic names, read-only ---------------------------------------------------------------
    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer

    @property
    def num_attention_heads(self) -> int:
        return self.n_head

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_head

    @property
    def num_key_value_heads(self) -> int:
        return self.n_head

    @property
    def max_input_length(self) -> int:
        """No hard limit: ALiBi has no position table (as in `transformers`)."""
        return 2 ** 31 - 1

    @property
    def classifier_dropout_rate(self) -> float:
        """BloomForTokenClassification's dropout: a `classifier_dropout` key if the file has one,
        else hidden_dropout (as transformers reads it)."""
        rate = self.extra.get("classifier_dropout")
        return self.hidden_dropout if rate is None else rate
