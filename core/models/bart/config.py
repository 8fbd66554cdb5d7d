"""BART-family configurations, importable without JAX.

One set of fields (as `transformers`' `BartConfig` spells them) serves every model type of the
family; the model types differ by their defaults and by architecture switches that
`transformers` hard-codes per class (class-level constants here, not config keys):

- `normalize_before`: pre-norm blocks plus a final `layer_norm` after the encoder and decoder
  (mBART, Pegasus, M2M100, Blenderbot); post-norm otherwise.
- `has_layernorm_embedding`: a LayerNorm over the embeddings (BART, mBART, PLBart,
  BlenderbotSmall; BlenderbotSmall's decoder normalises the token embeddings before the
  positions are added).
- `position_kind`: "learned" (a table with `position_offset` rows in front: 2 for
  BART/mBART/PLBart, 0 for Blenderbot), "sinusoidal" (Marian/Pegasus: sin | cos halves, not a
  parameter here) or "sinusoidal-padded" (M2M100: fairseq positions counted from the padding
  index over the non-pad tokens).
- `shift_style`: how labels become decoder inputs: "start" (prepend decoder_start_token_id)
  or "last-token" (mBART/PLBart/FSMT: the last non-pad token of each row starts it).
- `shared_table`: one `shared` token table (False: FSMT, whose encoder and decoder own tables of
  their own vocabulary sizes, and whose decoder ends in `output_projection`, so its "base" model
  already returns vocabulary logits).

MVP adds prompts (`use_prompt`): per-layer key/value prefixes of the self- and cross-attention.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from core.configuration import ACTIVATIONS, PretrainedConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class BartConfig(PretrainedConfig):
    model_type: ClassVar[str] = "bart"
    attribute_map: ClassVar = {"num_attention_heads": "encoder_attention_heads", "hidden_size": "d_model",
                               "num_hidden_layers": "encoder_layers"}
    normalize_before: ClassVar[bool] = False
    has_layernorm_embedding: ClassVar[bool] = True
    decoder_layernorm_embedding_first: ClassVar[bool] = False
    position_kind: ClassVar[str] = "learned"
    position_offset: ClassVar[int] = 2
    shift_style: ClassVar[str] = "start"
    has_final_logits_bias: ClassVar[bool] = True
    default_num_labels: ClassVar[int] = 3
    shared_table: ClassVar[bool] = True
    mask_decoder_pads: ClassVar[bool] = False
    shift_source: ClassVar[bool] = False

    vocab_size: int = 50265
    max_position_embeddings: int = 1024
    encoder_layers: int = 12
    encoder_ffn_dim: int = 4096
    encoder_attention_heads: int = 16
    decoder_layers: int = 12
    decoder_ffn_dim: int = 4096
    decoder_attention_heads: int = 16
    encoder_layerdrop: float = 0.0
    decoder_layerdrop: float = 0.0
    activation_function: str = "gelu"
    d_model: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    classifier_dropout: Optional[float] = 0.0
    scale_embedding: bool = False
    use_cache: bool = True
    pad_token_id: Optional[int] = 1
    bos_token_id: Optional[int] = 0
    eos_token_id: Optional[int | tuple[int, ...]] = 2
    is_encoder_decoder: bool = True
    decoder_start_token_id: Optional[int] = 2
    forced_eos_token_id: Optional[int | tuple[int, ...]] = 2
    is_decoder: bool = False
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        for key in ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                    "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "max_position_embeddings"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        for key in ("encoder_attention_heads", "decoder_attention_heads"):
            if self.d_model % getattr(self, key):
                self.fail("d_model", self.d_model, f"a multiple of {key}={getattr(self, key)}")
        if self.activation_function not in ACTIVATIONS:
            self.fail("activation_function", self.activation_function, f"one of {list(ACTIVATIONS)}")
        for key in ("dropout", "attention_dropout", "activation_dropout", "classifier_dropout",
                    "encoder_layerdrop", "decoder_layerdrop"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value < 1.0:
                self.fail(key, value, "a probability in [0, 1)")
        if self.pad_token_id is None:
            self.fail("pad_token_id", None, "an int: decoder inputs are made by shifting labels and padding them")
        if self.shift_style == "start" and self.decoder_start_token_id is None:
            self.fail("decoder_start_token_id", None, "an int: the token that starts every decoder input")
        if self.position_kind == "sinusoidal-padded" and self.pad_token_id < 0:
            self.fail("pad_token_id", self.pad_token_id, "an int >= 0 (positions count from it)")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.decoder_attention_heads

    @property
    def encoder_head_dim(self) -> int:
        return self.d_model // self.encoder_attention_heads

    @property
    def num_labels(self) -> int:
        return self.default_num_labels if self.id2label is None else len(self.id2label)

    @property
    def classifier_dropout_rate(self) -> float:
        return 0.0 if self.classifier_dropout is None else self.classifier_dropout

    @property
    def num_positions(self) -> int:
        """Rows of the learned position table."""
        return self.max_position_embeddings + self.position_offset

    @property
    def embed_scale(self) -> float:
        return self.d_model ** 0.5 if self.scale_embedding else 1.0

    @property
    def uses_prompts(self) -> bool:
        """MVP's per-layer attention prompts (see MvpConfig)."""
        return False

    @property
    def source_vocab(self) -> int:
        """Rows of the encoder's token table."""
        return self.vocab_size

    @property
    def target_vocab(self) -> int:
        """Rows of the decoder's token table and of the output projection."""
        return self.vocab_size

    @property
    def has_shared(self) -> bool:
        """Whether the model holds `shared` (FSMT only when tied: then it is the decoder's table)."""
        return self.shared_table or self.tie_word_embeddings

    @property
    def eos_id(self) -> int:
        eos = self.eos_token_id
        return eos[0] if isinstance(eos, tuple) else eos


