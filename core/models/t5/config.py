"""T5 family configurations (`t5`, `mt5`, `umt5`), importable without JAX.

Fields and defaults are `transformers` v5's `T5Config` / `MT5Config` / `UMT5Config`. v5 always
reports `tie_word_embeddings: true` for this family and records what older configs meant by
`tie_word_embeddings: false` in `scale_decoder_outputs` (false: no d_model**-0.5 rescaling
before the LM head, and a separate `lm_head.weight` in the checkpoint). `dense_act_fn` and
`is_gated_act`, which `transformers` derives from `feed_forward_proj` and writes out, stay in
`extra` (so the file round-trips); `feed_forward_proj` is the source of truth, as there.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class T5Config(PretrainedConfig):
    model_type: ClassVar[str] = "t5"
    attribute_map: ClassVar[dict] = {"hidden_size": "d_model", "num_attention_heads": "num_heads",
                                     "num_hidden_layers": "num_layers", "head_dim": "d_kv"}
    # UMT5: every self-attention layer owns its relative position bias (T5: the first layer's
    # table serves every layer of its stack).
    bias_in_every_layer: ClassVar[bool] = False
    # LongT5: the encoder runs blocked local / transient-global attention (`LongT5Stack`).
    long_encoder: ClassVar[bool] = False

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: Optional[int] = None
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    initializer_factor: float = 1.0
    feed_forward_proj: str = "relu"
    is_encoder_decoder: bool = True
    use_cache: bool = True
    pad_token_id: Optional[int] = 0
    eos_token_id: Optional[int | tuple[int, ...]] = 1
    decoder_start_token_id: Optional[int] = None
    classifier_dropout: float = 0.0
    is_decoder: bool = False
    scale_decoder_outputs: Optional[bool] = None

    def validate(self):
        super().validate()
        for key in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads",
                    "relative_attention_num_buckets", "relative_attention_max_distance"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        if self.num_decoder_layers is not None and self.num_decoder_layers < 1:
            self.fail("num_decoder_layers", self.num_decoder_layers, "null or a positive int")
        if self.relative_attention_num_buckets < 4:
            self.fail("relative_attention_num_buckets", self.relative_attention_num_buckets,
                      "an int >= 4 (half per direction, half of those exact)")
        parts = self.feed_forward_proj.split("-")
        if (len(parts) > 1 and parts[0] != "gated") or len(parts) > 2:
            self.fail("feed_forward_proj", self.feed_forward_proj,
                      "'gated-{ACT_FN}' or '{ACT_FN}', e.g. 'gated-gelu' or 'relu'")
        if self.dense_act_fn not in ACTIVATIONS:
            self.fail("feed_forward_proj", self.feed_forward_proj, f"an activation among {list(ACTIVATIONS)}")
        for key in ("dropout_rate", "classifier_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                self.fail(key, getattr(self, key), "a probability in [0, 1)")
        if self.layer_norm_epsilon <= 0:
            self.fail("layer_norm_epsilon", self.layer_norm_epsilon, "a positive float")
        if self.is_decoder:
            self.fail("is_decoder", self.is_decoder,
                      "false: Rosetta builds the encoder and the decoder stacks itself (a standalone "
                      "T5 decoder is not supported)")

    # -- derived -------------------------------------------------------------------------------
    @property
    def max_input_length(self) -> int:
        """Relative positions: no table, no hard limit."""
        return 2 ** 31 - 1

    @property
    def decoder_layers(self) -> int:
        return self.num_layers if self.num_decoder_layers is None else self.num_decoder_layers

    @property
    def dense_act_fn(self) -> str:
        """The activation as `transformers` derives it (`gated-gelu` means the tanh gelu)."""
        if self.feed_forward_proj == "gated-gelu":
            return "gelu_new"
        return self.feed_forward_proj.split("-")[-1]

    @property
    def is_gated_act(self) -> bool:
        return self.feed_forward_proj.split("-")[0] == "gated"

    @property
    def scales_decoder_outputs(self) -> bool:
        """`scale_decoder_outputs`, or (configs written before v5) whether tie_word_embeddings is not false."""
        if self.scale_decoder_outputs is not None:
            return self.scale_decoder_outputs
        return self.tie_word_embeddings is not False

    @property
    def ties_lm_head(self) -> bool:
        """The LM head reads `shared` (tied) exactly when the decoder outputs are rescaled: original T5;
        v1.1 / mT5 / UMT5 / Flan checkpoints carry their own `lm_head.weight`."""
        return self.scales_decoder_outputs

    @property
    def head_dim(self) -> int:
        return self.d_kv

    @property
    def inner_dim(self) -> int:
        return self.num_heads * self.d_kv


@dataclasses.dataclass(frozen=True, kw_only=True)
class MT5Config(T5Config):
    model_type: ClassVar[str] = "mt5"

    vocab_size: int = 250112
    d_ff: int = 1024
    num_layers: int = 8
    num_heads: int = 6
    feed_forward_proj: str = "gated-gelu"
    bos_token_id: Optional[int] = None
    decoder_start_token_id: Optional[int] = 0

    @property
    def scales_decoder_outputs(self) -> bool:
        """`transformers`' MT5ForConditionalGeneration never rescales before its LM head."""
        return False

    @property
    def ties_lm_head(self) -> bool:
        """Published mT5 checkpoints say `tie_word_embeddings: false` and carry `lm_head.weight`."""
        return self.tie_word_embeddings


@dataclasses.dataclass(frozen=True, kw_only=True)
class UMT5Config(T5Config):
    model_type: ClassVar[str] = "umt5"
    bias_in_every_layer: ClassVar[bool] = True

    vocab_size: int = 250112
    d_ff: int = 1024
    num_layers: int = 8
    num_heads: int = 6
    feed_forward_proj: str = "gated-gelu"
    decoder_start_token_id: Optional[int] = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class LongT5Config(T5Config):
    """LongT5: T5's decoder; the encoder attends within blocks of `local_radius + 1` tokens (each
    block to itself and its two neighbours, at most `local_radius` away), and with
    `encoder_attention_type: transient-global` also to one summary token per `global_block_size`
    tokens. `transformers` v5's LongT5Config has no `decoder_start_token_id`/`classifier_dropout`
    (published checkpoints write `decoder_start_token_id: 0`); the inherited fields keep it."""
    model_type: ClassVar[str] = "longt5"
    long_encoder: ClassVar[bool] = True

    local_radius: int = 127
    global_block_size: int = 16
    encoder_attention_type: str = "local"

    def validate(self):
        super().validate()
        if self.encoder_attention_type not in ("local", "transient-global"):
            self.fail("encoder_attention_type", self.encoder_attention_type, "'local' or 'transient-global'")
        if self.local_radius < 0:
            self.fail("local_radius", self.local_radius, "an int >= 0 (blocks of local_radius + 1 tokens)")
        if self.global_block_size < 1:
            self.fail("global_block_size", self.global_block_size, "a positive int")
