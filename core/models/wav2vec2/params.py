"""Wav2Vec2 / HuBERT / WavLM: Hugging Face tensor names ⇄ Flax param paths.

The positional conv's weight norm is saved by `transformers` v5 as
`encoder.pos_conv_embed.conv.parametrizations.weight.original0` (g) / `original1` (v); the
module keeps both as params (`weight_g`, `weight_v`), so the rules are identities. Older
checkpoints spell them `conv.weight_g` / `conv.weight_v`: those load too (saving writes the v5
names). HuBERT with `conv_pos_batch_norm` has a plain `conv.weight` and a BatchNorm. WavLM's
relative position bias table lives in the first layer's attention in transformers
(`encoder.layers.0.attention.rel_attn_embed.weight`) and in the encoder here.
"""
from core.checkpoint.keymap import KeyMap, Rule, batch_norm, conv, dense, layer_norm, prefixed
from core.models.wav2vec2.config import SpeechEncoderConfig

TASKS = ("base", "ctc", "sequence-classification", "audio-frame-classification", "audio-xvector")


def base_prefix(config: SpeechEncoderConfig) -> str:
    return config.model_type if config.model_type in ("hubert", "wavlm") else "wav2vec2"


def encoder_rules(config: SpeechEncoderConfig) -> list[Rule]:
    rules = []
    for i in range(len(config.conv_dim)):
        hf, fl = f"feature_extractor.conv_layers.{i}", f"feature_extractor/conv_layers_{i}"
        rules += conv(f"{hf}.conv", f"{fl}/conv", config.conv_bias)
        if config.feat_extract_norm == "layer" or i == 0:
            rules += layer_norm(f"{hf}.layer_norm", f"{fl}/layer_norm")
    if config.projection_layer_norm:
        rules += layer_norm("feature_projection.layer_norm", "feature_projection/layer_norm")
    rules += dense("feature_projection.projection", "feature_projection/projection")
    if config.has_masked_spec_embed:
        rules.append(Rule("masked_spec_embed", "masked_spec_embed"))
    pos = "encoder.pos_conv_embed"
    if config.pos_batch_norm:
        rules += [Rule(f"{pos}.conv.weight", "encoder/pos_conv_embed/conv/weight")]
        rules += batch_norm(f"{pos}.batch_norm", "encoder/pos_conv_embed/batch_norm")
    else:
        rules += [Rule(f"{pos}.conv.parametrizations.weight.original0", "encoder/pos_conv_embed/conv/weight_g"),
                  Rule(f"{pos}.conv.parametrizations.weight.original1", "encoder/pos_conv_embed/conv/weight_v"),
                  Rule(f"{pos}.conv.weight_g", "encoder/pos_conv_embed/conv/weight_g"),
                  Rule(f"{pos}.conv.weight_v", "encoder/pos_conv_embed/conv/weight_v")]
    rules.append(Rule(f"{pos}.conv.bias", "encoder/pos_conv_embed/conv/bias"))
    rules += layer_norm("encoder.layer_norm", "encoder/layer_norm")
    layer, block = "encoder.layers.{layer}", "encoder/layers/block"
    projections = ["q_proj", "k_proj", "v_proj", "out_proj"]
    if config.relative_position_bias:
        projections.append("gru_rel_pos_linear")
        rules += [Rule("encoder.layers.0.attention.rel_attn_embed.weight", "encoder/rel_attn_embed/embedding"),
                  Rule(f"{layer}.attention.gru_rel_pos_const", f"{block}/attention/gru_rel_pos_const")]
    for proj in projections:
        rules += dense(f"{layer}.attention.{proj}", f"{block}/attention/{proj}")
    rules += [
        *layer_norm(f"{layer}.layer_norm", f"{block}/layer_norm"),
        *dense(f"{layer}.feed_forward.{{ff}}", f"{block}/feed_forward/{{ff}}"),
        *layer_norm(f"{layer}.final_layer_norm", f"{block}/final_layer_norm"),
    ]
    return rules


def key_map(config: SpeechEncoderConfig, task: str) -> KeyMap:
    prefix = base_prefix(config)
    ignore = [rf"({prefix}\.)?encoder\.pos_conv_embed\.batch_norm\.num_batches_tracked"]
    if task == "base":
        return KeyMap(encoder_rules(config), ignore)
    rules = prefixed(prefix, prefix, encoder_rules(config))
    if task == "ctc":
        rules += dense("lm_head", "lm_head")
    elif task == "sequence-classification":
        rules += dense("projector", "projector") + dense("classifier", "classifier")
    elif task == "audio-frame-classification" and config.model_type != "hubert":   # as transformers
        rules += dense("classifier", "classifier")
    elif task == "audio-xvector" and config.model_type != "hubert":
        rules += dense("projector", "projector")
        for i in range(len(config.tdnn_dim)):        # nn.Linear (out, in·k) ⇄ Dense (in·k, out)
            rules += dense(f"tdnn.{i}.kernel", f"tdnn_{i}/kernel")
        rules += dense("feature_extractor", "feature_extractor") + dense("classifier", "classifier")
        rules.append(Rule("objective.weight", "objective"))
    else:
        raise ValueError(f"{config.model_type} has no task {task!r}")
    if task != "ctc" and config.use_weighted_layer_sum:
        rules.append(Rule("layer_weights", "layer_weights"))
    return KeyMap(rules, ignore)
