"""MVP (core/models/bart, `MvpConfig`): BART plus optional layer-wise prompts. Every head against
`transformers` on tiny non-default configs (prompts on and off), cached decoding with prompts,
generate token identity, the saved folder loading in transformers, config checks."""
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
from tests.test_bart import (GENERATE_CASES, OUTPUT_FIELDS, SOURCE_LENGTH, TINY as BART_TINY, source_batch,
                             target_batch, task_inputs)

__all__ = ["task_inputs"]

# MvpForCausalLM reports cross_attentions=None without an encoder where BART's gives (): the
# same (no maps), so that field is left out there.
OUTPUT_FIELDS = {**OUTPUT_FIELDS, "causal-lm": ("loss", "logits", "hidden_states", "attentions")}

# BART's tiny config (5 encoder / 4 decoder heads, odd FFN widths, 2/3 layers), MVP's keys only
# (transformers' MvpConfig has no forced_eos_token_id), prompts on: 3 rows through a 7-wide MLP.
TINY = {k: v for k, v in BART_TINY.items() if k != "forced_eos_token_id"}
PROMPT = dict(use_prompt=True, prompt_length=3, prompt_mid_dim=7)

HEAD = {"base": transformers.MvpModel, "seq2seq-lm": transformers.MvpForConditionalGeneration,
        "sequence-classification": transformers.MvpForSequenceClassification,
        "question-answering": transformers.MvpForQuestionAnswering, "causal-lm": transformers.MvpForCausalLM}


def build_reference(task, tmp_path, seed=0, std=0.3, **overrides):
    kwargs = {**TINY, **overrides}
    if task == "causal-lm":
        kwargs["encoder_layers"] = kwargs["decoder_layers"]    # transformers sizes its cache by it
    config = transformers.MvpConfig(**kwargs)
    torch.manual_seed(seed)
    model = HEAD[task]._from_config(config, attn_implementation="eager").eval()
    parity.randomize_(model, seed, std=std)
    folder = tmp_path / f"hf-mvp-{task}"
    model.save_pretrained(folder)
    return model, folder


CASES = [
    ("seq2seq-lm", {**PROMPT}, "shift"),
    ("seq2seq-lm", {"tie_word_embeddings": False, "activation_function": "gelu_new", "scale_embedding": True},
     "explicit"),
    ("base", {**PROMPT, "activation_function": "relu"}, "explicit"),
    ("sequence-classification", {**PROMPT, "num_labels": 4}, "explicit"),
    ("question-answering", {**PROMPT, "prompt_length": 5}, "shift"),
    ("causal-lm", {**PROMPT, "tie_word_embeddings": False}, "left"),     # transformers: no prompts here
]


