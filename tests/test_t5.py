"""T5 / mT5 / UMT5: every head against `transformers` on tiny random configs (v1.0 ReLU and
v1.1 gated-GELU feed-forwards, tied + rescaled and untied LM heads, odd head counts and widths,
epsilon, bucket settings), the decoder cache (encoder once, prefill + cached steps = the full
forward), saving and config round trips."""
import json

import jax
import numpy as np
import pytest
import torch
import transformers

from core import AutoConfig
from core.configuration import ConfigError
from core.modeling import PretrainedModel
from tests import parity

TINY = dict(vocab_size=53, d_model=20, d_kv=6, d_ff=37, num_layers=2, num_decoder_layers=3, num_heads=3,
            relative_attention_num_buckets=12, relative_attention_max_distance=20, layer_norm_epsilon=1e-5,
            dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)

HF = {
    "t5": ("T5Config", "T5"),
    "mt5": ("MT5Config", "MT5"),
    "longt5": ("LongT5Config", "LongT5"),     # tests/test_longt5.py has its own tests; here for the ports
    "umt5": ("UMT5Config", "UMT5"),
}
HEADS = {"base": "Model", "seq2seq-lm": "ForConditionalGeneration",
         "sequence-classification": "ForSequenceClassification", "question-answering": "ForQuestionAnswering",
         "encoder": "EncoderModel"}
ENCODER_FIELDS = ("last_hidden_state", "hidden_states", "attentions")
SEQ2SEQ = ("decoder_hidden_states", "decoder_attentions", "cross_attentions", "encoder_last_hidden_state",
           "encoder_hidden_states", "encoder_attentions")
OUTPUT_FIELDS = {
    "base": ("last_hidden_state",) + SEQ2SEQ,
    "seq2seq-lm": ("loss", "logits") + SEQ2SEQ,
    "sequence-classification": ("loss", "logits") + SEQ2SEQ,
    "question-answering": ("loss", "start_logits", "end_logits") + SEQ2SEQ,
    "encoder": ENCODER_FIELDS,
}


def hf_class(model_type, task):
    return getattr(transformers, HF[model_type][1] + HEADS[task])


def build_reference(model_type, task, tmp_path, seed=0, std=None, untie=False, **overrides):
    """The reference with every weight ~ N(0, std). 0.2, not parity.py's 0.3: T5 attention is
    unscaled (no 1/sqrt(d)), and at 0.3 the decoder's residual stream reaches ~16 by its second
    block, where torch float32 itself is 1.2e-5 off its float64 result. `untie`: a separate `lm_head` (what v1.1 / mT5 /
    Flan checkpoints carry; v5 writes scale_decoder_outputs=false for them)."""
    if std is None:     # UMT5 adds a relative bias in every layer: 0.15 keeps float32 noise below 1e-6
        std = 0.15 if model_type == "umt5" else 0.2
    if untie:
        overrides["tie_word_embeddings"] = False    # v5: scale_decoder_outputs=False, lm_head still tied
    config = getattr(transformers, HF[model_type][0])(**{**TINY, **overrides})
    torch.manual_seed(seed)
    model = hf_class(model_type, task)._from_config(config, attn_implementation="eager").eval()
    if untie:
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    parity.randomize_(model, seed, std=std)
    folder = tmp_path / f"hf-{model_type}-{task}"
    model.save_pretrained(folder)
    if untie and model_type == "mt5":
        # v5 writes `tie_word_embeddings: true` for mT5 whatever it holds; published mT5 configs say false.
        path = folder / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "tie_word_embeddings": False}))
    return model, folder


def task_inputs(task, config_kwargs, seed=0, length=9, decoder_length=7):
    """Right-padded encoder inputs ending in EOS (one per row, as T5ForSequenceClassification
    needs), padded decoder inputs; labels per task."""
    vocab, eos = config_kwargs["vocab_size"], config_kwargs["eos_token_id"]
    batch = parity.padded_batch(vocab, batch=3, length=length, seed=seed)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    ids = np.where(ids == eos, eos + 1, ids)
    ids[np.arange(3), mask.sum(1) - 1] = eos
    inputs = {"input_ids": ids, "attention_mask": mask}
    rng = np.random.default_rng(seed + 1)
    labels = {}
    if task == "encoder":
        return inputs, labels
    target = parity.padded_batch(vocab, batch=3, length=decoder_length, seed=seed + 2, min_length=3)
    if task == "base":
        inputs["decoder_input_ids"] = target["input_ids"]
        inputs["decoder_attention_mask"] = target["attention_mask"]
    elif task == "seq2seq-lm":
        labels["labels"] = np.where(target["attention_mask"] == 1, target["input_ids"], -100)
    elif task == "sequence-classification":
        n_labels = config_kwargs.get("num_labels", 2)
        labels["labels"] = (rng.normal(size=(3,)).astype(np.float32) if n_labels == 1
                            else rng.integers(0, n_labels, size=(3,)))
    elif task == "question-answering":
        labels["start_positions"] = rng.integers(0, length, size=(3,))
        labels["end_positions"] = rng.integers(0, length + 3, size=(3,))
    return inputs, labels


