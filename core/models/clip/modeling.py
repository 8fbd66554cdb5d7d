"""CLIP in the portable Flax subset: a text tower (token + learned positions, causal and
padding mask, pre-norm layers, final LayerNorm, pooled at the first eos token), a vision
tower (bias-free patch `P.Conv`, class embedding, learned positions, `pre_layrnorm` (sic),
pre-norm layers, `post_layernorm` on the [CLS] state), the bias-free projections and the
learned temperature `logit_scale`.

Submodule names follow the `transformers` v5 checkpoint layout (text_model / vision_model,
embeddings, encoder/layers, self_attn/{q,k,v,out}_proj, mlp/fc1, fc2, layer_norm1/2), so
`params.py` is a table of renames. Pixel inputs are channels-first as in `transformers`.
Images must have the configured size (transformers' interpolate_pos_encoding is not supported).
"""
import chex
import jax
import jax.numpy as jnp
import flax.linen as nn

from core import outputs
from core.layers import losses
from core.layers import prims as P
from core.models.clip.config import CLIPConfig, CLIPTextConfig, CLIPVisionConfig


class CLIPAttention(nn.Module):
    config: CLIPTextConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.q_proj = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.k_proj = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.v_proj = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.out_proj = P.Dense(c.hidden_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.core = P.AttentionCore(c.attention_dropout, self.dtype)

    def __call__(self, hidden, mask=None, deterministic: bool = True, output_attentions: bool = False):
        c = self.config
        batch, length, _ = jnp.shape(hidden)
        heads_shape = (batch, length, c.num_attention_heads, c.head_dim)
        q = jnp.reshape(self.q_proj(hidden), heads_shape)
        k = jnp.reshape(self.k_proj(hidden), heads_shape)
        v = jnp.reshape(self.v_proj(hidden), heads_shape)
        context, weights = self.core(q, k, v, mask=mask, deterministic=deterministic, return_weights=output_attentions)
        return self.out_proj(jnp.reshape(context, (batch, length, c.hidden_size))), weights


class CLIPMLP(nn.Module):
    config: CLIPTextConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.fc1 = P.Dense(c.intermediate_size, c.hidden_size, True, c.initializer_range, self.dtype, self.param_dtype)
        self.fc2 = P.Dense(c.hidden_size, c.intermediate_size, True, c.initializer_range, self.dtype, self.param_dtype)

    def __call__(self, hidden):
        return self.fc2(P.act(self.fc1(hidden), self.config.hidden_act))


class CLIPEncoderLayer(nn.Module):
    """Pre-norm block; the `Repeat` body: (hidden, mask, ...) → (hidden, (hidden, attentions))."""
    config: CLIPTextConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.self_attn = CLIPAttention(c, self.dtype, self.param_dtype)
        self.layer_norm1 = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.mlp = CLIPMLP(c, self.dtype, self.param_dtype)
        self.layer_norm2 = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, hidden, mask=None, deterministic: bool = True, output_attentions: bool = False):
        attended, weights = self.self_attn(self.layer_norm1(hidden), mask, deterministic, output_attentions)
        hidden = hidden + attended
        hidden = hidden + self.mlp(self.layer_norm2(hidden))
        return hidden, (hidden, weights)


