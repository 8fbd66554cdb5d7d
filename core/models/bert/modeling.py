"""BERT: the encoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (embeddings, encoder/layer, attention/self, ...), so the
key map in `params.py` is a table of renames, and a reader of the reference finds every piece.
The encoder layers run under `P.Repeat` (lax.scan with stacked params).
"""
import chex
import jax
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import prims as P
from core.models.bert.config import BertConfig


class BertEmbeddings(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.word_embeddings = P.Embed(c.vocab_size, c.hidden_size, c.initializer_range, self.dtype, self.param_dtype)
        self.position_embeddings = P.Embed(c.max_position_embeddings, c.hidden_size, c.initializer_range,
                                           self.dtype, self.param_dtype)
        self.token_type_embeddings = P.Embed(c.type_vocab_size, c.hidden_size, c.initializer_range,
                                             self.dtype, self.param_dtype)
        self.LayerNorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)

    def __call__(self, input_ids, token_type_ids, position_ids, deterministic: bool = True):
        embeddings = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
                      + self.position_embeddings(position_ids))
        return self.dropout(self.LayerNorm(embeddings), deterministic=deterministic)


class BertSelfAttention(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.query = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.key = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.value = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_probs_dropout_prob, self.dtype)

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.num_attention_heads, c.head_dim)
        q = jnp.reshape(self.query(hidden), heads_shape)
        k = jnp.reshape(self.key(hidden), heads_shape)
        v = jnp.reshape(self.value(hidden), heads_shape)
        context, weights = self.core(q, k, v, mask=mask, deterministic=deterministic,
                                     return_weights=output_attentions)
        return jnp.reshape(context, (batch, length, c.hidden_size)), weights


class BertSelfOutput(nn.Module):
    """dense → dropout → LayerNorm(+ residual): the post-norm sublayer close of BERT."""
    config: BertConfig
    in_features: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.hidden_size, self.in_features, True, c.initializer_range, self.dtype, self.param_dtype)
        self.LayerNorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)

    def __call__(self, hidden, residual, deterministic: bool = True):
        return self.LayerNorm(self.dropout(self.dense(hidden), deterministic=deterministic) + residual)


class BertAttention(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.self = BertSelfAttention(self.config, self.dtype, self.param_dtype)
        self.output = BertSelfOutput(self.config, self.config.hidden_size, self.dtype, self.param_dtype)

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False):
        context, weights = self.self(hidden, mask, deterministic, output_attentions)
        return self.output(context, hidden, deterministic), weights


class BertIntermediate(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.intermediate_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, hidden):
        return P.act(self.dense(hidden), self.config.hidden_act)


class BertLayer(nn.Module):
    """One encoder block; the `Repeat` body: (hidden, ...) → (hidden, (hidden, attentions))."""
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.attention = BertAttention(self.config, self.dtype, self.param_dtype)
        self.intermediate = BertIntermediate(self.config, self.dtype, self.param_dtype)
        self.output = BertSelfOutput(self.config, self.config.intermediate_size, self.dtype, self.param_dtype)

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False):
        attended, weights = self.attention(hidden, mask, deterministic, output_attentions)
        hidden = self.output(self.intermediate(attended), attended, deterministic)
        return hidden, (hidden, weights)