CASES = [
    ("t5", "base", {}),
    ("t5", "seq2seq-lm", {}),
    ("t5", "seq2seq-lm", {"feed_forward_proj": "gated-gelu", "untie": True}),
    ("t5", "sequence-classification", {"num_labels": 3}),
    ("t5", "question-answering", {"feed_forward_proj": "gated-silu"}),
    ("t5", "encoder", {}),
    ("mt5", "base", {"feed_forward_proj": "relu"}),
    ("mt5", "seq2seq-lm", {"untie": True, "num_heads": 5}),
    ("mt5", "sequence-classification", {"num_labels": 1}),
    ("umt5", "base", {}),
    ("umt5", "seq2seq-lm", {"untie": True}),
    ("umt5", "seq2seq-lm", {"feed_forward_proj": "relu", "relative_attention_num_buckets": 8}),
    ("umt5", "question-answering", {}),
    ("umt5", "encoder", {"num_heads": 1}),
    # LongT5 (same package): blocks of 2 over 9 tokens, global blocks of 2; see tests/test_longt5.py.
    ("longt5", "seq2seq-lm", {"encoder_attention_type": "transient-global", "local_radius": 1,
                              "global_block_size": 2}),
    ("longt5", "base", {"local_radius": 1}),
    ("longt5", "encoder", {"encoder_attention_type": "transient-global", "local_radius": 2,
                           "global_block_size": 4}),
]


def config_of(overrides):
    return {k: v for k, v in {**TINY, **overrides}.items() if k != "untie"}


def compare(task, reference, ours, inputs, labels, record_property, label):
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    parity.assert_close(parity.compare_outputs(got, expected, OUTPUT_FIELDS[task]), record=record_property,
                        label=label)


@pytest.mark.parametrize("model_type,task,overrides", CASES, ids=[f"{m}-{t}-{i}" for i, (m, t, _) in enumerate(CASES)])
def test_parity_with_transformers(model_type, task, overrides, tmp_path, record_property):
    reference, folder = build_reference(model_type, task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == model_type
    inputs, labels = task_inputs(task, config_of(overrides))
    compare(task, reference, ours, inputs, labels, record_property, f"{model_type} vs transformers")


@pytest.mark.parametrize("model_type", ["t5", "umt5"])
def test_cached_decoding_equals_the_full_forward(model_type, tmp_path, record_property):
    """Encoder once; decoder prefill of 3 positions (filling the cross cache), then single-token
    steps reading it: every real position's logits equal transformers' full forward."""
    reference, folder = build_reference(model_type, "seq2seq-lm", tmp_path, untie=model_type == "umt5")
    ours = PretrainedModel.from_pretrained(folder, task="seq2seq-lm")
    inputs, labels = task_inputs("seq2seq-lm", TINY)
    target = parity.padded_batch(TINY["vocab_size"], batch=3, length=7, seed=2, min_length=3)
    dec_ids, dec_mask = target["input_ids"], target["attention_mask"]
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, "decoder_input_ids": dec_ids,
                                                "decoder_attention_mask": dec_mask})).logits.numpy()
    module, variables = ours.module, {"params": ours.params}
    apply = jax.jit(module.apply, static_argnames=("method", "fill_cross_cache"))   # eager apply: minutes
    encoded = apply(variables, inputs["input_ids"], inputs["attention_mask"], method="encode")
    cache = module.init_cache(3, 7, inputs["input_ids"].shape[1])
    out = apply(variables, dec_ids[:, :3], encoded.last_hidden_state, inputs["attention_mask"], dec_mask,
                cache, 0, fill_cross_cache=True, method="decode")
    steps = [np.asarray(out.logits)]
    for t in range(3, 7):
        out = apply(variables, dec_ids[:, t:t + 1], None, inputs["attention_mask"], dec_mask, out.cache, t,
                    fill_cross_cache=False, method="decode")
        steps.append(np.asarray(out.logits))
    cached = np.concatenate(steps, axis=1)
    real = dec_mask == 1
    diff = float(np.abs(cached[real] - expected[real]).max())
    record_property(f"parity:{model_type} vs transformers", diff)
    assert diff <= parity.TOL


