"""GPT-J configuration (`model_type: gptj`), importable without JAX.

Fields keep `transformers`' own spelling (`n_embd`, `n_layer`, `n_head`, `n_positions`,
`n_inner`, `rotary_dim`, ...), so a saved config.json round-trips; the generic names
(`hidden_size`, `num_hidden_layers`, `num_attention_heads`, `max_position_embeddings`) are
read-only aliases, accepted as input keys as `transformers`' `attribute_map` accepts them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class GPTJConfig(PretrainedConfig):
    model_type: ClassVar[str] = "gptj"
    attribute_map: ClassVar[Mapping[str, str]] = {
        "max_position_embeddings": "n_positions",
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }
    # GPT-J has separate q/k/v projections; CodeGen one fused `qkv_proj` (see CodeGenConfig).
    fused_qkv: ClassVar[bool] = False

    vocab_size: int = 50400
    n_positions: int = 2048
    n_embd: int = 4096
    n_layer: int = 28
    n_head: int = 16
    rotary_dim: Optional[int] = 64
    n_inner: Optional[int] = None
    activation_function: str = "gelu_new"
    resid_pdrop: float = 0.0
    embd_pdrop: float = 0.0
    attn_pdrop: float = 0.0
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    use_cache: bool = True
    bos_token_id: Optional[int] = 50256
    eos_token_id: Optional[int | tuple[int, ...]] = 50256
    pad_token_id: Optional[int] = None
    tie_word_embeddings: bool = False

    def validate(self):
        super().validate()
        for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.n_inner is not None and self.n_inner < 1:
            self.fail("n_inner", self.n_inner, "null (4 * n_embd) or a positive int")
        if self.n_embd % self.n_head:
            self.fail("n_embd", self.n_embd, f"a multiple of n_head={self.n_head}")
        if self.rotary_dim is None or self.rotary_dim < 2 or self.rotary_dim % 2 or self.rotary_dim > self.head_dim:
            # transformers builds its sin/cos table n_embd wide when rotary_dim is null, which
            # only fits a single-head model; every released checkpoint sets it.
            self.fail("rotary_dim", self.rotary_dim,
                      f"an even int in [2, head_dim={self.head_dim}] (the rotated channels of each head)")
        if self.activation_function not in ACTIVATIONS:
            self.fail("activation_function", self.activation_function, f"one of {list(ACTIVATIONS)}")
        for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        if self.layer_norm_epsilon <= 0:
            self.fail("layer_norm_epsilon", self.layer_norm_epsilon, "a positive float")

    def to_dict(self) -> dict[str, Any]:
        # The base class writes fields the source did not name under their alias (`hidden_size`);
        # GPT-J's own spelling is the field name (`n_embd`), so keep it.
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
    def inner_dim(self) -> int:
        return 4 * self.n_embd if self.n_inner is None else self.n_inner
