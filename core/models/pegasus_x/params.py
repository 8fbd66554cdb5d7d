"""PEGASUS-X: Hugging Face tensor names ⇄ Flax param paths. Checkpoints hold `shared` only
(encoder/decoder embed_tokens and lm_head are tied copies)."""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.pegasus_x.config import PegasusXConfig


def model_rules(config: PegasusXConfig) -> list[Rule]:
    rules = embedding("shared", "shared") + embedding("encoder.embed_global", "encoder/embed_global")
    enc = "encoder.layers.{layer}"
    enc_flax = "encoder/layers/block"
    for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
        rules += dense(f"{enc}.self_attn.{proj}", f"{enc_flax}/self_attn/{proj}", False)
    for norm in ("self_attn_layer_norm", "global_self_attn_layer_norm", "final_layer_norm"):
        rules += layer_norm(f"{enc}.{norm}", f"{enc_flax}/{norm}")
    rules += dense(f"{enc}.fc1", f"{enc_flax}/fc1") + dense(f"{enc}.fc2", f"{enc_flax}/fc2")
    rules += layer_norm("encoder.layer_norm", "encoder/layer_norm")
    dec = "decoder.layers.{layer}"
    dec_flax = "decoder/layers/block"
    for attention in ("self_attn", "encoder_attn"):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            rules += dense(f"{dec}.{attention}.{proj}", f"{dec_flax}/{attention}/{proj}", False)
    for norm in ("self_attn_layer_norm", "encoder_attn_layer_norm", "final_layer_norm"):
        rules += layer_norm(f"{dec}.{norm}", f"{dec_flax}/{norm}")
    rules += dense(f"{dec}.fc1", f"{dec_flax}/fc1") + dense(f"{dec}.fc2", f"{dec_flax}/fc2")
    rules += layer_norm("decoder.layer_norm", "decoder/layer_norm")
    return rules


# Tied copies of `shared` some writers keep; sinusoid tables are computed.
IGNORE = [r"(encoder|decoder)\.embed_tokens\.weight", r"(encoder|decoder)\.embed_positions\.\w+"]


def key_map(config: PegasusXConfig, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(model_rules(config), IGNORE)
    if task == "seq2seq-lm":
        return KeyMap(prefixed("model", "model", model_rules(config)),
                      [r"model\." + p for p in IGNORE] + [r"lm_head\.weight"])
    raise ValueError(f"PEGASUS-X has no task {task!r}")