class CLIPEncoder(nn.Module):
    config: CLIPTextConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        kwargs = {"config": self.config, "dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = P.Repeat(CLIPEncoderLayer, self.config.num_hidden_layers, kwargs, remat=self.remat)

    def __call__(self, hidden, mask=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        embedded = hidden
        hidden, per_layer = self.layers(hidden, mask, deterministic, output_attentions)
        all_hidden = None
        if output_hidden_states:
            all_hidden = (embedded,) + tuple(jnp.unstack(per_layer[0], axis=0))
        all_attentions = None
        if output_attentions:
            all_attentions = tuple(jnp.unstack(per_layer[1], axis=0))
        return outputs.BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_attentions)


# -- text tower ------------------------------------------------------------------------------------

class CLIPTextEmbeddings(nn.Module):
    config: CLIPTextConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.token_embedding = P.Embed(c.vocab_size, c.hidden_size, c.initializer_range, self.dtype, self.param_dtype)
        self.position_embedding = P.Embed(c.max_position_embeddings, c.hidden_size, c.initializer_range, self.dtype,
                                          self.param_dtype)

    def __call__(self, input_ids, position_ids=None):
        length = jnp.shape(input_ids)[-1]
        if length > self.config.max_position_embeddings:
            raise ValueError("Sequence length must be less than max_position_embeddings (got `sequence length`: "
                             f"{length} and max_position_embeddings: {self.config.max_position_embeddings}")
        if position_ids is None:
            position_ids = jnp.expand_dims(jnp.arange(length), 0)
        return self.token_embedding(input_ids) + self.position_embedding(position_ids)


def eos_positions(input_ids, eos_token_id: int):
    """Per row, the index `transformers` pools at: the first `eos_token_id` (0 if none); with
    the legacy eos_token_id == 2, the first position of the largest id (argmax of the ids)."""
    length = jnp.shape(input_ids)[-1]
    if eos_token_id == 2:
        hit = jnp.equal(input_ids, jnp.max(input_ids, axis=-1, keepdims=True))
    else:
        hit = jnp.equal(input_ids, eos_token_id)
    # length - position at the hits, 0 elsewhere: its max marks the first hit.
    score = jnp.max(jnp.where(hit, length - jnp.expand_dims(jnp.arange(length), 0), 0), axis=-1)
    return jnp.where(score > 0, length - score, 0)


class CLIPTextTransformer(nn.Module):
    """`transformers.CLIPTextModel` (v5 keeps its layers at the root: embeddings, encoder,
    final_layer_norm). `pooler_output` is the final state at the eos token."""
    config: CLIPTextConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embeddings = CLIPTextEmbeddings(c, self.dtype, self.param_dtype)
        self.encoder = CLIPEncoder(c, self.dtype, self.param_dtype, self.remat)
        self.final_layer_norm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                            param_dtype=self.param_dtype)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        chex.assert_rank(input_ids, 2)
        batch, length = jnp.shape(input_ids)
        hidden = self.embeddings(input_ids, position_ids)
        positions = jnp.arange(length)
        mask = jnp.expand_dims(positions, 0) <= jnp.expand_dims(positions, 1)       # (query, key)
        mask = jnp.reshape(mask, (1, 1, length, length))
        if attention_mask is not None:
            padding = jnp.reshape(jnp.not_equal(attention_mask, 0), (batch, 1, 1, length))
            mask = jnp.logical_and(mask, padding)
        encoded = self.encoder(hidden, mask, deterministic, output_attentions, output_hidden_states)
        sequence = self.final_layer_norm(encoded.last_hidden_state)
        index = jnp.reshape(eos_positions(input_ids, self.config.eos_token_id), (batch, 1, 1))
        index = jnp.broadcast_to(index, (batch, 1, self.config.hidden_size))
        pooled = jnp.take_along_axis(sequence, index, axis=1)[:, 0]
        return outputs.BaseModelOutput(last_hidden_state=sequence, pooler_output=pooled,
                                       hidden_states=encoded.hidden_states, attentions=encoded.attentions)


# -- vision tower ----------------------------------------------------------------------------------

class CLIPVisionEmbeddings(nn.Module):
    config: CLIPVisionConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.class_embedding = self.param("class_embedding", P.zeros_init(), (c.hidden_size,), self.param_dtype)
        self.patch_embedding = P.Conv(c.hidden_size, c.num_channels, (c.patch_size, c.patch_size),
                                      (c.patch_size, c.patch_size), "VALID", 1, 1, False, c.initializer_range,
                                      self.dtype, self.param_dtype)
        self.position_embedding = P.Embed(c.num_patches + 1, c.hidden_size, c.initializer_range, self.dtype,
                                          self.param_dtype)

    def __call__(self, pixel_values):
        c = self.config
        chex.assert_rank(pixel_values, 4)
        batch, channels, height, width = jnp.shape(pixel_values)
        if height != c.image_size or width != c.image_size:
            raise ValueError(f"Input image size ({height}*{width}) doesn't match model ({c.image_size}*{c.image_size}).")
        if channels != c.num_channels:
            raise ValueError(f"pixel_values has {channels} channels; the config says num_channels={c.num_channels}")
        patches = self.patch_embedding(jnp.transpose(jnp.asarray(pixel_values, self.dtype), (0, 2, 3, 1)))
        patches = jnp.reshape(patches, (batch, c.num_patches, c.hidden_size))
        cls = jnp.broadcast_to(jnp.reshape(jnp.asarray(self.class_embedding, self.dtype), (1, 1, c.hidden_size)),
                               (batch, 1, c.hidden_size))
        embeddings = jnp.concatenate([cls, patches], axis=1)
        return embeddings + self.position_embedding(jnp.expand_dims(jnp.arange(c.num_patches + 1), 0))


