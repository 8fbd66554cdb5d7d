"""MPNet configuration (`model_type: mpnet`), importable without JAX."""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig

# `transformers` hard-codes MPNet's padding index to 1 (`MPNetEmbeddings.padding_idx = 1`),
# whatever `pad_token_id` says: position ids are counted from it, and token id 1 marks padding.
PADDING_IDX = 1
# ... and buckets relative positions into 32 buckets up to distance 128, whatever
# `relative_attention_num_buckets` says (`compute_position_bias` ignores the config value; it
# only sizes the bias table).
NUM_BUCKETS = 32
MAX_DISTANCE = 128


@dataclasses.dataclass(frozen=True, kw_only=True)
class MPNetConfig(PretrainedConfig):
    model_type: ClassVar[str] = "mpnet"

    vocab_size: int = 30527
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    relative_attention_num_buckets: int = 32
    pad_token_id: Optional[int] = 1
    bos_token_id: Optional[int] = 0
    eos_token_id: Optional[int | tuple[int, ...]] = 2

    def validate(self):
        super().validate()
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.hidden_size % self.num_attention_heads:
            self.fail("hidden_size", self.hidden_size,
                      f"a multiple of num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            self.fail("hidden_act", self.hidden_act, f"one of {list(ACTIVATIONS)}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        if self.vocab_size <= PADDING_IDX:
            self.fail("vocab_size", self.vocab_size, f"more than {PADDING_IDX} (MPNet's padding token id)")
        if self.max_position_embeddings < PADDING_IDX + 2:
            self.fail("max_position_embeddings", self.max_position_embeddings,
                      f"at least {PADDING_IDX + 2}: positions start after MPNet's padding index {PADDING_IDX}")
        if self.relative_attention_num_buckets < NUM_BUCKETS:
            self.fail("relative_attention_num_buckets", self.relative_attention_num_buckets,
                      f"at least {NUM_BUCKETS}: transformers' MPNet always buckets relative positions into "
                      f"{NUM_BUCKETS} buckets, so a smaller table is indexed out of range")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_input_length(self) -> int:
        """The longest input: positions run PADDING_IDX + 1 .. max_position_embeddings - 1."""
        return self.max_position_embeddings - PADDING_IDX - 1
