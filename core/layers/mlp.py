"""Feed-forward blocks (canonical, portable subset).

`MLP`: down(act(up(x))) — GPT/BERT-style. `GatedMLP`: down(act(gate(x)) * up(x)) — LLaMA-style
SwiGLU/GeGLU. Families whose reference names differ map them in their key map. `DenseActivation`
and `DenseDropout` are the two halves where the checkpoint keeps them as separate submodules
(ViT-style `intermediate` / `output`, each holding one `dense`).
"""
import flax.linen as nn
import jax.numpy as jnp

from core.layers import prims as P


class MLP(nn.Module):
    features: int
    hidden_features: int
    activation: str
    use_bias: bool = True
    dropout_rate: float = 0.0
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.up = P.Dense(self.hidden_features, self.features, self.use_bias, self.init_std, self.dtype, self.param_dtype)
        self.down = P.Dense(self.features, self.hidden_features, self.use_bias, self.init_std, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(self.dropout_rate)

    def __call__(self, x, deterministic: bool = True):
        return self.dropout(self.down(P.act(self.up(x), self.activation)), deterministic=deterministic)


class GatedMLP(nn.Module):
    features: int
    hidden_features: int
    activation: str
    use_bias: bool = False
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.gate = P.Dense(self.hidden_features, self.features, self.use_bias, self.init_std, self.dtype, self.param_dtype)
        self.up = P.Dense(self.hidden_features, self.features, self.use_bias, self.init_std, self.dtype, self.param_dtype)
        self.down = P.Dense(self.features, self.hidden_features, self.use_bias, self.init_std, self.dtype, self.param_dtype)

    def __call__(self, x):
        return self.down(P.act(self.gate(x), self.activation) * self.up(x))


class DenseActivation(nn.Module):
    """act(dense(x)): the up-projection half (ViT's and Swin's `intermediate`)."""
    features: int
    in_features: int
    activation: str
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.dense = P.Dense(self.features, self.in_features, True, self.init_std, self.dtype, self.param_dtype)

    def __call__(self, x):
        return P.act(self.dense(x), self.activation)


class DenseDropout(nn.Module):
    """dropout(dense(x)), the residual added by the caller: the output projections of ViT-style
    blocks (ViT's and Swin's attention `output` and MLP `output`)."""
    features: int
    in_features: int
    dropout_rate: float = 0.0
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.dense = P.Dense(self.features, self.in_features, True, self.init_std, self.dtype, self.param_dtype)
        self.dropout = P.Dropout(self.dropout_rate)

    def __call__(self, x, deterministic: bool = True):
        return self.dropout(self.dense(x), deterministic=deterministic)
