"""PEGASUS-X: the encoder-decoder and its LM head, in the portable Flax subset.

Submodule names follow `transformers` (shared, encoder/decoder, embed_global, layers, self_attn
with q/k/v/out_proj (no biases), *_layer_norm, global_self_attn_layer_norm, fc1, fc2,
layer_norm). The encoder attends block-locally: the sequence (padded to a multiple of
`block_size`) is cut into blocks, each token sees its block and `num_global_tokens` learned
global tokens; the global tokens see everything. With `stagger_local_blocks`, every odd layer
shifts the blocks by half a block (transformers pads half a block on both sides). To keep the
layers one scanned `Repeat`, every layer then runs on `blocks + 1` blocks: even layers append a
fully masked block (it changes nothing a real token or a global token sees), odd layers shift by
a traced `block_size // 2` (a gather).

The decoder is pre-norm with sinusoidal positions (tensor2tensor layout) and bias-free attention.
Encoder-decoder interface as T5 / BART: `__call__`, `encode`, `decode`, `init_cache`.
Encoder outputs: `hidden_states` are each layer's input (padded to the blocks, as transformers
reports them) and the final normed states; the global tokens' states and the encoder's attention
weights (transformers returns per-layer dicts of local and global weights) are not reported.
"""
import chex
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import attention as A
from core.layers import losses
from core.layers import prims as P
from core.layers.decoder import collect_hidden_states, decoder_inputs, init_cache, keep_last, update_layer_cache
from core.models.bart.modeling import sequential_positions, shift_tokens_right, sinusoidal_fairseq
from core.models.pegasus_x.config import PegasusXConfig


def positions(config: PegasusXConfig, input_ids, start, dtype):
    """The sinusoidal table at positions start, start + 1, ... (no padding position)."""
    return sinusoidal_fairseq(sequential_positions(input_ids, start), config.d_model, -1, dtype)


# -- encoder ---------------------------------------------------------------------------------------

