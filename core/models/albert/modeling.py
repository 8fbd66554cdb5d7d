"""ALBERT: the encoder and its task heads, in the portable Flax subset.

Submodule names follow `transformers` (embeddings, encoder/embedding_hidden_mapping_in,
encoder/albert_layer_groups_<g>/albert_layers_<j>/attention/query, ...), so the key map in
`params.py` is a table of renames.

Two things set ALBERT apart from BERT:
- factorized embeddings: tokens are embedded in `embedding_size` and mapped to `hidden_size`
  by `encoder.embedding_hidden_mapping_in`; the MLM head maps back down before the tied decoder.
- cross-layer parameter sharing: `num_hidden_groups` groups of `inner_group_num` layers; layer i
  runs group `int(i / (num_hidden_layers / num_hidden_groups))`. The encoder is a Python loop
  calling the group modules, so one group's params are applied at every layer that uses it
  (`P.Repeat` would give each layer params of its own). Every inner layer's output counts as a
  hidden state, every inner attention as an attention map (num_hidden_layers * inner_group_num).
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import prims as P
from core.models.albert.config import AlbertConfig
from core.models.bert.modeling import default_inputs, flatten_choices


class AlbertEmbeddings(nn.Module):
    """word + token type + position (all of width `embedding_size`) → LayerNorm → dropout."""
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.word_embeddings = P.Embed(c.vocab_size, c.embedding_size, c.initializer_range, self.dtype,
                                       self.param_dtype)
        self.position_embeddings = P.Embed(c.max_position_embeddings, c.embedding_size, c.initializer_range,
                                           self.dtype, self.param_dtype)
        self.token_type_embeddings = P.Embed(c.type_vocab_size, c.embedding_size, c.initializer_range,
                                             self.dtype, self.param_dtype)
        self.LayerNorm = P.LayerNorm(c.embedding_size, c.layer_norm_eps, dtype=self.dtype,
                                     param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)

    def __call__(self, input_ids, token_type_ids, position_ids, deterministic: bool = True):
        embeddings = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
                      + self.position_embeddings(position_ids))
        return self.dropout(self.LayerNorm(embeddings), deterministic=deterministic)


class AlbertAttention(nn.Module):
    """query/key/value → attention → dense → dropout → LayerNorm(+ residual), in one module."""
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.query = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.key = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.value = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.dense = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.LayerNorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.core = P.AttentionCore(c.attention_probs_dropout_prob, self.dtype)
        self.output_dropout = P.Dropout(c.hidden_dropout_prob)

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.num_attention_heads, c.head_dim)
        q = jnp.reshape(self.query(hidden), heads_shape)
        k = jnp.reshape(self.key(hidden), heads_shape)
        v = jnp.reshape(self.value(hidden), heads_shape)
        context, weights = self.core(q, k, v, mask=mask, deterministic=deterministic,
                                     return_weights=output_attentions)
        projected = self.dense(jnp.reshape(context, (batch, length, c.hidden_size)))
        projected = self.output_dropout(projected, deterministic=deterministic)
        return self.LayerNorm(hidden + projected), weights


class AlbertLayer(nn.Module):
    """attention → ffn → activation → ffn_output → full_layer_layer_norm(+ residual).
    (`transformers` defines a dropout here but never applies it; neither do we.)"""
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.full_layer_layer_norm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                                 param_dtype=self.param_dtype)
        self.attention = AlbertAttention(c, self.dtype, self.param_dtype)
        self.ffn = P.Dense(c.intermediate_size, c.hidden_size, True, c.initializer_range, self.dtype,
                           self.param_dtype)
        self.ffn_output = P.Dense(c.hidden_size, c.intermediate_size, True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False):
        attended, weights = self.attention(hidden, mask, deterministic, output_attentions)
        ffn_output = self.ffn_output(P.act(self.ffn(attended), self.config.hidden_act))
        return self.full_layer_layer_norm(ffn_output + attended), weights


class AlbertLayerGroup(nn.Module):
    """`inner_group_num` distinct layers applied in order; returns the final hidden state and,
    per inner layer, its output and attention weights."""
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.albert_layers = [AlbertLayer(self.config, self.dtype, self.param_dtype)
                              for _ in range(self.config.inner_group_num)]

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False):
        layer_hidden = ()
        layer_attentions = ()
        for albert_layer in self.albert_layers:
            hidden, weights = albert_layer(hidden, mask, deterministic, output_attentions)
            layer_hidden = layer_hidden + (hidden,)
            layer_attentions = layer_attentions + (weights,)
        return hidden, layer_hidden, layer_attentions


class AlbertTransformer(nn.Module):
    """embedding_hidden_mapping_in, then `num_hidden_layers` applications of the shared groups."""
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if self.remat:
            raise ValueError("ALBERT does not support remat: its layers share params and run as a Python "
                             "loop, while remat in Rosetta comes with P.Repeat's per-layer params")
        self.embedding_hidden_mapping_in = P.Dense(c.hidden_size, c.embedding_size, True, c.initializer_range,
                                                   self.dtype, self.param_dtype)
        self.albert_layer_groups = [AlbertLayerGroup(c, self.dtype, self.param_dtype)
                                    for _ in range(c.num_hidden_groups)]

    def __call__(self, hidden, mask, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        hidden = self.embedding_hidden_mapping_in(hidden)
        all_hidden = (hidden,)
        all_attentions = ()
        for i in range(c.num_hidden_layers):
            group = self.albert_layer_groups[c.group_of_layer(i)]
            hidden, layer_hidden, layer_attentions = group(hidden, mask, deterministic, output_attentions)
            all_hidden = all_hidden + layer_hidden
            all_attentions = all_attentions + layer_attentions
        return outputs.BaseModelOutput(last_hidden_state=hidden,
                                       hidden_states=all_hidden if output_hidden_states else None,
                                       attentions=all_attentions if output_attentions else None)


class AlbertModule(nn.Module):
    """The bare encoder: embeddings → encoder → (optional) pooler + tanh. `transformers.AlbertModel`."""
    config: AlbertConfig
    add_pooling_layer: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embeddings = AlbertEmbeddings(c, self.dtype, self.param_dtype)
        self.encoder = AlbertTransformer(c, self.dtype, self.param_dtype, self.remat)
        if self.add_pooling_layer:
            self.pooler = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        attention_mask, token_type_ids, position_ids = default_inputs(
            input_ids, attention_mask, token_type_ids, position_ids)
        chex.assert_equal_shape([input_ids, attention_mask, token_type_ids, position_ids])
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, deterministic)
        encoded = self.encoder(hidden, A.padding_mask(attention_mask), deterministic, output_attentions,
                               output_hidden_states)
        pooled = None
        if self.add_pooling_layer:
            pooled = jnp.tanh(self.pooler(encoded.last_hidden_state[:, 0]))
        return outputs.BaseModelOutput(last_hidden_state=encoded.last_hidden_state, pooler_output=pooled,
                                       hidden_states=encoded.hidden_states, attentions=encoded.attentions)


# -- heads ---------------------------------------------------------------------------------------

class AlbertMLMHead(nn.Module):
    """dense (hidden → embedding_size) → activation → LayerNorm → decoder. Tied: the word
    embedding table plus `bias`. Untied: the `decoder` Dense with its own bias; `transformers`
    then keeps `bias` as a separate, unused parameter, and so do we, so checkpoints round-trip."""
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.LayerNorm = P.LayerNorm(c.embedding_size, c.layer_norm_eps, dtype=self.dtype,
                                     param_dtype=self.param_dtype)
        self.bias = self.param("bias", P.zeros_init(), (c.vocab_size,), self.param_dtype)
        self.dense = P.Dense(c.embedding_size, c.hidden_size, True, c.initializer_range, self.dtype,
                             self.param_dtype)
        if not c.tie_word_embeddings:
            self.decoder = P.Dense(c.vocab_size, c.embedding_size, True, c.initializer_range, self.dtype,
                                   self.param_dtype)

    def __call__(self, hidden, word_embeddings):
        hidden = self.LayerNorm(P.act(self.dense(hidden), self.config.hidden_act))
        if self.config.tie_word_embeddings:
            return word_embeddings.attend(hidden) + jnp.asarray(self.bias, self.dtype)
        return self.decoder(hidden)


class AlbertSOPHead(nn.Module):
    """Sentence-order prediction from the pooled output: dropout → classifier."""
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dropout = P.Dropout(c.classifier_dropout_prob)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def __call__(self, pooled, deterministic: bool = True):
        return self.classifier(self.dropout(pooled, deterministic=deterministic))


class AlbertForPreTraining(nn.Module):
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.albert = AlbertModule(self.config, True, self.dtype, self.param_dtype, self.remat)
        self.predictions = AlbertMLMHead(self.config, self.dtype, self.param_dtype)
        self.sop_classifier = AlbertSOPHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 sentence_order_label=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.albert(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                           output_attentions, output_hidden_states)
        prediction_logits = self.predictions(base.last_hidden_state, self.albert.embeddings.word_embeddings)
        sop_logits = self.sop_classifier(base.pooler_output, deterministic)
        loss = None
        if labels is not None and sentence_order_label is not None:
            loss = losses.cross_entropy(prediction_logits, labels) + losses.cross_entropy(sop_logits,
                                                                                          sentence_order_label)
        return outputs.PreTrainingWithSOPOutput(loss=loss, prediction_logits=prediction_logits, sop_logits=sop_logits,
                                        hidden_states=base.hidden_states, attentions=base.attentions)


class AlbertForMaskedLM(nn.Module):
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.albert = AlbertModule(self.config, False, self.dtype, self.param_dtype, self.remat)
        self.predictions = AlbertMLMHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.albert(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                           output_attentions, output_hidden_states)
        logits = self.predictions(base.last_hidden_state, self.albert.embeddings.word_embeddings)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                      attentions=base.attentions)


class AlbertForSequenceClassification(nn.Module):
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.albert = AlbertModule(c, True, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout_prob)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.albert(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                           output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(base.pooler_output, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                attentions=base.attentions)


class AlbertForTokenClassification(nn.Module):
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.albert = AlbertModule(c, False, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout_prob)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype,
                                  self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.albert(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                           output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                             attentions=base.attentions)


class AlbertForQuestionAnswering(nn.Module):
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.albert = AlbertModule(c, False, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(2, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                 start_positions=None, end_positions=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.albert(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                           output_attentions, output_hidden_states)
        logits = self.qa_outputs(base.last_hidden_state)
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                    hidden_states=base.hidden_states, attentions=base.attentions)


class AlbertForMultipleChoice(nn.Module):
    """Inputs are (batch, num_choices, length); each choice is scored from its pooled output."""
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.albert = AlbertModule(c, True, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout_prob)
        self.classifier = P.Dense(1, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 3)
        batch, num_choices, length = jnp.shape(input_ids)
        flat = (batch * num_choices, length)
        base = self.albert(jnp.reshape(input_ids, flat), flatten_choices(attention_mask, flat),
                           flatten_choices(token_type_ids, flat), flatten_choices(position_ids, flat),
                           deterministic, output_attentions, output_hidden_states)
        scores = self.classifier(self.dropout(base.pooler_output, deterministic=deterministic))
        logits = jnp.reshape(scores, (batch, num_choices))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                 attentions=base.attentions)
