"""OpenAI GPT configuration (`model_type: openai-gpt`), importable without JAX.

Fields keep `transformers`' own spelling (`n_embd`, `n_layer`, `n_head`, `n_positions`, `afn`),
so a saved config.json round-trips; the generic names are read-only aliases, accepted as input
keys as `transformers`' `attribute_map` accepts them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from core.configuration import PretrainedConfig

# `transformers`' OpenAI GPT has its own activation table: its "gelu" is the tanh approximation.
AFN = {"relu": "relu", "silu": "silu", "gelu": "gelu_new", "swish": "silu"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class OpenAIGPTConfig(PretrainedConfig):
    model_type: ClassVar[str] = "openai-gpt"
    attribute_map: ClassVar[Mapping[str, str]] = {
        "max_position_embeddings": "n_positions",
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }

    vocab_size: int = 40478
    n_positions: int = 512
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    afn: str = "gelu"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    # The multiple-choice summary of OpenAIGPTDoubleHeadsModel (not a Rosetta head); kept so
    # config.json round-trips.
    summary_type: str = "cls_index"
    summary_use_proj: bool = True
    summary_activation: Optional[str] = None
    summary_proj_to_labels: bool = True
    summary_first_dropout: float = 0.1
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int | tuple[int, ...]] = None
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.n_embd % self.n_head:
            self.fail("n_embd", self.n_embd, f"a multiple of n_head={self.n_head}")
        if self.afn not in AFN:
            self.fail("afn", self.afn, f"one of {list(AFN)} (OpenAI GPT's own activation table)")
        for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_first_dropout"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        if self.layer_norm_epsilon <= 0:
            self.fail("layer_norm_epsilon", self.layer_norm_epsilon, "a positive float")

    def to_dict(self) -> dict[str, Any]:
        # Keep OpenAI GPT's own spelling (`n_embd`) for fields the source did not name.
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
    def activation(self) -> str:
        """The Hugging Face activation name `afn` means here (`gelu` is the tanh form)."""
        return AFN[self.afn]
