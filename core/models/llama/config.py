"""LLaMA configuration (`model_type: llama`), importable without JAX.

Fields and defaults are `transformers` v5's `LlamaConfig`. Rotary settings live in
`rope_parameters` (v5); configs written by older versions carry `rope_theta` and
`rope_scaling` at the top level instead: those stay in `extra` (so the file round-trips) and
`rope` reads them the way `transformers` standardises them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig

ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "llama3")
# Keys each rope type needs besides rope_type / rope_theta.
_ROPE_REQUIRED = {"linear": ("factor",), "dynamic": ("factor",), "yarn": ("factor",),
                  "llama3": ("factor", "low_freq_factor", "high_freq_factor")}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LlamaConfig(PretrainedConfig):
    model_type: ClassVar[str] = "llama"

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: Optional[int] = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = 1
    eos_token_id: Optional[int | tuple[int, ...]] = 2
    # Tensor-parallel rank of the original training; `transformers` v5 ignores it, so do we.
    pretraining_tp: Optional[int] = 1
    tie_word_embeddings: bool = False
    rope_parameters: Optional[Mapping[str, Any]] = None
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    head_dim: Optional[int] = None

    def validate(self):
        super().validate()
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "max_position_embeddings"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size,
                      f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.num_key_value_heads is not None and (
                self.num_key_value_heads < 1 or self.num_attention_heads % self.num_key_value_heads):
            self.fail("num_key_value_heads", self.num_key_value_heads,
                      f"a positive divisor of num_attention_heads={self.num_attention_heads}")
        if self.head_dim is not None and (self.head_dim < 2 or self.head_dim % 2):
            self.fail("head_dim", self.head_dim, "null or an even int >= 2 (rotary pairs channels)")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        if not 0.0 <= self.attention_dropout < 1.0:
            self.fail("attention_dropout", self.attention_dropout, "a probability in [0, 1)")
        if self.rms_norm_eps <= 0:
            self.fail("rms_norm_eps", self.rms_norm_eps, "a positive float")
        rope = self.rope
        rope_type = rope["rope_type"]
        if rope_type not in ROPE_TYPES:
            self.fail("rope_parameters", dict(rope),
                      f"rope_type one of {list(ROPE_TYPES)} (Rosetta's LLaMA does not implement {rope_type!r} yet)")
        missing = [k for k in _ROPE_REQUIRED.get(rope_type, ()) if rope.get(k) is None]
        if missing:
            self.fail("rope_parameters", dict(rope), f"the keys {missing} for rope_type {rope_type!r}")
        factor = rope.get("factor")
        if factor is not None and (not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 0):
            self.fail("rope_parameters", dict(rope), "a positive number as 'factor'")
        if rope.get("partial_rotary_factor", 1.0) != 1.0:
            self.fail("rope_parameters", dict(rope),
                      "no partial_rotary_factor (LLaMA rotates whole heads; transformers' LLaMA cannot apply "
                      "a partial rotation either)")
        if rope_type == "dynamic" and self.attention_head_dim <= 2:
            self.fail("head_dim", self.attention_head_dim, "> 2 for dynamic rope scaling (exponent dim/(dim-2))")

    # -- derived -------------------------------------------------------------------------------
    @property
    def max_input_length(self) -> int:
        """No hard limit: rotary positions have no table, and `transformers` runs past
        max_position_embeddings (the rope type decides how well; `dynamic` exists for that)."""
        return 2 ** 31 - 1

    @property
    def attention_head_dim(self) -> int:
        """`head_dim`, or hidden_size // num_attention_heads when unset (as transformers fills it)."""
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_attention_heads

    @property
    def kv_heads(self) -> int:
        """`num_key_value_heads`, or num_attention_heads when unset (no grouping)."""
        return self.num_attention_heads if self.num_key_value_heads is None else self.num_key_value_heads

    @property
    def rope(self) -> dict:
        """The rotary settings as `transformers` v5 standardises them: `rope_parameters`, else a
        legacy `rope_scaling` (which wins when both are present, as in transformers), with
        `rope_theta` (default 10000), `rope_type` (from `type` in old files) and, for llama3 /
        yarn, `original_max_position_embeddings` (default max_position_embeddings) filled in."""
        legacy = self.extra.get("rope_scaling")
        source = legacy if legacy else self.rope_parameters
        rope = dict(source or {})
        rope.setdefault("rope_theta", self.extra.get("rope_theta", 10000.0))
        rope.setdefault("rope_type", rope.get("type", "default"))
        if rope["rope_type"] in ("llama3", "yarn"):
            rope.setdefault("original_max_position_embeddings", self.max_position_embeddings)
        return rope
