"""GPT-NeoX configuration (`model_type: gpt_neox`), importable without JAX.

Fields and defaults are `transformers` v5's `GPTNeoXConfig`. Rotary settings live in
`rope_parameters` (v5: `rope_theta`, `partial_rotary_factor`, `rope_type`, scaling keys);
configs written by older versions carry `rotary_pct`, `rotary_emb_base` and `rope_scaling` at
the top level instead: those stay in `extra` (so the file round-trips) and `rope` reads them
the way `transformers` standardises them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig
from core.models.llama.config import ROPE_TYPES, _ROPE_REQUIRED


@dataclasses.dataclass(frozen=True, kw_only=True)
class GPTNeoXConfig(PretrainedConfig):
    model_type: ClassVar[str] = "gpt_neox"

    vocab_size: int = 50432
    hidden_size: int = 6144
    num_hidden_layers: int = 44
    num_attention_heads: int = 64
    intermediate_size: int = 24576
    hidden_act: str = "gelu"
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    classifier_dropout: float = 0.1
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    use_cache: bool = True
    bos_token_id: Optional[int] = 0
    eos_token_id: Optional[int | tuple[int, ...]] = 2
    pad_token_id: Optional[int] = None
    tie_word_embeddings: bool = False
    use_parallel_residual: bool = True
    rope_parameters: Optional[Mapping[str, Any]] = None
    attention_bias: bool = True
    is_decoder: bool = False

    def validate(self):
        super().validate()
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "max_position_embeddings"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size,
                      f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        for key in ("attention_dropout", "hidden_dropout", "classifier_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                self.fail(key, getattr(self, key), "a probability in [0, 1)")
        if self.layer_norm_eps <= 0:
            self.fail("layer_norm_eps", self.layer_norm_eps, "a positive float")
        rope = self.rope
        rope_type = rope["rope_type"]
        if rope_type not in ROPE_TYPES:
            self.fail("rope_parameters", dict(rope),
                      f"rope_type one of {list(ROPE_TYPES)} (Rosetta's GPT-NeoX does not implement {rope_type!r} yet)")
        missing = [k for k in _ROPE_REQUIRED.get(rope_type, ()) if rope.get(k) is None]
        if missing:
            self.fail("rope_parameters", dict(rope), f"the keys {missing} for rope_type {rope_type!r}")
        factor = rope.get("factor")
        if factor is not None and (not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 0):
            self.fail("rope_parameters", dict(rope), "a positive number as 'factor'")
        fraction = rope["partial_rotary_factor"]
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
            self.fail("rope_parameters", dict(rope), "a partial_rotary_factor in (0, 1]")
        if self.rotary_dim < 2 or self.rotary_dim % 2:
            self.fail("rope_parameters", dict(rope),
                      f"a partial_rotary_factor giving an even rotary dimension >= 2 (head_dim {self.head_dim} * "
                      f"{fraction} = {self.rotary_dim}; rotary pairs channels)")
        if rope_type == "dynamic" and self.rotary_dim <= 2:
            self.fail("rope_parameters", dict(rope), "a rotary dimension > 2 for dynamic rope scaling (dim/(dim-2))")

    # -- derived -------------------------------------------------------------------------------
    @property
    def max_input_length(self) -> int:
        """No hard limit: rotary positions have no table (as in `transformers`)."""
        return 2 ** 31 - 1

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_key_value_heads(self) -> int:
        return self.num_attention_heads

    @property
    def rotary_dim(self) -> int:
        """The rotated channels of each head: int(head_dim * partial_rotary_factor), as transformers."""
        return int(self.head_dim * self.rope["partial_rotary_factor"])

    @property
    def rope(self) -> dict:
        """The rotary settings as `transformers` v5 standardises them: a legacy `rope_scaling`
        (wins when present) else `rope_parameters`, with `rope_theta` (legacy `rotary_emb_base`,
        default 10000), `partial_rotary_factor` (legacy `rotary_pct`, default 0.25), `rope_type`
        (from `type` in old files) and, for llama3 / yarn, `original_max_position_embeddings`."""
        legacy = self.extra.get("rope_scaling")
        rope = dict(legacy or self.rope_parameters or {})
        rope.setdefault("rope_theta", self.extra.get("rotary_emb_base", 10000.0))
        rope.setdefault("partial_rotary_factor", self.extra.get("rotary_pct", 0.25))
        rope.setdefault("rope_type", rope.get("type", "default"))
        if rope["rope_type"] in ("llama3", "yarn"):
            rope.setdefault("original_max_position_embeddings", self.max_position_embeddings)
        return rope