class PegasusXGlobalLocalAttention(nn.Module):
    """Tokens: their block + the global tokens; global tokens: themselves + every token. One set
    of bias-free projections; queries pre-scaled by head_dim**-0.5 as transformers does."""
    config: PegasusXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        d = c.d_model
        self.k_proj = P.Dense(d, d, False, c.init_std, self.dtype, self.param_dtype)
        self.v_proj = P.Dense(d, d, False, c.init_std, self.dtype, self.param_dtype)
        self.q_proj = P.Dense(d, d, False, c.init_std, self.dtype, self.param_dtype)
        self.out_proj = P.Dense(d, d, False, c.init_std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def heads(self, states):
        c = self.config
        batch, length, _ = jnp.shape(states)
        heads = c.encoder_attention_heads
        return jnp.reshape(states, (batch, length, heads, c.d_model // heads))

    def __call__(self, hidden, global_hidden, mask_bias, deterministic: bool = True):
        """`hidden` (batch, blocks * block_size, d), `global_hidden` (batch, globals, d),
        `mask_bias` (batch, blocks * block_size): 0 or the dtype's minimum."""
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        globals_ = jnp.shape(global_hidden)[1]
        heads = c.encoder_attention_heads
        head_dim = c.d_model // heads
        block = c.block_size
        blocks = length // block
        scaling = head_dim ** -0.5
        local_q = self.heads(self.q_proj(hidden) * scaling)
        local_k = self.heads(self.k_proj(hidden))
        local_v = self.heads(self.v_proj(hidden))
        global_q = self.heads(self.q_proj(global_hidden) * scaling)
        global_k = self.heads(self.k_proj(global_hidden))
        global_v = self.heads(self.v_proj(global_hidden))
        # global tokens → [global tokens, every token]
        global_bias = jnp.concatenate([jnp.zeros((batch, globals_), self.dtype), mask_bias], axis=1)
        global_out, _ = self.core(global_q, jnp.concatenate([global_k, local_k], axis=1),
                                  jnp.concatenate([global_v, local_v], axis=1), mask=None,
                                  bias=jnp.reshape(global_bias, (batch, 1, 1, globals_ + length)), scale=1.0,
                                  deterministic=deterministic)
        # tokens → [global tokens, their block], blocks as batch rows
        rows = batch * blocks
        shape = (batch, blocks, globals_, heads, head_dim)
        tiled_k = jnp.broadcast_to(jnp.expand_dims(global_k, 1), shape)
        tiled_v = jnp.broadcast_to(jnp.expand_dims(global_v, 1), shape)
        block_k = jnp.reshape(local_k, (batch, blocks, block, heads, head_dim))
        block_v = jnp.reshape(local_v, (batch, blocks, block, heads, head_dim))
        keys = jnp.reshape(jnp.concatenate([tiled_k, block_k], axis=2), (rows, globals_ + block, heads, head_dim))
        values = jnp.reshape(jnp.concatenate([tiled_v, block_v], axis=2), (rows, globals_ + block, heads, head_dim))
        local_bias = jnp.concatenate([jnp.zeros((batch, blocks, globals_), self.dtype),
                                      jnp.reshape(mask_bias, (batch, blocks, block))], axis=2)
        local_out, _ = self.core(jnp.reshape(local_q, (rows, block, heads, head_dim)), keys, values, mask=None,
                                 bias=jnp.reshape(local_bias, (rows, 1, 1, globals_ + block)), scale=1.0,
                                 deterministic=deterministic)
        local_out = self.out_proj(jnp.reshape(local_out, (batch, length, c.d_model)))
        global_out = self.out_proj(jnp.reshape(global_out, (batch, globals_, c.d_model)))
        return local_out, global_out


class PegasusXEncoderLayer(nn.Module):
    """Pre-norm block over tokens and global tokens (separate attention norms, shared MLP). The
    `Repeat` body: ((hidden, global_hidden, layer), ...) → (..., layer + 1), hidden)."""
    config: PegasusXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self_attn = PegasusXGlobalLocalAttention(c, self.dtype, self.param_dtype)
        self.self_attn_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.global_self_attn_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype,
                                                       param_dtype=self.param_dtype)
        self.fc1 = P.Dense(c.encoder_ffn_dim, c.d_model, True, c.init_std, self.dtype, self.param_dtype)
        self.fc2 = P.Dense(c.d_model, c.encoder_ffn_dim, True, c.init_std, self.dtype, self.param_dtype)
        self.final_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)
        self.activation_dropout = P.Dropout(c.activation_dropout)

    def feed_forward(self, hidden, deterministic: bool = True):
        c = self.config
        x = self.activation_dropout(P.act(self.fc1(self.final_layer_norm(hidden)), c.activation_function),
                                    deterministic=deterministic)
        return hidden + self.dropout(self.fc2(x), deterministic=deterministic)

    def __call__(self, carry, mask_bias, deterministic: bool = True):
        c = self.config
        hidden, global_hidden, layer = carry
        batch, length, _ = jnp.shape(hidden)
        normed = self.self_attn_layer_norm(hidden)
        global_normed = self.global_self_attn_layer_norm(global_hidden)
        if c.stagger_local_blocks:
            # Odd layers: tokens shifted right by half a block; every layer: one more block.
            shift = (layer % 2) * (c.block_size // 2)
            source = jnp.arange(length + c.block_size) - shift
            inside = jnp.logical_and(source >= 0, source < length)
            source = jnp.clip(source, 0, length - 1)
            normed = jnp.where(jnp.reshape(inside, (1, length + c.block_size, 1)), jnp.take(normed, source, axis=1),
                               0.0)
            bias = jnp.where(jnp.expand_dims(inside, 0), jnp.take(mask_bias, source, axis=1),
                             P.mask_min(self.dtype))
            attended, global_attended = self.self_attn(normed, global_normed, bias, deterministic)
            attended = jnp.take(attended, jnp.arange(length) + shift, axis=1)
        else:
            attended, global_attended = self.self_attn(normed, global_normed, mask_bias, deterministic)
        hidden = self.feed_forward(hidden + self.dropout(attended, deterministic=deterministic), deterministic)
        global_hidden = self.feed_forward(global_hidden + self.dropout(global_attended, deterministic=deterministic),
                                          deterministic)
        return (hidden, global_hidden, layer + 1), hidden


class PegasusXEncoder(nn.Module):
    """Scaled token embeddings (the parent's `shared`) + sinusoids → padded to blocks → layers
    (with `embed_global`'s tokens alongside) → cut back → final LayerNorm."""
    config: PegasusXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embed_global = P.Embed(c.num_global_tokens, c.d_model, c.init_std, self.dtype, self.param_dtype)
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(PegasusXEncoderLayer, c.encoder_layers, kwargs, remat=self.remat)
        self.layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)

    def __call__(self, input_ids, attention_mask, shared, deterministic: bool = True,
                 output_hidden_states: bool = False):
        c = self.config
        chex.assert_rank(input_ids, 2)
        batch, length = jnp.shape(input_ids)
        if attention_mask is None:
            attention_mask = jnp.ones((batch, length), jnp.int32)
        hidden = shared(input_ids) * c.embed_scale + positions(c, input_ids, 0, self.dtype)
        hidden = self.dropout(hidden, deterministic=deterministic)
        minimum = P.mask_min(self.dtype)
        mask_bias = jnp.where(jnp.not_equal(attention_mask, 0), 0.0, minimum)
        mask_bias = jnp.asarray(mask_bias, self.dtype)
        extra = (-length) % c.block_size
        if extra > 0:
            hidden = jnp.concatenate([hidden, jnp.zeros((batch, extra, c.d_model), self.dtype)], axis=1)
            mask_bias = jnp.concatenate([mask_bias, jnp.full((batch, extra), minimum, self.dtype)], axis=1)
        global_hidden = jnp.broadcast_to(jnp.expand_dims(self.embed_global(jnp.arange(c.num_global_tokens)), 0),
                                         (batch, c.num_global_tokens, c.d_model))
        carry, per_layer = self.layers((hidden, global_hidden, jnp.asarray(0, jnp.int32)), mask_bias,
                                       deterministic)
        final = self.layer_norm(carry[0][:, :length])
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(hidden, per_layer, final)
        return outputs.BaseModelOutput(last_hidden_state=final, hidden_states=all_hidden)


# -- decoder ---------------------------------------------------------------------------------------

class PegasusXAttention(nn.Module):
    """Bias-free multi-head attention (decoder self- and cross-attention); with a cache,
    `read_cache` takes this layer's keys/values from it, otherwise they are written at `cache_index`."""
    config: PegasusXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        d = c.d_model
        self.k_proj = P.Dense(d, d, False, c.init_std, self.dtype, self.param_dtype)
        self.v_proj = P.Dense(d, d, False, c.init_std, self.dtype, self.param_dtype)
        self.q_proj = P.Dense(d, d, False, c.init_std, self.dtype, self.param_dtype)
        self.out_proj = P.Dense(d, d, False, c.init_std, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def __call__(self, hidden, kv_states, mask, layer, cache, cache_index, read_cache: bool = False,
                 deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        heads = c.decoder_attention_heads
        head_dim = c.head_dim
        batch, length, _ = jnp.shape(hidden)
        q = jnp.reshape(self.q_proj(hidden), (batch, length, heads, head_dim))
        if read_cache:
            k = cache[0][layer]
            v = cache[1][layer]
        else:
            kv_length = jnp.shape(kv_states)[1]
            k = jnp.reshape(self.k_proj(kv_states), (batch, kv_length, heads, head_dim))
            v = jnp.reshape(self.v_proj(kv_states), (batch, kv_length, heads, head_dim))
            if cache is not None:
                cache, k, v = update_layer_cache(cache, layer, k, v, cache_index)
        context, weights = self.core(q, k, v, mask=mask, scale=head_dim ** -0.5, deterministic=deterministic,
                                     return_weights=output_attentions)
        return self.out_proj(jnp.reshape(context, (batch, length, c.d_model))), weights, cache


class PegasusXDecoderLayer(nn.Module):
    """Pre-norm: causal self-attention (cached), cross-attention, MLP. The `Repeat` body:
    ((hidden, layer, cache), ...) → ((hidden, layer + 1, cache), (hidden, self weights, cross weights))."""
    config: PegasusXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self_attn = PegasusXAttention(c, self.dtype, self.param_dtype)
        self.self_attn_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.encoder_attn = PegasusXAttention(c, self.dtype, self.param_dtype)
        self.encoder_attn_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.fc1 = P.Dense(c.decoder_ffn_dim, c.d_model, True, c.init_std, self.dtype, self.param_dtype)
        self.fc2 = P.Dense(c.d_model, c.decoder_ffn_dim, True, c.init_std, self.dtype, self.param_dtype)
        self.final_layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)
        self.activation_dropout = P.Dropout(c.activation_dropout)

    def __call__(self, carry, mask, encoder_hidden_states, cross_mask, cache_index, fill_cross_cache: bool = True,
                 deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        hidden, layer, cache = carry
        self_cache = None
        cross_cache = None
        if cache is not None:
            self_cache = (cache[0], cache[1])
            cross_cache = (cache[2], cache[3])
        normed = self.self_attn_layer_norm(hidden)
        attended, weights, self_cache = self.self_attn(normed, normed, mask, layer, self_cache, cache_index, False,
                                                       deterministic, output_attentions)
        hidden = hidden + self.dropout(attended, deterministic=deterministic)
        read_cache = cache is not None and not fill_cross_cache
        attended, cross_weights, cross_cache = self.encoder_attn(self.encoder_attn_layer_norm(hidden),
                                                                 encoder_hidden_states, cross_mask, layer,
                                                                 cross_cache, 0, read_cache, deterministic,
                                                                 output_attentions)
        hidden = hidden + self.dropout(attended, deterministic=deterministic)
        x = self.activation_dropout(P.act(self.fc1(self.final_layer_norm(hidden)), c.activation_function),
                                    deterministic=deterministic)
        hidden = hidden + self.dropout(self.fc2(x), deterministic=deterministic)
        if cache is not None:
            cache = (self_cache[0], self_cache[1], cross_cache[0], cross_cache[1])
        return (hidden, layer + 1, cache), (hidden, weights, cross_weights)


class PegasusXDecoder(nn.Module):
    config: PegasusXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        kwargs = {"config": c, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(PegasusXDecoderLayer, c.decoder_layers, kwargs, remat=self.remat)
        self.layer_norm = P.LayerNorm(c.d_model, 1e-5, dtype=self.dtype, param_dtype=self.param_dtype)
        self.dropout = P.Dropout(c.dropout)

    def __call__(self, input_ids, attention_mask, encoder_hidden_states, encoder_attention_mask, cache, cache_index,
                 fill_cross_cache: bool, shared, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        chex.assert_rank(input_ids, 2)
        mask, _ = decoder_inputs(input_ids, attention_mask, None, cache, cache_index)
        hidden = shared(input_ids) * c.embed_scale + positions(c, input_ids, cache_index, self.dtype)
        hidden = self.dropout(hidden, deterministic=deterministic)
        embedded = hidden
        cross_mask = None
        if encoder_attention_mask is not None:
            cross_mask = A.padding_mask(encoder_attention_mask)
        carry, per_layer = self.layers((hidden, jnp.asarray(0, jnp.int32), cache), mask, encoder_hidden_states,
                                       cross_mask, cache_index, fill_cross_cache, deterministic, output_attentions)
        hidden, _, cache = carry
        hidden = self.layer_norm(hidden)
        all_hidden = None
        if output_hidden_states:
            all_hidden = collect_hidden_states(embedded, per_layer[0], hidden)
        all_attentions = None
        all_cross = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
            all_cross = tuple(jnp.unstack(per_layer[2], axis=0))
        return outputs.BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden, cache=cache, hidden_states=all_hidden, attentions=all_attentions,
            cross_attentions=all_cross)


def make_cache(config: PegasusXConfig, batch_size: int, max_length: int, encoder_length: int, dtype):
    """(self_keys, self_values, cross_keys, cross_values), zeros (callable on an unbound module)."""
    c = config
    self_k, self_v = init_cache(c.decoder_layers, batch_size, max_length, c.decoder_attention_heads, c.head_dim, dtype)
    cross_k, cross_v = init_cache(c.decoder_layers, batch_size, encoder_length, c.decoder_attention_heads, c.head_dim,
                                  dtype)
    return (self_k, self_v, cross_k, cross_v)


# -- models ----------------------------------------------------------------------------------------

class PegasusXModule(nn.Module):
    """The bare encoder-decoder (`transformers.PegasusXModel`)."""
    config: PegasusXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.shared = P.Embed(c.vocab_size, c.d_model, c.init_std, self.dtype, self.param_dtype)
        self.encoder = PegasusXEncoder(c, self.dtype, self.param_dtype, self.remat)
        self.decoder = PegasusXDecoder(c, self.dtype, self.param_dtype, self.remat)

    def init_cache(self, batch_size: int, max_length: int, encoder_length: int):
        return make_cache(self.config, batch_size, max_length, encoder_length, self.dtype)

    def encode(self, input_ids, attention_mask=None, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        return self.encoder(input_ids, attention_mask, self.shared, deterministic, output_hidden_states)

    def decode(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask=None,
               decoder_attention_mask=None, cache=None, cache_index=0, fill_cross_cache: bool = True,
               logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        return self.decoder(decoder_input_ids, decoder_attention_mask, encoder_hidden_states, encoder_attention_mask,
                            cache, cache_index, fill_cross_cache, self.shared, deterministic, output_attentions,
                            output_hidden_states)

    def run(self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_hidden_states,
            cache, cache_index, fill_cross_cache: bool, deterministic: bool, output_attentions: bool,
            output_hidden_states: bool):
        if encoder_hidden_states is None:
            encoded = self.encode(input_ids, attention_mask, deterministic, output_attentions, output_hidden_states)
        else:
            encoded = outputs.BaseModelOutput(last_hidden_state=encoder_hidden_states)
        decoded = self.decode(decoder_input_ids, encoded.last_hidden_state, attention_mask, decoder_attention_mask,
                              cache, cache_index, fill_cross_cache, 0, deterministic, output_attentions,
                              output_hidden_states)
        return encoded, decoded

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 encoder_hidden_states=None, cache=None, cache_index=0, fill_cross_cache: bool = True, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        if decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(input_ids if labels is None else labels, c.pad_token_id,
                                                   c.decoder_start_token_id)
        encoded, decoded = self.run(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask,
                                    encoder_hidden_states, cache, cache_index, fill_cross_cache, deterministic,
                                    output_attentions, output_hidden_states)
        return outputs.Seq2SeqModelOutput(
            last_hidden_state=decoded.last_hidden_state, cache=decoded.cache,
            decoder_hidden_states=decoded.hidden_states, decoder_attentions=decoded.attentions,
            cross_attentions=decoded.cross_attentions, encoder_last_hidden_state=encoded.last_hidden_state,
            encoder_hidden_states=encoded.hidden_states, encoder_attentions=encoded.attentions)


class PegasusXForConditionalGeneration(nn.Module):
    """`model` and the LM head tied to `model.shared` (no rescaling, no logits bias)."""
    config: PegasusXConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        self.model = PegasusXModule(self.config, self.dtype, self.param_dtype, self.remat)

    def init_cache(self, batch_size: int, max_length: int, encoder_length: int):
        return make_cache(self.config, batch_size, max_length, encoder_length, self.dtype)

    def encode(self, input_ids, attention_mask=None, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        return self.model.encode(input_ids, attention_mask, deterministic, output_attentions, output_hidden_states)

    def decode(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask=None,
               decoder_attention_mask=None, cache=None, cache_index=0, fill_cross_cache: bool = True,
               logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
               output_hidden_states: bool = False):
        decoded = self.model.decode(decoder_input_ids, encoder_hidden_states, encoder_attention_mask,
                                    decoder_attention_mask, cache, cache_index, fill_cross_cache, logits_to_keep,
                                    deterministic, output_attentions, output_hidden_states)
        logits = self.model.shared.attend(keep_last(decoded.last_hidden_state, logits_to_keep))
        return outputs.Seq2SeqLMOutput(logits=logits, cache=decoded.cache, decoder_hidden_states=decoded.hidden_states,
                                       decoder_attentions=decoded.attentions,
                                       cross_attentions=decoded.cross_attentions)

    def __call__(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 encoder_hidden_states=None, cache=None, cache_index=0, fill_cross_cache: bool = True, labels=None,
                 logits_to_keep: int = 0, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        c = self.config
        if decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(input_ids if labels is None else labels, c.pad_token_id,
                                                   c.decoder_start_token_id)
        encoded, decoded = self.model.run(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask,
                                          encoder_hidden_states, cache, cache_index, fill_cross_cache, deterministic,
                                          output_attentions, output_hidden_states)
        logits = self.model.shared.attend(keep_last(decoded.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = losses.cross_entropy(logits, labels)
        return outputs.Seq2SeqLMOutput(loss=loss, logits=logits, cache=decoded.cache,
                                       decoder_hidden_states=decoded.hidden_states,
                                       decoder_attentions=decoded.attentions, cross_attentions=decoded.cross_attentions,
                                       encoder_last_hidden_state=encoded.last_hidden_state,
                                       encoder_hidden_states=encoded.hidden_states,
                                       encoder_attentions=encoded.attentions)