class CLIPVisionTransformer(nn.Module):
    """`transformers.CLIPVisionModel`: embeddings → pre_layrnorm → layers; `pooler_output` is
    post_layernorm of the [CLS] state (last_hidden_state is not normalised)."""
    config: CLIPVisionConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        self.embeddings = CLIPVisionEmbeddings(c, self.dtype, self.param_dtype)
        self.pre_layrnorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        self.encoder = CLIPEncoder(c, self.dtype, self.param_dtype, self.remat)
        self.post_layernorm = P.LayerNorm(c.hidden_size, c.layer_norm_eps, dtype=self.dtype,
                                          param_dtype=self.param_dtype)

    def __call__(self, pixel_values, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False):
        hidden = self.pre_layrnorm(self.embeddings(pixel_values))
        encoded = self.encoder(hidden, None, deterministic, output_attentions, output_hidden_states)
        pooled = self.post_layernorm(encoded.last_hidden_state[:, 0])
        return outputs.BaseModelOutput(last_hidden_state=encoded.last_hidden_state, pooler_output=pooled,
                                       hidden_states=encoded.hidden_states, attentions=encoded.attentions)


# -- the dual encoder ------------------------------------------------------------------------------

def l2_normalize(x):
    """x / ||x||, the norm as transformers computes it (sum of squares to the power 0.5)."""
    return x / jnp.power(jnp.sum(jnp.square(x), axis=-1, keepdims=True), 0.5)


def contrastive_loss(logits_per_text):
    """Mean of the text→image and image→text cross-entropies against the diagonal."""
    batch = jnp.shape(logits_per_text)[0]
    targets = jnp.arange(batch)
    caption = losses.cross_entropy(logits_per_text, targets)
    image = losses.cross_entropy(jnp.transpose(logits_per_text, (1, 0)), targets)
    return (caption + image) / 2.0


class CLIPModule(nn.Module):
    """`transformers.CLIPModel`: both towers, the projections and the similarity logits."""
    config: CLIPConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False

    def setup(self):
        c = self.config
        text = c.text
        vision = c.vision
        self.text_model = CLIPTextTransformer(text, self.dtype, self.param_dtype, self.remat)
        self.vision_model = CLIPVisionTransformer(vision, self.dtype, self.param_dtype, self.remat)
        self.visual_projection = P.Dense(c.projection_dim, vision.hidden_size, False, vision.initializer_range,
                                         self.dtype, self.param_dtype)
        self.text_projection = P.Dense(c.projection_dim, text.hidden_size, False, text.initializer_range,
                                       self.dtype, self.param_dtype)
        self.logit_scale = self.param("logit_scale", P.zeros_init(), (), self.param_dtype)

    def get_text_features(self, input_ids, attention_mask=None, position_ids=None, deterministic: bool = True):
        """The projected (not normalised) pooled text states, `CLIPModel.get_text_features`."""
        text = self.text_model(input_ids, attention_mask, position_ids, deterministic)
        return self.text_projection(text.pooler_output)

    def get_image_features(self, pixel_values, deterministic: bool = True):
        vision = self.vision_model(pixel_values, deterministic)
        return self.visual_projection(vision.pooler_output)

    def __call__(self, input_ids, pixel_values, attention_mask=None, position_ids=None, return_loss: bool = False,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False):
        vision = self.vision_model(pixel_values, deterministic, output_attentions, output_hidden_states)
        text = self.text_model(input_ids, attention_mask, position_ids, deterministic, output_attentions,
                               output_hidden_states)
        # As transformers: each tower's pooler_output is replaced by its projection.
        vision = outputs.BaseModelOutput(last_hidden_state=vision.last_hidden_state,
                                         pooler_output=self.visual_projection(vision.pooler_output),
                                         hidden_states=vision.hidden_states, attentions=vision.attentions)
        text = outputs.BaseModelOutput(last_hidden_state=text.last_hidden_state,
                                       pooler_output=self.text_projection(text.pooler_output),
                                       hidden_states=text.hidden_states, attentions=text.attentions)
        image_embeds = l2_normalize(vision.pooler_output)
        text_embeds = l2_normalize(text.pooler_output)
        logits_per_text = jnp.einsum("td,id->ti", text_embeds, image_embeds)
        logits_per_text = logits_per_text * jnp.exp(jnp.asarray(self.logit_scale, self.dtype))
        logits_per_image = jnp.transpose(logits_per_text, (1, 0))
        loss = None
        if return_loss:
            loss = contrastive_loss(logits_per_text)
        return outputs.CLIPOutput(loss=loss, logits_per_image=logits_per_image, logits_per_text=logits_per_text,
                                  text_embeds=text_embeds, image_embeds=image_embeds, text_model_output=text,
                                  vision_model_output=vision)
