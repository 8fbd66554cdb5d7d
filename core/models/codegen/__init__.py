"""CodeGen (`model_type: codegen`): config (JAX-free) and key map. The modules are GPT-J's
(`core.models.gptj.modeling`) with one fused `qkv_proj`: CodeGen differs from GPT-J only by
that projection's layout, which the key map undoes."""
from core.models.codegen.config import CodeGenConfig

__all__ = ["CodeGenConfig"]
