"""`generate` in the torch and TF ports: greedy and beam search token-identical to the JAX model
and to `transformers.generate`, for every decoder family with a generated port, on a left-padded
batch (the ports step their own KV cache; `core.generation.host` chooses the tokens)."""
import numpy as np
import pytest
import tensorflow as tf
import torch

import ports.tf as ptf
import ports.torch as pt
from core import AutoModelForCausalLM, AutoModelForSeq2SeqLM
from core.generation import host
from core.generation.config import GenerationConfig
from tests import parity
from tests.test_tf_port import DECODERS as TF_DECODERS
from tests.test_torch_port import SPECS

SETTINGS = {"greedy": dict(max_new_tokens=12), "beam": dict(max_new_tokens=10, num_beams=3, length_penalty=0.7)}
PORTS = {"torch": pt, "tf": ptf}
# Decoder-only families (TF_DECODERS leaves out the seq2seq families' decoder-alone heads); both
# ports generate through the same host loop.
CASES = [(port, package, name) for port in PORTS for package in TF_DECODERS for name in SETTINGS]


@pytest.mark.parametrize("port,package,setting", [
    pytest.param(*c, marks=parity.extended_unless_representative(c[1]), id="-".join(c)) for c in CASES])
def test_port_generates_the_tokens_of_jax_and_transformers(port, package, setting, tmp_path):
    spec = SPECS[package]
    model_type, task, overrides, _ = next(c for c in spec.cases() if c[1] == "causal-lm")
    reference, folder = spec.build(model_type, task, overrides, tmp_path)
    inputs, _ = spec.inputs(task, overrides, ("left",))
    ids, mask = np.asarray(inputs["input_ids"]), np.asarray(inputs["attention_mask"])
    kwargs = dict(SETTINGS[setting], do_sample=False)
    pad = reference.config.pad_token_id if reference.config.pad_token_id is not None else 0
    with torch.no_grad():
        expected = reference.generate(**parity.to_torch({"input_ids": ids, "attention_mask": mask}), pad_token_id=pad,
                                      **kwargs).numpy()
    ours = AutoModelForCausalLM.from_pretrained(folder).generate(ids, attention_mask=mask, pad_token_id=pad, **kwargs)
    model = PORTS[port].AutoModelForCausalLM.from_pretrained(folder)
    got = np.asarray(model.generate(ids, attention_mask=mask, pad_token_id=pad, **kwargs))
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(got, expected)


def test_host_loop_equals_the_jax_loop_on_sampling_free_processors(tmp_path):
    """Repetition penalty and min_new_tokens through the host loop (torch port) equal JAX."""
    spec = SPECS["gpt2"]
    model_type, task, overrides, _ = next(c for c in spec.cases() if c[1] == "causal-lm")
    _, folder = spec.build(model_type, task, overrides, tmp_path)
    inputs, _ = spec.inputs(task, overrides, ("left",))
    kwargs = dict(max_new_tokens=9, min_new_tokens=6, repetition_penalty=1.7, eos_token_id=3, pad_token_id=0)
    want = AutoModelForCausalLM.from_pretrained(folder).generate(inputs["input_ids"], inputs["attention_mask"],
                                                                 **kwargs)
    got = pt.AutoModelForCausalLM.from_pretrained(folder).generate(inputs["input_ids"], inputs["attention_mask"],
                                                                   **kwargs)
    np.testing.assert_array_equal(got.numpy(), want)


def test_sampling_in_the_ports_is_reproducible_with_a_seed(tmp_path):
    spec = SPECS["gpt2"]
    model_type, task, overrides, _ = next(c for c in spec.cases() if c[1] == "causal-lm")
    _, folder = spec.build(model_type, task, overrides, tmp_path)
    model = ptf.AutoModelForCausalLM.from_pretrained(folder)
    ids = np.array([[5, 6, 7]])
    options = dict(do_sample=True, top_k=10, top_p=0.9, max_new_tokens=8, min_new_tokens=8)
    first = model.generate(ids, seed=3, **options).numpy()
    again = model.generate(ids, seed=3, **options).numpy()
    other = model.generate(ids, seed=4, **options).numpy()
    np.testing.assert_array_equal(first, again)
    assert first.shape == (1, 11) and not np.array_equal(first, other)


