"""RoBERTa (and XLM-RoBERTa, CamemBERT): BERT's encoder with RoBERTa's position ids and heads,
in the portable Flax subset.

The embeddings, encoder layers and pooler are BERT's modules, imported (their parameters have
the same names in `transformers`). What differs:
  * position ids are counted from the padding token (`create_position_ids_from_input_ids`);
  * the masked-LM head `lm_head` (dense → gelu → layer_norm → decoder), the sequence
    classification head `classifier` (dense → tanh → out_proj on the <s> token), and which
    heads keep the pooler (only multiple choice).
XLM-RoBERTa and CamemBERT are the same modules under the names `transformers` gives them.
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import prims as P
from core.layers.positions import create_position_ids_from_input_ids
from core.models.bert.modeling import BertEmbeddings, BertEncoder, BertPooler, flatten_choices
from core.models.roberta.config import RobertaConfig


def default_inputs(input_ids, attention_mask, token_type_ids, position_ids, padding_idx: int):
    """Fill the optional inputs as `transformers` does: all-ones mask, type 0, positions
    counted from the padding token."""
    batch, length = jnp.shape(input_ids)
    if attention_mask is None:
        attention_mask = jnp.ones((batch, length), jnp.int32)
    if token_type_ids is None:
        token_type_ids = jnp.zeros((batch, length), jnp.int32)
    if position_ids is None:
        position_ids = create_position_ids_from_input_ids(input_ids, padding_idx)
    return attention_mask, token_type_ids, position_ids


class RobertaModule(nn.Module):
    """The bare encoder: embeddings → layers → (optional) pooler. `transformers.RobertaModel`."""
    config: RobertaConfig
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
            input_ids, attention_mask, token_type_ids, position_ids, self.config.pad_token_id)
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

class RobertaLMHead(nn.Module):
    """dense → gelu (exact, whatever `hidden_act` says) → layer_norm → vocabulary logits.
    Tied: the word embedding table plus `bias`. Untied: the `decoder` Dense with its own bias;
    `transformers` then keeps `bias` as a separate, unused parameter, and so do we, so
    checkpoints round-trip."""
    config: RobertaConfig
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


class RobertaForMaskedLM(nn.Module):
    config: RobertaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.roberta = RobertaModule(self.config, False, self.dtype, self.param_dtype, self.remat)
        self.lm_head = RobertaLMHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.roberta(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                            output_attentions, output_hidden_states)
        logits = self.lm_head(base.last_hidden_state, self.roberta.embeddings.word_embeddings)
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                      attentions=base.attentions)


class RobertaClassificationHead(nn.Module):
    """The <s> token's state → dropout → dense → tanh → dropout → out_proj."""
    config: RobertaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(c.classifier_dropout_rate)
        self.out_proj = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, features, deterministic: bool = True):
        x = self.dropout(features[:, 0], deterministic=deterministic)
        x = jnp.tanh(self.dense(x))
        x = self.dropout(x, deterministic=deterministic)
        return self.out_proj(x)


class RobertaForSequenceClassification(nn.Module):
    config: RobertaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.roberta = RobertaModule(self.config, False, self.dtype, self.param_dtype, self.remat)
        self.classifier = RobertaClassificationHead(self.config, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.roberta(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                            output_attentions, output_hidden_states)
        logits = self.classifier(base.last_hidden_state, deterministic)
        loss = None
        if labels is not None:
            loss = losses.sequence_classification_loss(logits, labels, self.config.problem_type,
                                                       self.config.num_labels)
        return outputs.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                attentions=base.attentions)


class RobertaForTokenClassification(nn.Module):
    config: RobertaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.roberta = RobertaModule(c, False, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.classifier_dropout_rate)
        self.classifier = P.Dense(c.num_labels, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        base = self.roberta(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                            output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                             attentions=base.attentions)


class RobertaForQuestionAnswering(nn.Module):
    config: RobertaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.roberta = RobertaModule(c, False, self.dtype, self.param_dtype, self.remat)
        self.qa_outputs = P.Dense(2, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                 start_positions=None, end_positions=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        base = self.roberta(input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                            output_attentions, output_hidden_states)
        logits = self.qa_outputs(base.last_hidden_state)
        start_logits = logits[:, :, 0]
        end_logits = logits[:, :, 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = losses.span_loss(start_logits, end_logits, start_positions, end_positions)
        return outputs.QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                    hidden_states=base.hidden_states, attentions=base.attentions)


class RobertaForMultipleChoice(nn.Module):
    """Inputs are (batch, num_choices, length); each choice is scored from its pooled output.
    Unlike the other heads this one keeps the pooler, and its dropout is `hidden_dropout_prob`."""
    config: RobertaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.roberta = RobertaModule(c, True, self.dtype, self.param_dtype, self.remat)
        self.dropout = P.Dropout(c.hidden_dropout_prob)
        self.classifier = P.Dense(1, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                 deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 3)
        batch, num_choices, length = jnp.shape(input_ids)
        flat = (batch * num_choices, length)
        base = self.roberta(jnp.reshape(input_ids, flat), flatten_choices(attention_mask, flat),
                            flatten_choices(token_type_ids, flat), flatten_choices(position_ids, flat),
                            deterministic, output_attentions, output_hidden_states)
        scores = self.classifier(self.dropout(base.pooler_output, deterministic=deterministic))
        logits = jnp.reshape(scores, (batch, num_choices))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=base.hidden_states,
                                                 attentions=base.attentions)


# -- XLM-RoBERTa and CamemBERT: the same modules under their `transformers` names -----------------

XLMRobertaModule = RobertaModule
XLMRobertaForMaskedLM = RobertaForMaskedLM
XLMRobertaForSequenceClassification = RobertaForSequenceClassification
XLMRobertaForTokenClassification = RobertaForTokenClassification
XLMRobertaForQuestionAnswering = RobertaForQuestionAnswering
XLMRobertaForMultipleChoice = RobertaForMultipleChoice

CamembertModule = RobertaModule
CamembertForMaskedLM = RobertaForMaskedLM
CamembertForSequenceClassification = RobertaForSequenceClassification
CamembertForTokenClassification = RobertaForTokenClassification
CamembertForQuestionAnswering = RobertaForQuestionAnswering
CamembertForMultipleChoice = RobertaForMultipleChoice
