"""GPTBigCode configuration (`model_type: gpt_bigcode`, SantaCoder/StarCoder), importable without JAX.

Fields keep `transformers`' own spelling (`n_embd`, `n_layer`, `n_head`, `n_positions`,
`n_inner`, `activation_function`, ...), so a saved config.json round-trips; the generic names
are read-only aliases, accepted as input keys as `transformers`' `attribute_map` accepts them.
`num_key_value_heads`, which transformers derives from `multi_query` and writes, stays in
`extra`. `attention_softmax_in_fp32` / `scale_attention_softmax_in_fp32` only change where
low-precision softmaxes upcast; in float32 they change nothing, and they round-trip.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class GPTBigCodeConfig(PretrainedConfig):
    model_type: ClassVar[str] = "gpt_bigcode"
    attribute_map: ClassVar[Mapping[str, str]] = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: Optional[int] = None
    activation_function: str = "gelu_pytorch_tanh"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    scale_attn_weights: bool = True
    use_cache: bool = True
    bos_token_id: Optional[int] = 50256
    eos_token_id: Optional[int | tuple[int, ...]] = 50256
    pad_token_id: Optional[int] = None
    attention_softmax_in_fp32: bool = True
    scale_attention_softmax_in_fp32: bool = True
    multi_query: bool = True
    add_cross_attention: bool = False
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.n_inner is not None and self.n_inner < 1:
            self.fail("n_inner", self.n_inner, "null (4 * n_embd) or a positive int")
        if self.n_embd % self.n_head:
            self.fail("n_embd", self.n_embd, f"a multiple of n_head={self.n_head}")
        if self.activation_function not in ACTIVATIONS:
            self.fail("activation_function", self.activation_function, f"one of {list(ACTIVATIONS)}")
        for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
            if not 0.0 <= getattr(self, key) < 1.0:
                self.fail(key, getattr(self, key), "a probability in [0, 1)")
        rate = self.classifier_dropout_rate
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
            self.fail("classifier_dropout", self.extra.get("classifier_dropout"), "null or a probability in [0, 1)")
        if self.layer_norm_epsilon <= 0:
            self.fail("layer_norm_epsilon", self.layer_norm_epsilon, "a positive float")
        if self.add_cross_attention:
            self.fail("add_cross_attention", self.add_cross_attention,
                      "false: Rosetta's GPTBigCode is decoder-only (no cross-attention to an encoder)")

    def to_dict(self) -> dict[str, Any]:
        # Fields the source did not name are written in transformers' spelling (`n_embd`).
        out = super().to_dict()
        return {(key if key in self.source_keys else self.attribute_map.get(key, key)): value
                for key, value in out.items()}

    # -- generic names, read-only ---------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.n_embd

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer

    @property
    def num_attention_heads(self) -> int:
        return self.n_head

    @property
    def max_position_embeddings(self) -> int:
        return self.n_positions

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """One shared key/value head with multi_query, else one per query head."""
        return 1 if self.multi_query else self.n_head

    @property
    def inner_dim(self) -> int:
        return 4 * self.n_embd if self.n_inner is None else self.n_inner

    @property
    def classifier_dropout_rate(self) -> float:
        """GPTBigCodeForTokenClassification's dropout: `classifier_dropout`, else `hidden_dropout`
        (keys only some files carry), else 0.1 — as transformers reads them."""
        for key in ("classifier_dropout", "hidden_dropout"):
            if self.extra.get(key) is not None:
                return self.extra[key]
        return 0.1