class BertEncoder(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        kwargs = {"config": self.config, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layer = P.Repeat(BertLayer, self.config.num_hidden_layers, kwargs, remat=self.remat)

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


class BertPooler(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, hidden):
        return jnp.tanh(self.dense(hidden[:, 0]))


def default_inputs(input_ids, attention_mask, token_type_ids, position_ids):
    """Fill the optional inputs as `transformers` does: all-ones mask, type 0, positions 0..t-1."""
    batch, length = jnp.shape(input_ids)
    if attention_mask is None:
        attention_mask = jnp.ones((batch, length), jnp.int32)
    if token_type_ids is None:
        token_type_ids = jnp.zeros((batch, length), jnp.int32)
    if position_ids is None:
        position_ids = jnp.broadcast_to(jnp.arange(length), (batch, length))
    return attention_mask, token_type_ids, position_ids


class BertModule(nn.Module):
    """The bare encoder: embeddings → layers → (optional) pooler. `transformers.BertModel`."""
    config: BertConfig
    add_pooling_layer: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.embeddings = BertEmbeddings(self.config, self.dtype, self.param_dtype)
        self.encoder = BertEncoder(self.config, self.dtype, self.param_dtype, self.remat)
        if self.add_pooling_layer:
            self.pooler = BertPooler(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        attention_mask, token_type_ids, position_ids = default_inputs(
            input_ids, attention_mask, token_type_ids, position_ids)
        chex.assert_equal_shape([input_ids, attention_mask, token_type_ids, position_ids])
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, deterministic)
        encoded = self.encoder(hidden, A.padding_mask(attention_mask), deterministic,
                               output_attentions, output_hidden_states)
        pooled = None
        if self.add_pooling_layer:
            pooled = self.pooler(encoded.last_hidden_state)
        return outputs.BaseModelOutput(last_hidden_state=encoded.last_hidden_state, pooler_output=pooled,
                                       hidden_states=encoded.hidden_states, attentions=encoded.attentions)


# -- heads ---------------------------------------------------------------------------------------

class BertPredictionHeadTransform(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.LayerNorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, hidden):
        return self.LayerNorm(P.act(self.dense(hidden), self.config.hidden_act))


class BertLMPredictionHead(nn.Module):
    """transform → vocabulary logits. Tied: the word embedding table plus `bias`. Untied: the
    `decoder` Dense with its own bias; `transformers` then keeps `bias` as a separate, unused
    parameter, and so do we, so checkpoints round-trip."""
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.transform = BertPredictionHeadTransform(c, self.dtype, self.param_dtype)
        if not c.tie_word_embeddings:
            self.decoder = P.Dense(c.vocab_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.bias = self.param("bias", P.zeros_init(), (c.vocab_size,), self.param_dtype)

    def __call__(self, hidden, word_embeddings):
        hidden = self.transform(hidden)
        if self.config.tie_word_embeddings:
            return word_embeddings.attend(hidden) + jnp.asarray(self.bias, self.dtype)
        return self.decoder(hidden)


class BertOnlyMLMHead(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.predictions = BertLMPredictionHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, hidden, word_embeddings):
        return self.predictions(hidden, word_embeddings)


class BertForMaskedLM(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.bert = BertModule(self.config, False, self.dtype, self.param_dtype, self.remat)
        self.cls = BertOnlyMLMHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.bert(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                         output_attentions, output_hidden_states)
        logits = self.cls(base.last_hidden_state, self.bert.embeddings.word_embeddings)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                      attentions=base.attentions)


class BertForSequenceClassification(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.bert = BertModule(c, True, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout_rate)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.bert(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                         output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(base.pooler_output, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                attentions=base.attentions)


class BertForTokenClassification(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.bert = BertModule(c, False, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout_rate)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.bert(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                         output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                             attentions=base.attentions)


class BertForQuestionAnswering(nn.Module):
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.bert = BertModule(c, False, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(2, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                 start_positions=None, end_positions=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.bert(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                         output_attentions, output_hidden_states)
        logits = self.qa_outputs(base.last_hidden_state)
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                    hidden_states=base.hidden_states, attentions=base.attentions)


class BertForMultipleChoice(nn.Module):
    """Inputs are (batch, num_choices, length); each choice is scored from its pooled output."""
    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.bert = BertModule(c, True, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout_rate)
        self.classifier = P.Dense(1, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 3)
        batch, num_choices, length = jnp.shape(input_ids)
        flat = (batch * num_choices, length)
        base = self.bert(jnp.reshape(input_ids, flat), flatten_choices(attention_mask, flat),
                         flatten_choices(token_type_ids, flat), flatten_choices(position_ids, flat),
                         deterministic, output_attentions, output_hidden_states)
        scores = self.classifier(self.dropout(base.pooler_output, deterministic=deterministic))
        logits = jnp.reshape(scores, (batch, num_choices))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                 attentions=base.attentions)


def flatten_choices(x, flat_shape):
    return None if x is None else jnp.reshape(x, flat_shape)