def test_host_processors_match_the_jax_processors():
    import jax.numpy as jnp
    from core.generation import processors as proc
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(3, 17)).astype(np.float32)
    sequences = rng.integers(0, 17, size=(3, 9)).astype(np.int32)
    config = GenerationConfig().merged(None, do_sample=True, temperature=0.7, top_k=5, top_p=0.8, min_p=0.05,
                                       repetition_penalty=1.3, min_new_tokens=2, eos_token_id=4)
    request = host.Request(sequences, np.ones_like(sequences), sequences, np.array([0, 2, 1], np.int32), 3, 12, 8,
                           (4,), 0, config)
    got = host.process(request, scores, sequences, 7, warp=True)
    want = proc.repetition_penalty(jnp.asarray(scores), jnp.asarray(sequences), 7, jnp.asarray([0, 2, 1]), 1.3)
    want = proc.min_length(want, 7, 8, jnp.asarray([4]))
    want = proc.min_p(proc.top_p(proc.top_k(proc.temperature(want, 0.7), 5), 0.8), 0.05)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-6)
    assert tf.reduce_all(tf.math.is_inf(tf.constant(got[:, 4])))


SEQ2SEQ_SETTINGS = {"greedy": dict(max_new_tokens=9, forced_bos_token_id=5),
                    "beam": dict(max_new_tokens=8, num_beams=3, num_return_sequences=2, length_penalty=0.6)}
# transformers sizes T5's generate cache by num_layers: the reference needs as many decoder layers.
SEQ2SEQ_OVERRIDES = {"bart": {}, "t5": {"num_decoder_layers": 2}}


@pytest.mark.parametrize("package", sorted(SEQ2SEQ_OVERRIDES))
def test_port_seq2seq_generates_the_tokens_of_jax_and_transformers(package, tmp_path):
    """Both ports, greedy and beam: encoder once, cross-attention cache filled at the first decoder
    step, forced BOS (and BART's forced EOS at max length), several returned beams, padded sources."""
    spec = SPECS[package]
    model_type, task, overrides, extra = next(c for c in spec.cases() if c[1] == "seq2seq-lm")
    overrides = {**overrides, **SEQ2SEQ_OVERRIDES[package]}
    reference, folder = spec.build(model_type, task, overrides, tmp_path)
    inputs, _ = spec.inputs(task, overrides, extra)
    ids, mask = np.asarray(inputs["input_ids"]), np.asarray(inputs["attention_mask"])
    assert (mask == 0).any(), "the check needs a padded source"
    jax_model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    port_models = {port: module.AutoModelForSeq2SeqLM.from_pretrained(folder) for port, module in PORTS.items()}
    for setting, kwargs in SEQ2SEQ_SETTINGS.items():
        kwargs = dict(kwargs, do_sample=False)
        with torch.no_grad():
            expected = reference.generate(**parity.to_torch({"input_ids": ids, "attention_mask": mask}),
                                          **kwargs).numpy()
        np.testing.assert_array_equal(jax_model.generate(ids, attention_mask=mask, **kwargs), expected, setting)
        for port, model in port_models.items():
            got = np.asarray(model.generate(ids, attention_mask=mask, **kwargs))
            np.testing.assert_array_equal(got, expected, f"{port} {setting}")
        if "forced_bos_token_id" in kwargs:
            assert (expected[:, 1] == kwargs["forced_bos_token_id"]).all()


# XLA compiles each step shape (~10 s a model here): GPT-2 in CI, the others with ROSETTA_FULL=1.
@pytest.mark.parametrize("package,task", [
    ("gpt2", "causal-lm"),
    pytest.param("llama", "causal-lm", marks=pytest.mark.extended),
    pytest.param("bart", "seq2seq-lm", marks=pytest.mark.extended)])
def test_tf_port_xla_decode_step_gives_the_same_tokens(package, task, tmp_path):
    """`generate(jit_compile=True)` (the cached step compiled by XLA) equals the default graph
    step, greedy on a left-padded batch and beam search."""
    spec = SPECS[package]
    model_type, task, overrides, extra = next(c for c in spec.cases() if c[1] == task)
    _, folder = spec.build(model_type, task, overrides, tmp_path)
    inputs, _ = spec.inputs(task, overrides, extra if task == "seq2seq-lm" else ("left",))
    ids, mask = np.asarray(inputs["input_ids"]), np.asarray(inputs["attention_mask"])
    auto = ptf.AutoModelForSeq2SeqLM if task == "seq2seq-lm" else ptf.AutoModelForCausalLM
    model = auto.from_pretrained(folder)
    for kwargs in (dict(max_new_tokens=8), dict(max_new_tokens=6, num_beams=2)):
        kwargs = dict(kwargs, do_sample=False, pad_token_id=0)
        graph = model.generate(ids, attention_mask=mask, **kwargs).numpy()
        xla = model.generate(ids, attention_mask=mask, jit_compile=True, **kwargs).numpy()
        np.testing.assert_array_equal(xla, graph, str(kwargs))
    assert ("causal" if task == "causal-lm" else "seq2seq", True) in model.__dict__["_decode_steps"]