@dataclasses.dataclass(frozen=True, kw_only=True)
class MBartConfig(BartConfig):
    model_type: ClassVar[str] = "mbart"
    normalize_before: ClassVar[bool] = True
    shift_style: ClassVar[str] = "last-token"
    default_num_labels: ClassVar[int] = 2
    decoder_start_token_id: Optional[int] = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PLBartConfig(BartConfig):
    model_type: ClassVar[str] = "plbart"
    shift_style: ClassVar[str] = "last-token"
    default_num_labels: ClassVar[int] = 2
    vocab_size: int = 50005
    encoder_layers: int = 6
    encoder_ffn_dim: int = 3072
    encoder_attention_heads: int = 12
    decoder_layers: int = 6
    decoder_ffn_dim: int = 3072
    decoder_attention_heads: int = 12
    d_model: int = 768
    attention_dropout: float = 0.1
    scale_embedding: bool = True
    decoder_start_token_id: Optional[int] = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class MarianConfig(BartConfig):
    """Marian with one vocabulary shared by encoder and decoder (`share_encoder_decoder_embeddings`)."""
    model_type: ClassVar[str] = "marian"
    has_layernorm_embedding: ClassVar[bool] = False
    position_kind: ClassVar[str] = "sinusoidal"
    position_offset: ClassVar[int] = 0
    default_num_labels: ClassVar[int] = 2
    vocab_size: int = 58101
    decoder_vocab_size: Optional[int] = None
    decoder_start_token_id: Optional[int] = 58100
    pad_token_id: Optional[int] = 58100
    eos_token_id: Optional[int | tuple[int, ...]] = 0
    bos_token_id: Optional[int] = None
    forced_eos_token_id: Optional[int | tuple[int, ...]] = 0
    share_encoder_decoder_embeddings: bool = True

    def validate(self):
        super().validate()
        if not self.share_encoder_decoder_embeddings:
            self.fail("share_encoder_decoder_embeddings", False,
                      "true: Rosetta's Marian shares one vocabulary between encoder and decoder")
        if self.decoder_vocab_size is not None and self.decoder_vocab_size != self.vocab_size:
            self.fail("decoder_vocab_size", self.decoder_vocab_size,
                      f"null or vocab_size={self.vocab_size} (a shared vocabulary)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PegasusConfig(BartConfig):
    model_type: ClassVar[str] = "pegasus"
    normalize_before: ClassVar[bool] = True
    has_layernorm_embedding: ClassVar[bool] = False
    position_kind: ClassVar[str] = "sinusoidal"
    position_offset: ClassVar[int] = 0
    default_num_labels: ClassVar[int] = 2
    decoder_start_token_id: Optional[int] = 0
    pad_token_id: Optional[int] = 0
    eos_token_id: Optional[int | tuple[int, ...]] = 1
    forced_eos_token_id: Optional[int | tuple[int, ...]] = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class M2M100Config(BartConfig):
    model_type: ClassVar[str] = "m2m_100"
    normalize_before: ClassVar[bool] = True
    has_layernorm_embedding: ClassVar[bool] = False
    position_kind: ClassVar[str] = "sinusoidal-padded"
    position_offset: ClassVar[int] = 0
    has_final_logits_bias: ClassVar[bool] = False
    default_num_labels: ClassVar[int] = 2
    vocab_size: int = 128112
    encoder_layerdrop: float = 0.05
    decoder_layerdrop: float = 0.05
    activation_function: str = "relu"
    attention_dropout: float = 0.1
    scale_embedding: bool = True
    forced_eos_token_id: Optional[int | tuple[int, ...]] = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class BlenderbotConfig(BartConfig):
    model_type: ClassVar[str] = "blenderbot"
    normalize_before: ClassVar[bool] = True
    has_layernorm_embedding: ClassVar[bool] = False
    position_offset: ClassVar[int] = 0
    default_num_labels: ClassVar[int] = 2
    vocab_size: int = 8008
    max_position_embeddings: int = 128
    encoder_layers: int = 2
    encoder_ffn_dim: int = 10240
    encoder_attention_heads: int = 32
    decoder_layers: int = 24
    decoder_ffn_dim: int = 10240
    decoder_attention_heads: int = 32
    d_model: int = 2560
    decoder_start_token_id: Optional[int] = 1
    pad_token_id: Optional[int] = 0
    bos_token_id: Optional[int] = 1
    encoder_no_repeat_ngram_size: int = 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class BlenderbotSmallConfig(BartConfig):
    model_type: ClassVar[str] = "blenderbot-small"
    decoder_layernorm_embedding_first: ClassVar[bool] = True
    position_offset: ClassVar[int] = 0
    default_num_labels: ClassVar[int] = 2
    max_position_embeddings: int = 512
    encoder_layers: int = 8
    encoder_ffn_dim: int = 2048
    decoder_layers: int = 8
    decoder_ffn_dim: int = 2048
    d_model: int = 512
    decoder_start_token_id: Optional[int] = 1
    pad_token_id: Optional[int] = 0
    bos_token_id: Optional[int] = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class MvpConfig(BartConfig):
    """MVP: BART plus optional prompts (`use_prompt`): `prompt_length` learned rows through a
    d_model → prompt_mid_dim → layers·2·d_model MLP give every decoder layer key/value prefixes
    for its self- and cross-attention (not the causal-lm). As in transformers v5, the encoder
    has no prompt: `MvpModel` passes `use_prompt` to MvpEncoder's `embed_tokens` slot."""
    model_type: ClassVar[str] = "mvp"
    default_num_labels: ClassVar[int] = 2
    vocab_size: int = 50267
    forced_eos_token_id: Optional[int | tuple[int, ...]] = None
    use_prompt: bool = False
    prompt_length: int = 100
    prompt_mid_dim: int = 800

    def validate(self):
        super().validate()
        for key in ("prompt_length", "prompt_mid_dim"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")

    @property
    def uses_prompts(self) -> bool:
        return self.use_prompt


@dataclasses.dataclass(frozen=True, kw_only=True)
class FSMTConfig(BartConfig):
    """fairseq's WMT19 transformer: post-norm, no embedding LayerNorm, fairseq sinusoidal
    positions (non-pad tokens count from pad_token_id + 1), separate source and target
    vocabularies, `decoder.output_projection` (tied: one target-size table for both sides,
    as transformers ties them). `vocab_size` reads as `tgt_vocab_size`, as in transformers."""
    model_type: ClassVar[str] = "fsmt"
    attribute_map: ClassVar = {"num_attention_heads": "encoder_attention_heads", "hidden_size": "d_model",
                               "num_hidden_layers": "encoder_layers"}
    has_layernorm_embedding: ClassVar[bool] = False
    position_kind: ClassVar[str] = "sinusoidal-fsmt"
    position_offset: ClassVar[int] = 0
    shift_style: ClassVar[str] = "last-token"
    has_final_logits_bias: ClassVar[bool] = False
    default_num_labels: ClassVar[int] = 2
    shared_table: ClassVar[bool] = False
    mask_decoder_pads: ClassVar[bool] = True
    shift_source: ClassVar[bool] = True
    langs: tuple[str, ...] = ("en", "de")
    src_vocab_size: int = 42024
    tgt_vocab_size: int = 42024
    activation_function: str = "relu"
    max_length: int = 200
    scale_embedding: bool = True
    tie_word_embeddings: bool = False
    num_beams: int = 5
    length_penalty: float = 1.0
    early_stopping: bool = False

    def validate(self):
        for key in ("src_vocab_size", "tgt_vocab_size"):
            if getattr(self, key) < 1:
                self.fail(key, getattr(self, key), "a positive int")
        super().validate()
        if self.pad_token_id < 0:
            self.fail("pad_token_id", self.pad_token_id, "an int >= 0 (positions count from it)")

    def __post_init__(self):
        # `vocab_size` is derived (never written): the encoder's table, what input_ids index.
        given = self.vocab_size
        if not isinstance(given, int) or isinstance(given, bool):
            self.fail("vocab_size", given, "int (FSMT derives it from src_vocab_size)")
        object.__setattr__(self, "vocab_size", self.source_vocab)
        super().__post_init__()

    def to_dict(self):
        out = super().to_dict()
        if "vocab_size" not in self.source_keys:
            out.pop("vocab_size", None)     # transformers would read it as tgt_vocab_size
        return out

    @property
    def source_vocab(self) -> int:
        # Tied, transformers gives the encoder the decoder's table (target-size).
        return self.tgt_vocab_size if self.tie_word_embeddings else self.src_vocab_size

    @property
    def target_vocab(self) -> int:
        return self.tgt_vocab_size
