"""Feed-forward blocks (canonical, portable subset).

`MLP`: down(act(up(x))) — GPT/BERT-style. `GatedMLP`: down(act(gate(x)) * up(x)) — LLaMA-style
SwiGLU/GeGLU. Families whose reference names differ map them in their key map.
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
