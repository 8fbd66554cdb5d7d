"""CodeGen: Hugging Face tensor names ⇄ Flax param paths (GPT-J's, with a fused `qkv_proj`).

`transformers`' `CodeGenAttention` splits the fused output as
`qkv.view(..., mp_num=4, 3 * local_dim).split(local_dim)` in the order (query, value, key):
output row `g * 3 * local_dim + s * local_dim + j` is channel `g * local_dim + j` of q (s=0),
v (s=1) or k (s=2). `QKV` reorders the rows to [q | k | v] on load (then transposes, as for
any torch Linear) and back on save, bit for bit.
"""
import numpy as np

from core.checkpoint.keymap import KeyMap, Rule, Transform
from core.models.codegen.config import MP_NUM, CodeGenConfig
from core.models.gptj import params as gptj

QKV_ORDER = (0, 2, 1)  # transformers' (q, v, k) slots, read in the order q, k, v (self-inverse)


def _to_flax(weight: np.ndarray) -> np.ndarray:
    rows, cols = weight.shape
    grouped = np.reshape(weight, (MP_NUM, 3, rows // (3 * MP_NUM), cols))
    parts = [np.reshape(grouped[:, s], (rows // 3, cols)) for s in QKV_ORDER]
    return np.ascontiguousarray(np.concatenate(parts, axis=0).T)


def _to_hf(kernel: np.ndarray) -> np.ndarray:
    weight = kernel.T
    rows, cols = weight.shape
    q, k, v = (np.reshape(part, (MP_NUM, rows // (3 * MP_NUM), cols)) for part in np.split(weight, 3, axis=0))
    return np.ascontiguousarray(np.reshape(np.stack([q, v, k], axis=1), (rows, cols)))


QKV = Transform("codegen-qkv", _to_flax, _to_hf, lambda s: (s[1], s[0]))


def decoder_rules(config: CodeGenConfig) -> list[Rule]:
    fused = [Rule(f"{gptj.LAYER}.attn.qkv_proj.weight", f"{gptj.BLOCK}/attn/qkv_proj/kernel", QKV)]
    return gptj.decoder_rules(config, attention=fused)


def key_map(config: CodeGenConfig, task: str) -> KeyMap:
    return gptj.key_map(config, task, decoder_rules(config), name="CodeGen")