def test_saved_folder_round_trips_bit_identically_and_loads_in_transformers(tmp_path):
    from safetensors import safe_open
    for untie in (False, True):
        reference, folder = build_reference("t5", "seq2seq-lm", tmp_path / str(untie), untie=untie)
        ours = PretrainedModel.from_pretrained(folder, task="seq2seq-lm")
        out = tmp_path / f"rosetta-{untie}"
        ours.save_pretrained(out)
        with safe_open(str(folder / "model.safetensors"), "np") as original, \
                safe_open(str(out / "model.safetensors"), "np") as saved:
            assert sorted(saved.keys()) == sorted(original.keys())
            assert ("lm_head.weight" in saved.keys()) == untie
            for key in original.keys():
                np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
        reloaded = transformers.T5ForConditionalGeneration.from_pretrained(out).eval()
        state = reference.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert (reloaded.lm_head.weight is reloaded.shared.weight) == (not untie)
        assert json.loads((out / "config.json").read_text())["architectures"] == ["T5ForConditionalGeneration"]


def test_base_and_encoder_load_from_the_lm_checkpoint(tmp_path, record_property):
    reference, folder = build_reference("mt5", "seq2seq-lm", tmp_path, untie=True)
    inputs, _ = task_inputs("encoder", TINY)
    encoder = PretrainedModel.from_pretrained(folder, task="encoder")
    assert "lm_head.weight" in encoder.load_report["dropped"]
    with torch.no_grad():
        expected = reference.encoder(**parity.to_torch(inputs)).last_hidden_state
    diff = parity.max_abs(encoder(**inputs).last_hidden_state, expected)
    record_property("parity:mt5 vs transformers", diff)
    assert diff <= parity.TOL
    base = PretrainedModel.from_pretrained(folder, task="base")
    assert "lm_head.weight" in base.load_report["dropped"]


def test_legacy_untied_config_loads_like_transformers(tmp_path, record_property):
    """config.json as written before v5 (Flan-T5, mT5): `tie_word_embeddings: false`, no
    scale_decoder_outputs: a separate lm_head, no rescaling; written back verbatim."""
    reference, folder = build_reference("t5", "seq2seq-lm", tmp_path, untie=True, feed_forward_proj="gated-gelu")
    config = json.loads((folder / "config.json").read_text())
    del config["scale_decoder_outputs"]
    config["tie_word_embeddings"] = False
    (folder / "config.json").write_text(json.dumps(config))
    reference = transformers.T5ForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()
    assert reference.config.scale_decoder_outputs is False
    ours = PretrainedModel.from_pretrained(folder, task="seq2seq-lm")
    assert ours.config.to_dict() == config and not ours.config.ties_lm_head
    inputs, labels = task_inputs("seq2seq-lm", TINY)
    compare("seq2seq-lm", reference, ours, inputs, labels, record_property, "t5 vs transformers")


def test_config_round_trip_and_errors(tmp_path):
    for model_type in HF:
        _, folder = build_reference(model_type, "base", tmp_path, num_layers=1)
        original = json.loads((folder / "config.json").read_text())
        original["some_future_key"] = {"nested": [1, 2]}
        config = AutoConfig.from_pretrained(folder).from_dict(original)
        assert config.model_type == model_type
        assert config.to_dict() == original and list(config.to_dict()) == list(original)
    cls = type(config)
    assert (config.dense_act_fn, config.is_gated_act, config.decoder_layers) == ("gelu_new", True, 3)
    with pytest.raises(ConfigError, match="feed_forward_proj"):
        cls.from_dict({**original, "feed_forward_proj": "gated-gelu-new"})
    with pytest.raises(ConfigError, match="feed_forward_proj"):
        cls.from_dict({**original, "feed_forward_proj": "swiglu"})
    with pytest.raises(ConfigError, match="is_decoder"):
        cls.from_dict({**original, "is_decoder": True})
    with pytest.raises(ConfigError, match="relative_attention_num_buckets"):
        cls.from_dict({**original, "relative_attention_num_buckets": 2})
