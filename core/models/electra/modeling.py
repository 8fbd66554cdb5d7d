"""ELECTRA: BERT's encoder under narrower (projected) embeddings, with the discriminator and
generator heads, in the portable Flax subset.

The encoder layers are BERT's modules, imported (same structure and parameter names in
`transformers`). What differs from BERT:
  * embeddings have `embedding_size` features; when that differs from `hidden_size`, the
    `embeddings_project` Dense maps them to the encoder width. There is no pooler.
  * `pretraining`: the discriminator (`discriminator_predictions`: dense → hidden_act →
    dense_prediction), one logit per token, BCE loss over non-padded tokens;
  * `masked-lm`: the generator (`generator_predictions`: dense → gelu → LayerNorm, all
    `embedding_size` wide; `generator_lm_head` tied to the word embeddings);
  * sequence classification: `classifier` (dense → gelu → out_proj on the first token);
  * multiple choice: the `sequence_summary` (XLM-style) before the `classifier`.
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import prims as P
from core.models.bert.modeling import BertEncoder, default_inputs, flatten_choices
from core.models.electra.config import ElectraConfig


class ElectraEmbeddings(nn.Module):
    """Word + token type + position embeddings, `embedding_size` wide, then LayerNorm."""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        e = c.embedding_size
        self.word_embeddings = P.Embed(c.vocab_size, e, c.initializer_range, self.dtype, self.param_dtype)
        self.position_embeddings = P.Embed(c.max_position_embeddings, e, c.initializer_range,
                                           self.dtype, self.param_dtype)
        self.token_type_embeddings = P.Embed(c.type_vocab_size, e, c.initializer_range, self.dtype, self.param_dtype)
        self.LayerNorm = P.LayerNorm(e, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.hidden_dropout_prob)

    def __call__(self, input_ids, token_type_ids, position_ids, deterministic: bool = True):
        embeddings = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
                      + self.position_embeddings(position_ids))
        return self.dropout(self.LayerNorm(embeddings), deterministic=deterministic)


class ElectraModule(nn.Module):
    """embeddings → (embeddings_project) → BERT encoder layers. `transformers.ElectraModel`."""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embeddings = ElectraEmbeddings(c, self.dtype, self.param_dtype)
        if c.embedding_size != c.hidden_size:
            self.embeddings_project = P.Dense(c.hidden_size, c.embedding_size, True, c.initializer_range,
                                              self.dtype, self.param_dtype)
        self.encoder = BertEncoder(c, self.dtype, self.param_dtype, self.remat)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        attention_mask, token_type_ids, position_ids = default_inputs(
            input_ids, attention_mask, token_type_ids, position_ids)
        chex.assert_equal_shape([input_ids, attention_mask, token_type_ids, position_ids])
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, deterministic)
        if self.config.embedding_size != self.config.hidden_size:
            hidden = self.embeddings_project(hidden)
        return self.encoder(hidden, A.padding_mask(attention_mask), deterministic,
                            output_attentions, output_hidden_states)


# -- heads ---------------------------------------------------------------------------------------

class ElectraDiscriminatorPredictions(nn.Module):
    """dense → hidden_act → dense_prediction: one replaced-token logit per position."""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.dense_prediction = P.Dense(1, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, hidden):
        logits = self.dense_prediction(P.act(self.dense(hidden), self.config.hidden_act))
        return jnp.squeeze(logits, -1)


class ElectraForPreTraining(nn.Module):
    """The discriminator: is each token original (0) or replaced (1)?"""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.electra = ElectraModule(self.config, self.dtype, self.param_dtype, self.remat)
        self.discriminator_predictions = ElectraDiscriminatorPredictions(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.electra(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                            output_attentions, output_hidden_states)
        logits = self.discriminator_predictions(base.last_hidden_state)
        loss = None
        if labels is not None:
            # Only real tokens count (all tokens when no mask is given), as in transformers.
            loss = losses.binary_cross_entropy_with_logits(logits, labels, attention_mask)
        return outputs.PreTrainingOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                         attentions=base.attentions)


class ElectraGeneratorPredictions(nn.Module):
    """dense (hidden → embedding_size) → gelu (exact, whatever `hidden_act` says) → LayerNorm."""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.embedding_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.LayerNorm = P.LayerNorm(c.embedding_size, c.layer_norm_eps, dtype=self.dtype,
                                     param_dtype=self.param_dtype)

    def __call__(self, hidden):
        return self.LayerNorm(P.act(self.dense(hidden), "gelu"))


class ElectraGeneratorLMHead(nn.Module):
    """`generator_lm_head`: a Linear(embedding_size → vocab). Tied: its weight is the word
    embedding table (not stored) and only `bias` is a parameter; untied: `kernel` and `bias`,
    laid out as `P.Dense`'s."""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        if not c.tie_word_embeddings:
            self.kernel = self.param("kernel", P.normal_init(c.initializer_range), (c.embedding_size, c.vocab_size),
                                     self.param_dtype)
        self.bias = self.param("bias", P.zeros_init(), (c.vocab_size,), self.param_dtype)

    def __call__(self, hidden, word_embeddings):
        if self.config.tie_word_embeddings:
            logits = word_embeddings.attend(hidden)
        else:
            logits = jnp.dot(jnp.asarray(hidden, self.dtype), jnp.asarray(self.kernel, self.dtype))
        return logits + jnp.asarray(self.bias, self.dtype)