def test_tf_port_never_gathers_from_a_variable(tmp_path):
    """Embedding lookups gather from a dense read: a ResourceGather would switch the table to
    copy-on-read for good, and every later read (the tied LM head at each decode step) would
    copy it whole."""
    spec = SPECS["gpt2"]
    model_type, task, overrides, _ = next(c for c in spec.cases() if c[1] == "causal-lm")
    _, folder = spec.build(model_type, task, overrides, tmp_path)
    model = ptf.AutoModelForCausalLM.from_pretrained(folder)
    traced = tf.function(lambda ids: model(input_ids=ids).logits).get_concrete_function(
        tf.TensorSpec((1, 5), tf.int32))
    op_types = {op.type for op in traced.graph.get_operations()}
    assert "ResourceGather" not in op_types and "GatherV2" in op_types and "MatMul" in op_types


def test_port_generate_refuses_a_seq2seq_model_without_a_head(tmp_path):
    spec = SPECS["bart"]
    _, folder = spec.build("bart", "base", {}, tmp_path)
    with pytest.raises(TypeError, match="AutoModelForSeq2SeqLM"):
        pt.AutoModel.from_pretrained(folder).generate(np.ones((1, 3), np.int64), max_new_tokens=2)


# -- Whisper ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory):
    """tests/test_whisper.py's tiny multilingual Whisper (weights std 1: argmax varies) and its folder."""
    import transformers
    from tests.test_whisper import GENERATION_CONFIG, TINY
    torch.manual_seed(0)
    reference = transformers.WhisperForConditionalGeneration._from_config(
        transformers.WhisperConfig(**TINY), attn_implementation="eager").eval()
    parity.randomize_(reference, 0, std=1.0)
    reference.generation_config = transformers.GenerationConfig(**GENERATION_CONFIG)
    folder = tmp_path_factory.mktemp("port-whisper-generate")
    reference.save_pretrained(folder)
    return reference, folder


def test_port_whisper_generate_is_token_identical_to_jax_and_transformers(whisper_folder):
    """Both ports route `generate(input_features=...)` through `core.generation.whisper`: tests/test_whisper.py's
    cases (4-token decoder prompt with language + task, language detection, beam 2 with a language per row; the
    file's suppress / begin-suppress tokens always active) plus suppress_tokens banning greedy's favourite
    tokens. Ports == transformers on every case, == the JAX model on the greedy ones (one compiled loop; JAX's
    beam == transformers on this model and case is tests/test_whisper.py's)."""
    from core import AutoModelForSpeechSeq2Seq
    from tests.test_whisper import EOS, GENERATE_CASES, TINY, task_inputs
    reference, folder = whisper_folder
    features = task_inputs("base", TINY)[0]["input_features"]
    jax_model = AutoModelForSpeechSeq2Seq.from_pretrained(folder)
    port_models = {port: module.AutoModelForSpeechSeq2Seq.from_pretrained(folder) for port, module in PORTS.items()}
    cases = {name: GENERATE_CASES[name] for name in ("greedy", "greedy-detect-language", "beam")}
    with torch.no_grad():
        plain = reference.generate(input_features=torch.tensor(features), **cases["greedy"]).numpy()
    values, counts = np.unique(plain[plain != EOS], return_counts=True)
    banned = [int(t) for t in values[np.argsort(-counts, kind="stable")[:2]]]
    cases["greedy-suppress"] = dict(cases["greedy"], suppress_tokens=banned)
    for name, kwargs in cases.items():
        with torch.no_grad():
            expected = reference.generate(input_features=torch.tensor(features), **kwargs).numpy()
        if name.startswith("greedy"):
            np.testing.assert_array_equal(jax_model.generate(input_features=features, **kwargs), expected, name)
        for port, model in port_models.items():
            got = model.generate(input_features=features, **kwargs)
            assert got.dtype in (torch.int64, tf.int64), (port, got.dtype)
            np.testing.assert_array_equal(np.asarray(got), expected, f"{port} {name}")
    assert not np.isin(expected, banned).any() and not np.array_equal(expected, plain)
    # the features positionally, as a torch tensor
    np.testing.assert_array_equal(port_models["torch"].generate(torch.tensor(features), **cases["greedy"]).numpy(),
                                  plain)
