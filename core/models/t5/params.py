"""T5 / mT5 / UMT5 / LongT5: Hugging Face tensor names ⇄ Flax param paths.

`transformers`' `block.{i}.layer.{j}` becomes `block/block/{self_attention, cross_attention,
feed_forward}` (the feed-forward is `layer.1` in the encoder, `layer.2` in the decoder). T5's
relative position table lives in the first block there and on the stack here.
"""
from core.checkpoint.keymap import KeyMap, Rule, dense, embedding, layer_norm, prefixed
from core.models.t5.config import T5Config


def stack_rules(config: T5Config, stack: str) -> list[Rule]:
    is_decoder = stack == "decoder"
    layer = f"{stack}.block.{{layer}}.layer"
    block = f"{stack}/block/block"
    rules = []
    if config.bias_in_every_layer:
        rules += embedding(f"{layer}.0.SelfAttention.relative_attention_bias",
                           f"{block}/self_attention/SelfAttention/relative_attention_bias")
    else:
        rules += embedding(f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias",
                           f"{stack}/relative_attention_bias")
    for proj in ("q", "k", "v", "o"):
        rules += dense(f"{layer}.0.SelfAttention.{proj}", f"{block}/self_attention/SelfAttention/{proj}", False)
    rules += layer_norm(f"{layer}.0.layer_norm", f"{block}/self_attention/layer_norm", bias=False)
    if is_decoder:
        for proj in ("q", "k", "v", "o"):
            rules += dense(f"{layer}.1.EncDecAttention.{proj}", f"{block}/cross_attention/EncDecAttention/{proj}",
                           False)
        rules += layer_norm(f"{layer}.1.layer_norm", f"{block}/cross_attention/layer_norm", bias=False)
    ff = 2 if is_decoder else 1
    weights = ("wi_0", "wi_1", "wo") if config.is_gated_act else ("wi", "wo")
    for name in weights:
        rules += dense(f"{layer}.{ff}.DenseReluDense.{name}", f"{block}/feed_forward/DenseReluDense/{name}", False)
    rules += layer_norm(f"{layer}.{ff}.layer_norm", f"{block}/feed_forward/layer_norm", bias=False)
    rules += layer_norm(f"{stack}.final_layer_norm", f"{stack}/final_layer_norm", bias=False)
    return rules


def long_encoder_rules(config: T5Config) -> list[Rule]:
    """LongT5's encoder: `layer.0.{LocalSelfAttention, TransientGlobalSelfAttention}`; block 0's
    tables (relative, and transient-global's global relative) live on the stack here."""
    attention = "LocalSelfAttention" if config.encoder_attention_type == "local" else "TransientGlobalSelfAttention"
    layer = "encoder.block.{layer}.layer"
    block = "encoder/block/block"
    tables = ("relative_attention_bias",) if attention == "LocalSelfAttention" else (
        "relative_attention_bias", "global_relative_attention_bias")
    rules = []
    for table in tables:
        rules += embedding(f"encoder.block.0.layer.0.{attention}.{table}", f"encoder/{table}")
    for proj in ("q", "k", "v", "o"):
        rules += dense(f"{layer}.0.{attention}.{proj}", f"{block}/self_attention/{attention}/{proj}", False)
    if attention == "TransientGlobalSelfAttention":
        rules += layer_norm(f"{layer}.0.{attention}.global_input_layer_norm",
                            f"{block}/self_attention/{attention}/global_input_layer_norm", bias=False)
    rules += layer_norm(f"{layer}.0.layer_norm", f"{block}/self_attention/layer_norm", bias=False)
    weights = ("wi_0", "wi_1", "wo") if config.is_gated_act else ("wi", "wo")
    for name in weights:
        rules += dense(f"{layer}.1.DenseReluDense.{name}", f"{block}/feed_forward/DenseReluDense/{name}", False)
    rules += layer_norm(f"{layer}.1.layer_norm", f"{block}/feed_forward/layer_norm", bias=False)
    rules += layer_norm("encoder.final_layer_norm", "encoder/final_layer_norm", bias=False)
    return rules


def model_rules(config: T5Config, decoder: bool = True) -> list[Rule]:
    encoder = long_encoder_rules(config) if config.long_encoder else stack_rules(config, "encoder")
    rules = embedding("shared", "shared") + encoder
    if decoder:
        rules += stack_rules(config, "decoder")
    return rules


# Tied copies of `shared` some writers keep, and a table `transformers` declares unused.
IGNORE = [r"encoder\.embed_tokens\.weight", r"decoder\.embed_tokens\.weight",
          r"decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight"]


def key_map(config: T5Config, task: str) -> KeyMap:
    if task == "base":
        return KeyMap(model_rules(config), IGNORE + [r"lm_head\.weight"])
    if task == "encoder":
        return KeyMap(model_rules(config, decoder=False), IGNORE + [r"decoder\..*", r"lm_head\.weight"])
    if task == "seq2seq-lm":
        rules = model_rules(config)
        ignore = list(IGNORE)
        if config.ties_lm_head:
            ignore.append(r"lm_head\.weight")
        else:
            rules += dense("lm_head", "lm_head", bias=False)
        return KeyMap(rules, ignore)
    if task == "question-answering":
        return KeyMap(model_rules(config) + dense("qa_outputs", "qa_outputs"), IGNORE + [r"lm_head\.weight"])
    if task == "sequence-classification":
        rules = prefixed("transformer", "transformer", model_rules(config))
        rules += dense("classification_head.dense", "classification_head/dense")
        rules += dense("classification_head.out_proj", "classification_head/out_proj")
        return KeyMap(rules, [r"transformer\." + p for p in IGNORE])
    raise ValueError(f"T5 has no task {task!r}")
