"""CodeGen configuration (`model_type: codegen`), importable without JAX.

`transformers`' `CodeGenConfig` is GPT-J's plus `n_ctx` (unused by the model, kept so
config.json round-trips). Its attention projects q, k and v with one `qkv_proj` laid out in
`mp_num = 4` tensor-parallel groups, so `n_embd` must split into 4 groups.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from core.models.gptj.config import GPTJConfig

MP_NUM = 4  # transformers' CodeGenAttention.mp_num: the fused projection's group count.


@dataclasses.dataclass(frozen=True, kw_only=True)
class CodeGenConfig(GPTJConfig):
    model_type: ClassVar[str] = "codegen"
    fused_qkv: ClassVar[bool] = True

    n_ctx: int = 2048

    def validate(self):
        super().validate()
        if self.n_embd % MP_NUM:
            self.fail("n_embd", self.n_embd, f"a multiple of {MP_NUM} (CodeGen's qkv_proj has {MP_NUM} groups)")