class ElectraForMaskedLM(nn.Module):
    """The generator."""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.electra = ElectraModule(self.config, self.dtype, self.param_dtype, self.remat)
        self.generator_predictions = ElectraGeneratorPredictions(self.config, self.dtype, self.param_dtype)
        self.generator_lm_head = ElectraGeneratorLMHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.electra(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                            output_attentions, output_hidden_states)
        hidden = self.generator_predictions(base.last_hidden_state)
        logits = self.generator_lm_head(hidden, self.electra.embeddings.word_embeddings)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                      attentions=base.attentions)


class ElectraClassificationHead(nn.Module):
    """The first token's state → dropout → dense → gelu → dropout → out_proj. (gelu, exact,
    whatever `hidden_act` says: the ELECTRA authors' choice, where BERT/RoBERTa use tanh.)"""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.classifier_dropout_rate)
        self.out_proj = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, features, deterministic: bool = True):
        x = self.dropout(features[:, 0], deterministic=deterministic)
        x = P.act(self.dense(x), "gelu")
        x = self.dropout(x, deterministic=deterministic)
        return self.out_proj(x)


class ElectraForSequenceClassification(nn.Module):
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.electra = ElectraModule(self.config, self.dtype, self.param_dtype, self.remat)
        self.classifier = ElectraClassificationHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.electra(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                            output_attentions, output_hidden_states)
        logits = self.classifier(base.last_hidden_state, deterministic)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                attentions=base.attentions)


class ElectraForTokenClassification(nn.Module):
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.electra = ElectraModule(c, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout_rate)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.electra(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                            output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                             attentions=base.attentions)


class ElectraForQuestionAnswering(nn.Module):
    """`qa_outputs` is Linear(hidden, num_labels) in transformers, split into start/end logits:
    only num_labels == 2 works there, and here."""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        if c.num_labels != 2:
            raise ValueError(f"ElectraForQuestionAnswering needs num_labels == 2 (start and end logits); "
                             f"the config has {c.num_labels}")
        self.electra = ElectraModule(c, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                 start_positions=None, end_positions=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.electra(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                            output_attentions, output_hidden_states)
        logits = self.qa_outputs(base.last_hidden_state)
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                    hidden_states=base.hidden_states, attentions=base.attentions)


class ElectraSequenceSummary(nn.Module):
    """One vector per sequence (XLM's SequenceSummary, as ELECTRA's multiple-choice head uses it):
    pick (`summary_type`: first / last / mean / cls_index = the last token, as no index is
    passed) → first dropout → `summary` projection (if `summary_use_proj`) → activation (if
    `summary_activation`) → last dropout."""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        if c.summary_use_proj:
            self.summary = P.Dense(c.summary_features, c.hidden_size, True, c.initializer_range,
                                   self.dtype, self.param_dtype)
        self.first_dropout = P.Dropout(c.summary_first_dropout)
        self.last_dropout = P.Dropout(c.summary_last_dropout)

    def __call__(self, hidden, deterministic: bool = True):
        c = self.config
        if c.summary_type == "first":
            output = hidden[:, 0]
        elif c.summary_type == "mean":
            output = jnp.mean(hidden, axis=1)
        else:   # "last", and "cls_index" without an index (transformers then takes the last token)
            output = hidden[:, -1]
        output = self.first_dropout(output, deterministic=deterministic)
        if c.summary_use_proj:
            output = self.summary(output)
        if c.summary_activation:
            output = P.act(output, c.summary_activation)
        return self.last_dropout(output, deterministic=deterministic)


class ElectraForMultipleChoice(nn.Module):
    """Inputs are (batch, num_choices, length); each choice is scored from its sequence summary."""
    config: ElectraConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.electra = ElectraModule(c, self.dtype, self.param_dtype, self.remat)
        self.sequence_summary = ElectraSequenceSummary(c, self.dtype, self.param_dtype)
        self.classifier = P.Dense(1, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 3)
        batch, num_choices, length = jnp.shape(input_ids)
        flat = (batch * num_choices, length)
        base = self.electra(jnp.reshape(input_ids, flat), flatten_choices(attention_mask, flat),
                            flatten_choices(token_type_ids, flat), flatten_choices(position_ids, flat),
                            deterministic, output_attentions, output_hidden_states)
        scores = self.classifier(self.sequence_summary(base.last_hidden_state, deterministic))
        logits = jnp.reshape(scores, (batch, num_choices))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                 attentions=base.attentions)
