"""FSMT (core/models/bart, `FSMTConfig`): fairseq's WMT transformer as a variation of the BART
skeleton. Both heads against `transformers` on tiny non-default configs (separate source and
target vocabularies, tied and untied), cached decoding, generate token identity, the saved folder
loading in transformers, config checks.

transformers' FSMTModel skips the decoder's causal and padding masks when `use_cache` is on and
`decoder_input_ids` are given (its config default; the LM head turns it off with labels): the
reference runs with use_cache=False, the causal decoder every other path (and generate) uses."""
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
from tests.test_bart import GENERATE_CASES, SOURCE_LENGTH, TARGET_LENGTH, source_batch, target_batch
from tests.test_bart import OUTPUT_FIELDS as BART_FIELDS

# Unequal vocabularies (53 source, 47 target), 5 encoder / 4 decoder heads, odd FFN widths, more
# decoder than encoder layers, gelu instead of fairseq's relu.
TINY = dict(langs=["en", "de"], src_vocab_size=53, tgt_vocab_size=47, d_model=20, encoder_layers=2, decoder_layers=3,
            encoder_attention_heads=5, decoder_attention_heads=4, encoder_ffn_dim=27, decoder_ffn_dim=31,
            max_position_embeddings=14, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
            activation_function="gelu", pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
            forced_eos_token_id=2)
OUTPUT_FIELDS = {task: BART_FIELDS[task] for task in ("base", "seq2seq-lm")}
HEAD = {"base": transformers.FSMTModel, "seq2seq-lm": transformers.FSMTForConditionalGeneration}