@pytest.mark.parametrize("task,overrides,mode", CASES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, mode, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == "mvp"
    assert not ours.load_report.get("missing"), ours.load_report
    inputs, labels = task_inputs(task, {**TINY, **overrides}, mode)
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    comparison = parity.compare_outputs(got, expected, OUTPUT_FIELDS[task])
    parity.assert_close(comparison, record=record_property, label="mvp vs transformers")
    if overrides.get("use_prompt") and task != "causal-lm":
        # The prompt columns are part of the decoder's attention maps, as in transformers (whose
        # MvpModel builds the encoder without its prompt).
        extra = overrides["prompt_length"]
        assert got.cross_attentions[0].shape[-1] == inputs["input_ids"].shape[1] + extra
        assert got.encoder_attentions[0].shape[-1] == inputs["input_ids"].shape[1]


def test_cached_decoding_with_prompts_equals_the_full_forward(tmp_path, record_property):
    """Prompts are prepended after the cache (never cached): prefill + single steps = full forward."""
    reference, folder = build_reference("seq2seq-lm", tmp_path, **PROMPT)
    ours = PretrainedModel.from_pretrained(folder, task="seq2seq-lm")
    inputs = {**source_batch(TINY), **target_batch(TINY)}
    module, variables = ours.module, {"params": ours.params}
    apply = jax.jit(module.apply, static_argnames=("method", "fill_cross_cache"))
    ids, mask = inputs["decoder_input_ids"], inputs["decoder_attention_mask"]
    batch, length = ids.shape
    encoded = apply(variables, inputs["input_ids"], inputs["attention_mask"], method="encode")
    cache = module.apply(variables, batch, length, SOURCE_LENGTH, method="init_cache")
    out = apply(variables, ids[:, :3], encoded.last_hidden_state, inputs["attention_mask"], mask, cache, 0,
                fill_cross_cache=True, method="decode")
    steps = [np.asarray(out.logits)]
    for t in range(3, length):
        out = apply(variables, ids[:, t:t + 1], None, inputs["attention_mask"], mask, out.cache, t,
                    fill_cross_cache=False, method="decode")
        steps.append(np.asarray(out.logits))
    cached = np.concatenate(steps, axis=1)
    with torch.no_grad():
        expected = reference(**parity.to_torch(inputs)).logits.numpy()
    real = mask == 1
    diff = float(np.abs(cached[real] - expected[real]).max())
    record_property("parity:mvp vs transformers", diff)
    assert diff <= parity.TOL, diff


@pytest.mark.parametrize("name", list(GENERATE_CASES))
def test_generate_is_token_identical_to_transformers(name, tmp_path):
    from core import AutoModelForSeq2SeqLM
    overrides = {**PROMPT, "max_position_embeddings": 40, "decoder_layers": 2}
    reference, folder = build_reference("seq2seq-lm", tmp_path, seed=1, std=0.5, **overrides)
    with torch.no_grad():
        reference.final_logits_bias.copy_(0.5 * torch.randn(reference.final_logits_bias.shape,
                                                              generator=torch.Generator().manual_seed(3)))
    reference.save_pretrained(folder)
    ours = AutoModelForSeq2SeqLM.from_pretrained(folder)
    batch = source_batch({**TINY, **overrides}, seed=5)
    kwargs = GENERATE_CASES[name]
    with torch.no_grad():
        expected = reference.generate(torch.tensor(batch["input_ids"]), attention_mask=torch.tensor(
            batch["attention_mask"]), do_sample=False, **kwargs).numpy()
    got = ours.generate(batch["input_ids"], attention_mask=batch["attention_mask"], do_sample=False, **kwargs)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_array_equal(got, expected)
    assert got.shape[1] >= 33


def test_saved_folder_loads_in_transformers(tmp_path):
    from safetensors import safe_open
    reference, folder = build_reference("seq2seq-lm", tmp_path, **PROMPT)
    ours = PretrainedModel.from_pretrained(folder, task="seq2seq-lm")
    out = tmp_path / "rosetta"
    ours.save_pretrained(out)
    with safe_open(str(folder / "model.safetensors"), "np") as original, \
            safe_open(str(out / "model.safetensors"), "np") as saved:
        assert sorted(saved.keys()) == sorted(original.keys())
        for key in original.keys():
            np.testing.assert_array_equal(saved.get_tensor(key), original.get_tensor(key), err_msg=key)
    reloaded = transformers.MvpForConditionalGeneration.from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_config_round_trip(tmp_path):
    transformers.MvpConfig(**TINY, **PROMPT).save_pretrained(tmp_path)
    original = json.loads((tmp_path / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    ours = AutoConfig.from_pretrained(tmp_path).from_dict(original)
    assert ours.model_type == "mvp" and ours.uses_prompts and ours.prompt_length == 3
    assert ours.to_dict() == original and list(ours.to_dict()) == list(original)
    reference_defaults, fresh = transformers.MvpConfig(), type(ours)()
    for key in ("vocab_size", "d_model", "encoder_layers", "pad_token_id", "eos_token_id", "decoder_start_token_id",
                "use_prompt", "prompt_length", "prompt_mid_dim", "num_labels", "scale_embedding"):
        assert getattr(fresh, key) == getattr(reference_defaults, key), key
    assert fresh.forced_eos_token_id is None and not hasattr(reference_defaults, "forced_eos_token_id")


def test_bad_configs_get_clear_errors(tmp_path):
    transformers.MvpConfig(**TINY).save_pretrained(tmp_path)
    original = json.loads((tmp_path / "config.json").read_text())
    cls = type(AutoConfig.from_pretrained(tmp_path))
    with pytest.raises(ConfigError, match="'prompt_length'.*positive int"):
        cls.from_dict({**original, "use_prompt": True, "prompt_length": 0})
    with pytest.raises(ConfigError, match="'d_model'.*multiple of decoder_attention_heads=4"):
        cls.from_dict({**original, "d_model": 25, "encoder_attention_heads": 5})


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_ports_match_transformers(framework, tmp_path, record_property):
    """The generated BART-family ports run MVP too (prompts included): tests/test_torch_port.py
    and test_tf_port.py cover the family through tests/test_bart.py's cases, so MVP is checked here."""
    reference, folder = build_reference("seq2seq-lm", tmp_path, **PROMPT)
    inputs, labels = task_inputs("seq2seq-lm", {**TINY, **PROMPT}, "explicit")
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    if framework == "torch":
        import ports.torch as pt
        port = pt.AutoModelForSeq2SeqLM.from_pretrained(folder)
        with torch.no_grad():
            got = port(**parity.to_torch({**inputs, **labels}), output_hidden_states=True, output_attentions=True)
    else:
        import tensorflow as tf
        import ports.tf as ptf
        port = ptf.AutoModelForSeq2SeqLM.from_pretrained(folder)
        got = port(**{k: tf.convert_to_tensor(v) for k, v in {**inputs, **labels}.items()},
                   output_hidden_states=True, output_attentions=True)
    assert port.config.model_type == "mvp"
    parity.assert_close(parity.compare_outputs(got, expected, OUTPUT_FIELDS["seq2seq-lm"]), record=record_property,
                        label=f"{framework} port of mvp vs transformers")
