"""MPNet: a BERT-like encoder with RoBERTa-style position ids and a T5-style relative
attention bias shared by every layer, in the portable Flax subset.

What differs from BERT:
  * no token type embeddings; position ids are counted from the padding index, which
    `transformers` hard-codes to 1 (token id 1 is padding, whatever `pad_token_id` says);
  * the encoder owns one `relative_attention_bias` table (num_buckets × heads); the bias is
    computed once from bucketed (key - query) offsets and added to every layer's logits;
  * attention projections are `attention.attn.{q,k,v,o}` and the attention block's post-norm
    is `attention.LayerNorm`. The feed-forward sublayer (`intermediate`, `output`) and the
    pooler are BERT's modules, imported;
  * heads as RoBERTa's: `lm_head` (dense → gelu → layer_norm → decoder), `classifier`
    (dense → tanh → out_proj on the first token); only multiple choice keeps the pooler.
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import positions
from core.layers import prims as P
from core.models.bert.modeling import BertIntermediate, BertPooler, BertSelfOutput, flatten_choices
from core.models.mpnet.config import MAX_DISTANCE, NUM_BUCKETS, PADDING_IDX, MPNetConfig


class MPNetEmbeddings(nn.Module):
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.word_embeddings = P.Embed(c.vocab_size, c.hidden_size, c.initializer_range, self.dtype, self.param_dtype)
        self.position_embeddings = P.Embed(c.max_position_embeddings, c.hidden_size, c.initializer_range,
                                           self.dtype, self.param_dtype)
        self.LayerNorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)

    def __call__(self, input_ids, position_ids, deterministic: bool = True):
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings), deterministic=deterministic)


class MPNetSelfAttention(nn.Module):
    """q, k, v → softmax(q k^T / sqrt(d) + position_bias, masked) v → o."""
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.q = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.k = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.v = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.o = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_probs_dropout_prob, self.dtype)

    def __call__(self, hidden, mask, position_bias, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.num_attention_heads, c.head_dim)
        q = jnp.reshape(self.q(hidden), heads_shape)
        k = jnp.reshape(self.k(hidden), heads_shape)
        v = jnp.reshape(self.v(hidden), heads_shape)
        context, weights = self.core(q, k, v, mask=mask, bias=position_bias, deterministic=deterministic,
                                     return_weights=output_attentions)
        return self.o(jnp.reshape(context, (batch, length, c.hidden_size))), weights


class MPNetAttention(nn.Module):
    """attn → dropout → LayerNorm(+ residual)."""
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.attn = MPNetSelfAttention(c, self.dtype, self.param_dtype)
        self.LayerNorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)

    def __call__(self, hidden, mask, position_bias, deterministic: bool = True, output_attentions: bool = False):
        attended, weights = self.attn(hidden, mask, position_bias, deterministic, output_attentions)
        return self.LayerNorm(self.dropout(attended, deterministic=deterministic) + hidden), weights


class MPNetLayer(nn.Module):
    """One encoder block; the `Repeat` body: (hidden, ...) → (hidden, (hidden, attentions))."""
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.attention = MPNetAttention(self.config, self.dtype, self.param_dtype)
        self.intermediate = BertIntermediate(self.config, self.dtype, self.param_dtype)
        self.output = BertSelfOutput(self.config, self.config.intermediate_size, self.dtype, self.param_dtype)

    def __call__(self, hidden, mask, position_bias, deterministic: bool = True, output_attentions: bool = False):
        attended, weights = self.attention(hidden, mask, position_bias, deterministic, output_attentions)
        hidden = self.output(self.intermediate(attended), attended, deterministic)
        return hidden, (hidden, weights)


class MPNetEncoder(nn.Module):
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layer = P.Repeat(MPNetLayer, c.num_hidden_layers, kwargs, remat=self.remat)
        self.relative_attention_bias = P.Embed(c.relative_attention_num_buckets, c.num_attention_heads,
                                               c.initializer_range, self.dtype, self.param_dtype)

    def compute_position_bias(self, length: int):
        """(1, heads, length, length): the learned bias of each bucketed (key - query) offset."""
        relative = positions.relative_positions(length, length)
        buckets = positions.relative_position_bucket(relative, bidirectional=True, num_buckets=NUM_BUCKETS,
                                                     max_distance=MAX_DISTANCE)
        values = self.relative_attention_bias(buckets)                      # (q, k, heads)
        return jnp.expand_dims(jnp.transpose(values, (2, 0, 1)), 0)

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        embedded = hidden
        position_bias = self.compute_position_bias(jnp.shape(hidden)[1])
        hidden, per_layer = self.layer(hidden, mask, position_bias, deterministic, output_attentions)
        all_hidden = None
        if output_hidden_states:
            all_hidden = (embedded,) + tuple(jnp.unstack(per_layer[0], axis=0))
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden,
                                       attentions=all_attentions)


def default_inputs(input_ids, attention_mask, position_ids):
    """Fill the optional inputs as `transformers` does: all-ones mask, positions counted from
    the padding index."""
    batch, length = jnp.shape(input_ids)
    if attention_mask is None:
        attention_mask = jnp.ones((batch, length), jnp.int32)
    if position_ids is None:
        position_ids = positions.create_position_ids_from_input_ids(input_ids, PADDING_IDX)
    return attention_mask, position_ids


class MPNetModule(nn.Module):
    """The bare encoder: embeddings → layers → (optional) pooler. `transformers.MPNetModel`."""
    config: MPNetConfig
    add_pooling_layer: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.embeddings = MPNetEmbeddings(self.config, self.dtype, self.param_dtype)
        self.encoder = MPNetEncoder(self.config, self.dtype, self.param_dtype, self.remat)
        if self.add_pooling_layer:
            self.pooler = BertPooler(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        attention_mask, position_ids = default_inputs(input_ids, attention_mask, position_ids)
        chex.assert_equal_shape([input_ids, attention_mask, position_ids])
        hidden = self.embeddings(input_ids, position_ids, deterministic)
        encoded = self.encoder(hidden, A.padding_mask(attention_mask), deterministic,
                               output_attentions, output_hidden_states)
        pooled = None
        if self.add_pooling_layer:
            pooled = self.pooler(encoded.last_hidden_state)
        return outputs.BaseModelOutput(last_hidden_state=encoded.last_hidden_state, pooler_output=pooled,
                                       hidden_states=encoded.hidden_states, attentions=encoded.attentions)


# -- heads ---------------------------------------------------------------------------------------

class MPNetLMHead(nn.Module):
    """dense → gelu (exact, whatever `hidden_act` says) → layer_norm → vocabulary logits.
    Tied: the word embedding table plus `bias`. Untied: the `decoder` Dense with its own bias;
    `transformers` then keeps `bias` as a separate, unused parameter, and so do we, so
    checkpoints round-trip."""
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.layer_norm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        if not c.tie_word_embeddings:
            self.decoder = P.Dense(c.vocab_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.bias = self.param("bias", P.zeros_init(), (c.vocab_size,), self.param_dtype)

    def __call__(self, hidden, word_embeddings):
        hidden = self.layer_norm(P.act(self.dense(hidden), "gelu"))
        if self.config.tie_word_embeddings:
            return word_embeddings.attend(hidden) + jnp.asarray(self.bias, self.dtype)
        return self.decoder(hidden)


class MPNetForMaskedLM(nn.Module):
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.mpnet = MPNetModule(self.config, False, self.dtype, self.param_dtype, self.remat)
        self.lm_head = MPNetLMHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.mpnet(input_ids, attention_mask, position_ids, deterministic, output_attentions,
                          output_hidden_states)
        logits = self.lm_head(base.last_hidden_state, self.mpnet.embeddings.word_embeddings)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                      attentions=base.attentions)


class MPNetClassificationHead(nn.Module):
    """The first token's state → dropout → dense → tanh → dropout → out_proj."""
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)
        self.out_proj = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, features, deterministic: bool = True):
        x = self.dropout(features[:, 0], deterministic=deterministic)
        x = jnp.tanh(self.dense(x))
        x = self.dropout(x, deterministic=deterministic)
        return self.out_proj(x)