def restore_sinusoids_(model):
    """The sinusoidal tables are (frozen) parameters that `parity.randomize_` overwrote."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, transformers.models.fsmt.modeling_fsmt.SinusoidalPositionalEmbedding):
                module.weight.copy_(module.get_embedding(*module.weight.shape, module.padding_idx))
    return model


def build_reference(task, tmp_path, seed=0, std=0.3, **overrides):
    config = transformers.FSMTConfig(**{**TINY, **overrides})
    torch.manual_seed(seed)
    model = HEAD[task]._from_config(config, attn_implementation="eager").eval()
    restore_sinusoids_(parity.randomize_(model, seed, std=std))
    folder = tmp_path / f"hf-fsmt-{task}"
    model.save_pretrained(folder)
    return model, folder


def task_inputs(task, config_kwargs, mode="explicit", seed=0):
    """Source ids from the source vocabulary, decoder inputs and labels from the target one."""
    tied = config_kwargs.get("tie_word_embeddings", False)
    source_vocab = config_kwargs["tgt_vocab_size" if tied else "src_vocab_size"]
    batch = source_batch({**config_kwargs, "vocab_size": source_vocab}, seed)
    # Without decoder inputs FSMT shifts the *source* ids (labels too): then labels are as long.
    length = SOURCE_LENGTH if mode == "shift" else TARGET_LENGTH
    target = target_batch({**config_kwargs, "vocab_size": config_kwargs["tgt_vocab_size"]}, seed, length=length)
    labels = {}
    if task == "seq2seq-lm":
        labels["labels"] = np.where(target["decoder_attention_mask"] == 1, target["decoder_input_ids"], -100)
    if mode == "explicit":
        batch.update(target)
    return batch, labels


CASES = [
    ("seq2seq-lm", {}, "explicit"),
    ("seq2seq-lm", {"tie_word_embeddings": True, "scale_embedding": False, "activation_function": "relu"}, "shift"),
    ("base", {"d_model": 15, "encoder_attention_heads": 3, "decoder_attention_heads": 5}, "explicit"),
    # Shifted source ids feed the decoder: a source vocabulary inside the target one.
    ("base", {"pad_token_id": 0, "bos_token_id": 1, "src_vocab_size": 40}, "shift"),
]


@pytest.mark.parametrize("task,overrides,mode", CASES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(CASES)])
def test_parity_with_transformers(task, overrides, mode, tmp_path, record_property):
    reference, folder = build_reference(task, tmp_path, **overrides)
    ours = PretrainedModel.from_pretrained(folder, task=task)
    assert ours.config.model_type == "fsmt"
    inputs, labels = task_inputs(task, {**TINY, **overrides}, mode)
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), use_cache=False, output_hidden_states=True,
                             output_attentions=True)
    got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
    comparison = parity.compare_outputs(got, expected, OUTPUT_FIELDS[task])
    parity.assert_close(comparison, record=record_property, label="fsmt vs transformers")


def test_cached_decoding_equals_the_full_forward(tmp_path, record_property):
    reference, folder = build_reference("seq2seq-lm", tmp_path)
    ours = PretrainedModel.from_pretrained(folder, task="seq2seq-lm")
    inputs, _ = task_inputs("seq2seq-lm", TINY)
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
        expected = reference(**parity.to_torch(inputs), use_cache=False).logits.numpy()
    real = mask == 1
    diff = float(np.abs(cached[real] - expected[real]).max())
    record_property("parity:fsmt vs transformers", diff)
    assert diff <= parity.TOL, diff


@pytest.mark.parametrize("name", list(GENERATE_CASES))
def test_generate_is_token_identical_to_transformers(name, tmp_path):
    from core import AutoModelForSeq2SeqLM
    overrides = {"max_position_embeddings": 40, "decoder_layers": 2}
    reference, folder = build_reference("seq2seq-lm", tmp_path, seed=1, std=0.5, **overrides)
    ours = AutoModelForSeq2SeqLM.from_pretrained(folder)
    batch, _ = task_inputs("seq2seq-lm", {**TINY, **overrides}, "shift", seed=5)
    kwargs = GENERATE_CASES[name]
    with torch.no_grad():
        expected = reference.generate(torch.tensor(batch["input_ids"]), attention_mask=torch.tensor(
            batch["attention_mask"]), do_sample=False, **kwargs).numpy()
    got = ours.generate(batch["input_ids"], attention_mask=batch["attention_mask"], do_sample=False, **kwargs)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_array_equal(got, expected)
    assert got.shape[1] >= 33


@pytest.mark.parametrize("tie", [False, True])
def test_saved_folder_loads_in_transformers(tie, tmp_path, record_property):
    reference, folder = build_reference("seq2seq-lm", tmp_path, tie_word_embeddings=tie)
    ours = PretrainedModel.from_pretrained(folder, task="seq2seq-lm")
    out = tmp_path / "rosetta"
    ours.save_pretrained(out)
    reloaded = transformers.FSMTForConditionalGeneration.from_pretrained(out).eval()
    state = reference.state_dict()
    for key, value in reloaded.state_dict().items():     # the sinusoid tables: recomputed on load
        assert torch.equal(value, state[key]), key
    assert json.loads((out / "config.json").read_text())["architectures"] == ["FSMTForConditionalGeneration"]


def test_config_round_trip(tmp_path):
    transformers.FSMTConfig(**TINY).save_pretrained(tmp_path)
    original = json.loads((tmp_path / "config.json").read_text())
    original["some_future_key"] = {"nested": [1, 2]}
    ours = AutoConfig.from_pretrained(tmp_path).from_dict(original)
    assert ours.model_type == "fsmt" and ours.vocab_size == 53 and ours.target_vocab == 47
    assert ours.to_dict() == original and list(ours.to_dict()) == list(original)
    reference_defaults, fresh = transformers.FSMTConfig(), type(ours)()
    for key in ("src_vocab_size", "tgt_vocab_size", "d_model", "encoder_layers", "pad_token_id", "eos_token_id",
                "decoder_start_token_id", "activation_function", "scale_embedding", "tie_word_embeddings",
                "max_position_embeddings", "num_beams", "max_length"):
        assert getattr(fresh, key) == getattr(reference_defaults, key), key
    assert "vocab_size" not in fresh.to_dict()      # transformers would read it as tgt_vocab_size


def test_bad_configs_get_clear_errors():
    from core.models.bart.config import FSMTConfig
    with pytest.raises(ConfigError, match="'src_vocab_size'.*positive int"):
        FSMTConfig(src_vocab_size=0)
    with pytest.raises(ConfigError, match="'d_model'.*multiple of encoder_attention_heads=16"):
        FSMTConfig(d_model=24)


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_ports_match_transformers(framework, tmp_path, record_property):
    """The generated BART-family ports run FSMT too: tests/test_torch_port.py and test_tf_port.py
    cover the family through tests/test_bart.py's cases, so FSMT is checked here."""
    reference, folder = build_reference("seq2seq-lm", tmp_path)
    inputs, labels = task_inputs("seq2seq-lm", TINY, "explicit")
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), use_cache=False, output_hidden_states=True,
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
    assert port.config.model_type == "fsmt"
    parity.assert_close(parity.compare_outputs(got, expected, OUTPUT_FIELDS["seq2seq-lm"]), record=record_property,
                        label=f"{framework} port of fsmt vs transformers")
