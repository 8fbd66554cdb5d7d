"""GPT-Neo configuration (`model_type: gpt_neo`), importable without JAX.

Fields and defaults are `transformers` v5's `GPTNeoConfig`, in its spelling (`num_layers`,
`num_heads`, `attention_types`, `window_size`, ...); `num_hidden_layers` and
`num_attention_heads` are read-only aliases, accepted as input keys as `transformers`'
`attribute_map` accepts them. `attention_types` is run-length encoded
(`[[["global", "local"], 12]]` = 24 alternating layers); `attention_layers` expands it.
The expanded list `transformers` also writes into config.json stays in `extra` (it round-trips).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig

ATTENTION_TYPES = ("global", "local")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GPTNeoConfig(PretrainedConfig):
    model_type: ClassVar[str] = "gpt_neo"
    attribute_map: ClassVar[Mapping[str, str]] = {"num_attention_heads": "num_heads",
                                                  "num_hidden_layers": "num_layers"}

    vocab_size: int = 50257
    max_position_embeddings: int = 2048
    hidden_size: int = 2048
    num_layers: int = 24
    attention_types: Optional[tuple[Any, ...]] = None
    num_heads: int = 16
    intermediate_size: Optional[int] = None
    window_size: int = 256
    activation_function: str = "gelu_new"
    resid_dropout: float = 0.0
    embed_dropout: float = 0.0
    attention_dropout: float = 0.0
    classifier_dropout: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    use_cache: bool = True
    bos_token_id: Optional[int] = 50256
    eos_token_id: Optional[int | tuple[int, ...]] = 50256
    pad_token_id: Optional[int] = None
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "max_position_embeddings", "hidden_size", "num_layers", "num_heads",
                    "window_size"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.intermediate_size is not None and self.intermediate_size < 1:
            self.fail("intermediate_size", self.intermediate_size, "null (4 * hidden_size) or a positive int")
        if self.hidden_size % self.num_heads:
            self.fail("hidden_size", self.hidden_size, f"a multiple of num_heads={self.num_heads}")
        if self.activation_function not in ACTIVATIONS:
            self.fail("activation_function", self.activation_function, f"one of {list(ACTIVATIONS)}")
        for key in ("resid_dropout", "embed_dropout", "attention_dropout", "classifier_dropout"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        if self.layer_norm_epsilon <= 0:
            self.fail("layer_norm_epsilon", self.layer_norm_epsilon, "a positive float")
        expected = '[[["global", "local"], repeats], ...] with "global" / "local" layer types'
        for item in self._attention_types:
            if (not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], (list, tuple))
                    or not isinstance(item[1], int) or any(t not in ATTENTION_TYPES for t in item[0])):
                self.fail("attention_types", self.attention_types, expected)
        if len(self.attention_layers) != self.num_layers:
            self.fail("attention_types", self.attention_types,
                      f"{self.num_layers} layer types in all (num_layers), not {len(self.attention_layers)}")

    def to_dict(self) -> dict[str, Any]:
        # The base class writes fields the source did not name under their alias; GPT-Neo's own
        # spelling is the field name (`num_layers`), so keep it.
        out = super().to_dict()
        return {(key if key in self.source_keys else self.attribute_map.get(key, key)): value
                for key, value in out.items()}

    # -- derived -------------------------------------------------------------------------------
    @property
    def _attention_types(self) -> tuple:
        return self.attention_types if self.attention_types is not None else ((("global", "local"), 12),)

    @property
    def attention_layers(self) -> tuple[str, ...]:
        """One attention type per layer, as `transformers` expands `attention_types`."""
        return tuple(t for kinds, repeats in self._attention_types for _ in range(repeats) for t in kinds)

    @property
    def local_layers(self) -> tuple[bool, ...]:
        return tuple(t == "local" for t in self.attention_layers)

    @property
    def num_hidden_layers(self) -> int:
        return self.num_layers

    @property
    def num_attention_heads(self) -> int:
        return self.num_heads

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def inner_dim(self) -> int:
        return 4 * self.hidden_size if self.intermediate_size is None else self.intermediate_size