class MPNetForSequenceClassification(nn.Module):
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.mpnet = MPNetModule(self.config, False, self.dtype, self.param_dtype, self.remat)
        self.classifier = MPNetClassificationHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.mpnet(input_ids, attention_mask, position_ids, deterministic, output_attentions,
                          output_hidden_states)
        logits = self.classifier(base.last_hidden_state, deterministic)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                attentions=base.attentions)


class MPNetForTokenClassification(nn.Module):
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.mpnet = MPNetModule(c, False, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.hidden_dropout_prob)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.mpnet(input_ids, attention_mask, position_ids, deterministic, output_attentions,
                          output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                             attentions=base.attentions)


class MPNetForQuestionAnswering(nn.Module):
    """`qa_outputs` is Linear(hidden, num_labels) in transformers, split into start/end logits:
    only num_labels == 2 works there, and here."""
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if c.num_labels != 2:
            raise ValueError(f"MPNetForQuestionAnswering needs num_labels == 2 (start and end logits); "
                             f"the config has {c.num_labels}")
        self.mpnet = MPNetModule(c, False, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, start_positions=None,
                 end_positions=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.mpnet(input_ids, attention_mask, position_ids, deterministic, output_attentions,
                          output_hidden_states)
        logits = self.qa_outputs(base.last_hidden_state)
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                    hidden_states=base.hidden_states, attentions=base.attentions)


class MPNetForMultipleChoice(nn.Module):
    """Inputs are (batch, num_choices, length); each choice is scored from its pooled output."""
    config: MPNetConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.mpnet = MPNetModule(c, True, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.hidden_dropout_prob)
        self.classifier = P.Dense(1, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 3)
        batch, num_choices, length = jnp.shape(input_ids)
        flat = (batch * num_choices, length)
        base = self.mpnet(jnp.reshape(input_ids, flat), flatten_choices(attention_mask, flat),
                          flatten_choices(position_ids, flat), deterministic, output_attentions,
                          output_hidden_states)
        scores = self.classifier(self.dropout(base.pooler_output, deterministic=deterministic))
        logits = jnp.reshape(scores, (batch, num_choices))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                 attentions=base.attentions)
