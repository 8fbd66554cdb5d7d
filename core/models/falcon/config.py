"""Falcon configuration (`model_type: falcon`), importable without JAX.

Fields and defaults are `transformers` v5's `FalconConfig`; `num_kv_heads` and
`ffn_hidden_size` stay null when the file leaves them so (the derived `kv_heads` and `ffn_size`
fill them as transformers does). Rotary settings live in `rope_parameters` (v5); top-level
`rope_theta` / `rope_scaling` from older files stay in `extra` and are read as transformers
standardises them. The old `n_embed` spelling of `hidden_size` is accepted.

The variants, and what each means for the fused `query_key_value` projection:
- `new_decoder_architecture` (Falcon-40B/180B): grouped heads, laid out per kv group as
  [q_1 .. q_g | k | v]; parallel attention and MLP, with two LayerNorms (ln_attn, ln_mlp)
  unless `num_ln_in_parallel_attn` is 1.
- `multi_query` (Falcon-7B): all query heads, then one k and one v head.
- neither: per head [q | k | v] (as BLOOM / GPT-NeoX).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig
from core.models.llama.config import ROPE_TYPES, _ROPE_REQUIRED


@dataclasses.dataclass(frozen=True, kw_only=True)
class FalconConfig(PretrainedConfig):
    model_type: ClassVar[str] = "falcon"
    attribute_map: ClassVar[Mapping[str, str]] = {"n_embed": "hidden_size"}

    vocab_size: int = 65024
    hidden_size: int = 4544
    num_hidden_layers: int = 32
    num_attention_heads: int = 71
    num_ln_in_parallel_attn: Optional[int] = None
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    use_cache: bool = True
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    num_kv_heads: Optional[int] = None
    alibi: bool = False
    new_decoder_architecture: bool = False
    multi_query: bool = True
    parallel_attn: bool = True
    bias: bool = False
    max_position_embeddings: int = 2048
    rope_parameters: Optional[Mapping[str, Any]] = None
    bos_token_id: Optional[int] = 11
    eos_token_id: Optional[int | tuple[int, ...]] = 11
    pad_token_id: Optional[int] = None
    ffn_hidden_size: Optional[int] = None
    activation: str = "gelu"
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "max_position_embeddings"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size,
                      f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.ffn_hidden_size is not None and self.ffn_hidden_size < 1:
            self.fail("ffn_hidden_size", self.ffn_hidden_size, "null (4 * hidden_size) or a positive int")
        if self.activation not in ACTIVATIONS:
            self.fail("activation", self.activation, f"one of {list(ACTIVATIONS)}")
        for key in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                self.fail(key, getattr(self, key), "a probability in [0, 1)")
        rate = self.classifier_dropout_rate
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
            self.fail("classifier_dropout", self.extra.get("classifier_dropout"), "null or a probability in [0, 1)")
        if self.layer_norm_epsilon <= 0:
            self.fail("layer_norm_epsilon", self.layer_norm_epsilon, "a positive float")
        if self.new_decoder_architecture:
            if self.num_kv_heads is not None and (
                    self.num_kv_heads < 1 or self.num_attention_heads % self.num_kv_heads):
                self.fail("num_kv_heads", self.num_kv_heads,
                          f"a positive divisor of num_attention_heads={self.num_attention_heads}")
            if not self.parallel_attn:
                self.fail("parallel_attn", self.parallel_attn,
                          "true with new_decoder_architecture (its blocks are parallel; transformers fails otherwise)")
        elif not self.multi_query and self.num_kv_heads not in (None, self.num_attention_heads):
            self.fail("num_kv_heads", self.num_kv_heads,
                      f"null or num_attention_heads={self.num_attention_heads} without new_decoder_architecture "
                      "or multi_query (the fused projection then holds a k and v per head)")
        if self.num_ln_in_parallel_attn not in (None, 1, 2):
            self.fail("num_ln_in_parallel_attn", self.num_ln_in_parallel_attn, "null, 1 or 2")
        if (self.num_ln_in_parallel_attn == 2 and self.parallel_attn and not self.new_decoder_architecture):
            self.fail("num_ln_in_parallel_attn", self.num_ln_in_parallel_attn,
                      "null or 1 without new_decoder_architecture (transformers builds ln_attn/ln_mlp "
                      "but its forward reads input_layernorm)")
        rope = self.rope
        rope_type = rope["rope_type"]
        if rope_type not in ROPE_TYPES:
            self.fail("rope_parameters", dict(rope),
                      f"rope_type one of {list(ROPE_TYPES)} (Rosetta's Falcon does not implement {rope_type!r} yet)")
        missing = [k for k in _ROPE_REQUIRED.get(rope_type, ()) if rope.get(k) is None]
        if missing:
            self.fail("rope_parameters", dict(rope), f"the keys {missing} for rope_type {rope_type!r}")
        if rope.get("partial_rotary_factor", 1.0) != 1.0:
            self.fail("rope_parameters", dict(rope),
                      "no partial_rotary_factor (Falcon rotates whole heads; transformers' Falcon cannot apply "
                      "a partial rotation either)")
        if not self.alibi and (self.head_dim < 2 or self.head_dim % 2):
            self.fail("hidden_size", self.hidden_size, "a head_dim that is even (rotary pairs channels)")

    def to_dict(self) -> dict[str, Any]:
        # A config built in code writes `hidden_size` (transformers' spelling), not `n_embed`.
        out = super().to_dict()
        return {(key if key in self.source_keys else self.attribute_map.get(key, key)): value
                for key, value in out.items()}

    # -- derived -------------------------------------------------------------------------------
    @property
    def max_input_length(self) -> int:
        """No hard limit: neither rotary nor ALiBi positions have a table (as in transformers)."""
        return 2 ** 31 - 1

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def kv_heads(self) -> int:
        """Key/value heads: num_kv_heads (default all) in the new architecture, 1 with
        multi_query, else one per query head."""
        if self.new_decoder_architecture:
            return self.num_attention_heads if self.num_kv_heads is None else self.num_kv_heads
        return 1 if self.multi_query else self.num_attention_heads

    @property
    def ffn_size(self) -> int:
        return 4 * self.hidden_size if self.ffn_hidden_size is None else self.ffn_hidden_size

    @property
    def two_layernorms(self) -> bool:
        """Parallel blocks of the new architecture normalise attention and MLP inputs separately
        (ln_attn, ln_mlp) unless num_ln_in_parallel_attn is 1 (transformers defaults it to 2)."""
        layernorms = self.num_ln_in_parallel_attn
        if layernorms is None and self.new_decoder_architecture:
            layernorms = 2
        return self.parallel_attn and layernorms == 2

    @property
    def classifier_dropout_rate(self) -> float:
        """FalconForTokenClassification's dropout: a `classifier_dropout` key if the file has one,
        else hidden_dropout (as transformers reads it)."""
        rate = self.extra.get("classifier_dropout")
        return self.hidden_dropout if rate is None else rate

    @property
    def rope(self) -> dict:
        """The rotary settings as transformers v5 standardises them (see LlamaConfig.rope)."""
        legacy = self.extra.get("rope_scaling")
        rope = dict(legacy or self.rope_parameters or {})
        rope.setdefault("rope_theta", self.extra.get("rope_theta", 10000.0))
        rope.setdefault("rope_type", rope.get("type", "default"))
        if rope["rope_type"] in ("llama3", "yarn"):
            rope.setdefault("original_max_position_embeddings", self.max_position_embeddings)
        return rope
