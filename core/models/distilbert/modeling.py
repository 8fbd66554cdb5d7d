"""DistilBERT: the encoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (embeddings, transformer/layer, attention/q_lin, ffn/lin1,
sa_layer_norm, ...), so the key map in `params.py` is a table of renames. The block differs
from BERT's (one attention module with its output projection, the two LayerNorms on the
block), so it is written here; the layers run under `P.Repeat` (lax.scan, stacked params).

No token types, no pooler. Every LayerNorm uses eps=1e-12 (fixed in `transformers`).
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import prims as P
from core.models.bert.modeling import flatten_choices
from core.models.distilbert.config import DistilBertConfig


class DistilBertEmbeddings(nn.Module):
    """word + position → LayerNorm → dropout (`transformers`' `Embeddings`). With
    `sinusoidal_pos_embds` the position table is still a checkpoint weight and is read from it."""
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.word_embeddings = P.Embed(c.vocab_size, c.dim, c.initializer_range, self.dtype, self.param_dtype)
        self.position_embeddings = P.Embed(c.max_position_embeddings, c.dim, c.initializer_range,
                                           self.dtype, self.param_dtype)
        self.LayerNorm = P.LayerNorm(c.dim, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)

    def __call__(self, input_ids, position_ids, deterministic: bool = True):
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings), deterministic=deterministic)


class DistilBertSelfAttention(nn.Module):
    """q_lin/k_lin/v_lin → attention → out_lin (no dropout after out_lin, as in `transformers`)."""
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.q_lin = P.Dense(c.dim, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.k_lin = P.Dense(c.dim, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.v_lin = P.Dense(c.dim, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.out_lin = P.Dense(c.dim, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.n_heads, c.head_dim)
        q = jnp.reshape(self.q_lin(hidden), heads_shape)
        k = jnp.reshape(self.k_lin(hidden), heads_shape)
        v = jnp.reshape(self.v_lin(hidden), heads_shape)
        context, weights = self.core(q, k, v, mask=mask, deterministic=deterministic,
                                     return_weights=output_attentions)
        return self.out_lin(jnp.reshape(context, (batch, length, c.dim))), weights


class DistilBertFFN(nn.Module):
    """lin1 → activation → lin2 → dropout (`transformers`' `FFN`)."""
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.lin1 = P.Dense(c.hidden_dim, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.lin2 = P.Dense(c.dim, c.hidden_dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.dropout)

    def __call__(self, hidden, deterministic: bool = True):
        hidden = self.lin2(P.act(self.lin1(hidden), self.config.activation))
        return self.dropout(hidden, deterministic=deterministic)


class DistilBertTransformerBlock(nn.Module):
    """One post-norm block (`transformers`' `TransformerBlock`); the `Repeat` body:
    (hidden, ...) → (hidden, (hidden, attentions))."""
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.attention = DistilBertSelfAttention(c, self.dtype, self.param_dtype)
        self.sa_layer_norm = P.LayerNorm(c.dim, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.ffn = DistilBertFFN(c, self.dtype, self.param_dtype)
        self.output_layer_norm = P.LayerNorm(c.dim, c.layer_norm_eps, dtype=self.dtype,
                                             param_dtype=self.param_dtype)

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False):
        attended, weights = self.attention(hidden, mask, deterministic, output_attentions)
        attended = self.sa_layer_norm(attended + hidden)
        hidden = self.output_layer_norm(self.ffn(attended, deterministic) + attended)
        return hidden, (hidden, weights)


class DistilBertTransformer(nn.Module):
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        kwargs = {"config": self.config, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layer = P.Repeat(DistilBertTransformerBlock, self.config.n_layers, kwargs, remat=self.remat)

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        embedded = hidden
        hidden, per_layer = self.layer(hidden, mask, deterministic, output_attentions)
        all_hidden = None
        if output_hidden_states:
            all_hidden = (embedded,) + tuple(jnp.unstack(per_layer[0], axis=0))
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden,
                                       attentions=all_attentions)


def default_inputs(input_ids, attention_mask, position_ids):
    """Fill the optional inputs as `transformers` does: all-ones mask, positions 0..t-1."""
    batch, length = jnp.shape(input_ids)
    if attention_mask is None:
        attention_mask = jnp.ones((batch, length), jnp.int32)
    if position_ids is None:
        position_ids = jnp.broadcast_to(jnp.arange(length), (batch, length))
    return attention_mask, position_ids


class DistilBertModule(nn.Module):
    """The bare encoder: embeddings → transformer. `transformers.DistilBertModel` (no pooler)."""
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.embeddings = DistilBertEmbeddings(self.config, self.dtype, self.param_dtype)
        self.transformer = DistilBertTransformer(self.config, self.dtype, self.param_dtype, self.remat)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        attention_mask, position_ids = default_inputs(input_ids, attention_mask, position_ids)
        chex.assert_equal_shape([input_ids, attention_mask, position_ids])
        hidden = self.embeddings(input_ids, position_ids, deterministic)
        return self.transformer(hidden, A.padding_mask(attention_mask), deterministic, output_attentions,
                                output_hidden_states)


# -- heads ---------------------------------------------------------------------------------------

class TiedOutputProjection(nn.Module):
    """A vocabulary projection whose weight is the (tied) word embedding table and whose bias is
    its own parameter, so the Flax path `<name>/bias` matches the checkpoint's `<name>.bias`.
    Generic (any tied `nn.Linear(dim, vocab_size)` output layer); candidate for core/layers."""
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.bias = self.param("bias", P.zeros_init(), (self.config.vocab_size,), self.param_dtype)

    def __call__(self, hidden, word_embeddings):
        return word_embeddings.attend(hidden) + jnp.asarray(self.bias, self.dtype)


class DistilBertForMaskedLM(nn.Module):
    """vocab_transform → activation → vocab_layer_norm → vocab_projector. Tied (the default):
    the projector is the word embedding table plus its own bias; untied: a Dense of its own."""
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.distilbert = DistilBertModule(c, self.dtype, self.param_dtype, self.remat)
        self.vocab_transform = P.Dense(c.dim, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.vocab_layer_norm = P.LayerNorm(c.dim, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        if c.tie_word_embeddings:
            self.vocab_projector = TiedOutputProjection(c, self.dtype, self.param_dtype)
        else:
            self.vocab_projector = P.Dense(c.vocab_size, c.dim, True, c.initializer_range, self.dtype,
                                           self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        base = self.distilbert(input_ids, attention_mask, position_ids, deterministic, output_attentions,
                               output_hidden_states)
        hidden = self.vocab_layer_norm(P.act(self.vocab_transform(base.last_hidden_state), c.activation))
        if c.tie_word_embeddings:
            logits = self.vocab_projector(hidden, self.distilbert.embeddings.word_embeddings)
        else:
            logits = self.vocab_projector(hidden)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                      attentions=base.attentions)


class DistilBertForSequenceClassification(nn.Module):
    """First token → pre_classifier → ReLU → dropout(seq_classif_dropout) → classifier."""
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.distilbert = DistilBertModule(c, self.dtype, self.param_dtype, self.remat)
        self.pre_classifier = P.Dense(c.dim, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.classifier = P.Dense(c.num_labels, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.seq_classif_dropout)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.distilbert(input_ids, attention_mask, position_ids, deterministic, output_attentions,
                               output_hidden_states)
        pooled = P.act(self.pre_classifier(base.last_hidden_state[:, 0]), "relu")
        logits = self.classifier(self.dropout(pooled, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                attentions=base.attentions)


class DistilBertForTokenClassification(nn.Module):
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.distilbert = DistilBertModule(c, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.dropout)
        self.classifier = P.Dense(c.num_labels, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.distilbert(input_ids, attention_mask, position_ids, deterministic, output_attentions,
                               output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                             attentions=base.attentions)


class DistilBertForQuestionAnswering(nn.Module):
    """dropout(qa_dropout) → qa_outputs (2 logits per token: start, end)."""
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.distilbert = DistilBertModule(c, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.qa_dropout)
        self.qa_outputs = P.Dense(2, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, start_positions=None,
                 end_positions=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.distilbert(input_ids, attention_mask, position_ids, deterministic, output_attentions,
                               output_hidden_states)
        logits = self.qa_outputs(self.dropout(base.last_hidden_state, deterministic=deterministic))
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                    hidden_states=base.hidden_states, attentions=base.attentions)


class DistilBertForMultipleChoice(nn.Module):
    """Inputs are (batch, num_choices, length); each choice is scored from its first token
    (pre_classifier → ReLU → dropout → classifier)."""
    config: DistilBertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.distilbert = DistilBertModule(c, self.dtype, self.param_dtype, self.remat)
        self.pre_classifier = P.Dense(c.dim, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.classifier = P.Dense(1, c.dim, True, c.initializer_range, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.seq_classif_dropout)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 3)
        batch, num_choices, length = jnp.shape(input_ids)
        flat = (batch * num_choices, length)
        base = self.distilbert(jnp.reshape(input_ids, flat), flatten_choices(attention_mask, flat),
                               flatten_choices(position_ids, flat), deterministic, output_attentions,
                               output_hidden_states)
        pooled = P.act(self.pre_classifier(base.last_hidden_state[:, 0]), "relu")
        scores = self.classifier(self.dropout(pooled, deterministic=deterministic))
        logits = jnp.reshape(scores, (batch, num_choices))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                 attentions=base.attentions)

