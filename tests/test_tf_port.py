"""The generated TensorFlow port, family by family, against the JAX model and `transformers`.

The same coverage as the torch port's test (`tests/test_torch_port.py`, whose family adapter
this reuses): every registered family with a parity test module, each head once, loaded from
the same Hugging Face folder as the JAX model, must match it and `transformers` on every output
within 1e-5; gradients of a loss (tf.GradientTape) must match JAX's; cached decoding must equal
the full forward; saving must round-trip bit for bit; a SavedModel export must reload and give
the same logits; and the port must import, load and run with JAX and torch unimportable.
"""
import json
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import tensorflow as tf
import torch

import ports.tf as ptf
from core import registry
from core.checkpoint import keymap as km
from core.checkpoint.keymap import KeyMapError
from core.modeling import PretrainedModel
from tests import parity
from tests.test_torch_port import SPECS, gradient_error

ROOT = pathlib.Path(__file__).resolve().parent.parent
AUTO = {"causal-lm": ptf.AutoModelForCausalLM, "base": ptf.AutoModel, "masked-lm": ptf.AutoModelForMaskedLM,
        "sequence-classification": ptf.AutoModelForSequenceClassification,
        "token-classification": ptf.AutoModelForTokenClassification,
        "question-answering": ptf.AutoModelForQuestionAnswering,
        "multiple-choice": ptf.AutoModelForMultipleChoice, "pretraining": ptf.AutoModelForPreTraining,
        "seq2seq-lm": ptf.AutoModelForSeq2SeqLM}

PORTED = {p: s for p, s in SPECS.items() if (ROOT / "ports" / "tf" / "models" / f"{p}.py").exists()}
CASES = [(package, *case) for package, spec in PORTED.items() for case in spec.cases()]


def test_every_tested_family_has_a_port():
    missing = sorted(set(SPECS) - set(PORTED))
    assert not missing, (f"no generated tf port for {missing}: run `python -m scripts.transpile` and fix the "
                         "portable-subset violations it reports")


def tf_inputs(*dicts):
    return {k: tf.convert_to_tensor(np.asarray(v)) for d in dicts for k, v in d.items()}


def load_port(task, folder, **kwargs):
    """The Auto class of `task`, or (tasks without one in `transformers`, like T5's "encoder")
    the registered head class itself."""
    if task in AUTO:
        model = AUTO[task].from_pretrained(folder, **kwargs)
    else:
        model_type = json.loads((folder / "config.json").read_text())["model_type"]
        model = ptf.model_class(model_type, task).from_pretrained(folder, **kwargs)
    assert isinstance(model, tf.Module)
    return model


@pytest.mark.parametrize("package,model_type,task,overrides,extra", parity.port_case_params(CASES))
def test_port_matches_jax_and_transformers(package, model_type, task, overrides, extra, tmp_path, record_property):
    spec = SPECS[package]
    reference, folder = spec.build(model_type, task, overrides, tmp_path)
    inputs, labels = spec.inputs(task, overrides, extra)
    port = load_port(task, folder)
    assert port.config.model_type == model_type
    fields = spec.fields(task)
    with torch.no_grad():
        expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                             output_attentions=True)
    got = port(**tf_inputs(inputs, labels), output_hidden_states=True, output_attentions=True)
    ours = PretrainedModel.from_pretrained(folder, task=task)(**inputs, **labels, output_hidden_states=True,
                                                              output_attentions=True)
    parity.assert_close(parity.compare_outputs(ours, got, fields), record=record_property,
                        label=f"tf port of {package} vs jax")
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label=f"tf port of {package} vs transformers")


# One language-model head per family, with its labels: the loss reaches every parameter.
LM_TASKS = ("masked-lm", "causal-lm", "seq2seq-lm", "image-classification")
GRADIENT_CASES = [next(c for c in CASES if c[0] == package and c[2] in LM_TASKS)
                  for package in PORTED if any(c[0] == package and c[2] in LM_TASKS for c in CASES)]


@pytest.mark.parametrize("package,model_type,task,overrides,extra",
                         [pytest.param(*c, marks=parity.extended_unless_representative(c[0]), id=c[0])
                          for c in GRADIENT_CASES])
def test_gradients_match_jax(package, model_type, task, overrides, extra, tmp_path, record_property):
    spec = SPECS[package]
    _, folder = spec.build(model_type, task, overrides, tmp_path)
    inputs, labels = spec.inputs(task, overrides, extra)
    model = PretrainedModel.from_pretrained(folder, task=task)
    arrays = {k: jax.numpy.asarray(v) for k, v in {**inputs, **labels}.items()}
    jax_grads = jax.jit(jax.grad(lambda p: model.module.apply({"params": p}, **arrays).loss))(model.params)
    jax_grads = {k: np.asarray(v) for k, v in km.flatten(jax_grads).items()}

    port = load_port(task, folder)
    with tf.GradientTape() as tape:
        loss = port(**tf_inputs(inputs, labels)).loss
    tf_grads = port.flax_grads(tape, loss)
    assert sorted(tf_grads) == sorted(jax_grads)
    errors = gradient_error(jax_grads, tf_grads)
    worst = max(errors, key=errors.get)
    record_property(f"parity:tf port of {package} gradients vs jax (relative)", errors[worst])
    assert errors[worst] <= 1e-5, f"{worst}: relative gradient error {errors[worst]:.3g}"


DECODERS = [p for p in PORTED if any("causal-lm" in f.heads and f.modeling.split(".")[2] == p
                                     and "seq2seq-lm" not in f.heads for f in registry.FAMILIES.values())]


@pytest.mark.parametrize("package", [pytest.param(p, marks=parity.extended_unless_representative(p), id=p)
                                     for p in DECODERS])
def test_cached_decoding_equals_the_full_forward(package, tmp_path, record_property):
    """Prefill 5 positions into the static cache, then single-token steps, right and left
    padded: every real token's logits equal the full forward's (and transformers')."""
    spec = SPECS[package]
    model_type, task, overrides, _ = next(c for c in spec.cases() if c[1] == "causal-lm")
    reference, folder = spec.build(model_type, task, overrides, tmp_path)
    port = load_port(task, folder)
    for padding in ("right", "left"):
        inputs, _ = spec.inputs(task, overrides, (padding,))
        ids, mask = np.asarray(inputs["input_ids"]), np.asarray(inputs["attention_mask"])
        batch, length = ids.shape
        with torch.no_grad():
            expected = reference(**parity.to_torch({"input_ids": ids, "attention_mask": mask})).logits.numpy()
        full = port(input_ids=ids, attention_mask=mask).logits.numpy()
        out = port(input_ids=ids[:, :5], attention_mask=mask, cache=port.init_cache(batch, length), cache_index=0)
        steps = [out.logits.numpy()]
        for t in range(5, length):
            out = port(input_ids=ids[:, t:t + 1], attention_mask=mask, cache=out.cache, cache_index=t)
            steps.append(out.logits.numpy())
        cached = np.concatenate(steps, axis=1)
        real = mask == 1
        diff = parity.max_abs(cached[real], expected[real])
        record_property(f"parity:tf port of {package} vs transformers", diff)
        assert diff <= parity.TOL, f"{padding} padding: {diff:.3g}"
        assert parity.max_abs(cached[real], full[real]) <= parity.TOL


# -- behaviour (BERT stands for every family: the runtime is shared) ---------------------------------

def bert_folder(tmp_path, task="masked-lm", **overrides):
    spec = SPECS["bert"]
    reference, folder = spec.build("bert", task, overrides, tmp_path)
    return reference, folder, spec.inputs(task, overrides)


def test_dropout_runs_only_when_asked(tmp_path):
    _, folder, (inputs, _) = bert_folder(tmp_path, "base", hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
    model = load_port("base", folder)
    x = tf_inputs(inputs)
    quiet = model(**x).last_hidden_state.numpy()
    np.testing.assert_array_equal(quiet, model(**x, deterministic=True).last_hidden_state.numpy())
    assert not np.array_equal(quiet, model(**x, deterministic=False).last_hidden_state.numpy())


@pytest.mark.parametrize("package", [pytest.param(p, marks=parity.extended_unless_representative(p), id=p)
                                     for p in sorted(PORTED)])
def test_saved_folder_reloads_bit_identically_in_jax(package, tmp_path):
    spec = SPECS[package]
    model_type, task, overrides, _ = spec.cases()[0]
    _, folder = spec.build(model_type, task, overrides, tmp_path)
    port = load_port(task, folder)
    port.save_pretrained(tmp_path / "saved")
    ours = PretrainedModel.from_pretrained(tmp_path / "saved", task=task)
    flat = km.flatten(jax.tree_util.tree_map(np.asarray, ours.params))
    exported = port.export_flax()
    assert sorted(flat) == sorted(exported)
    for path, value in exported.items():
        np.testing.assert_array_equal(flat[path], value, err_msg=path)
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["model_type"] == model_type


def test_strict_loading_errors(tmp_path):
    _, folder, _ = bert_folder(tmp_path / "base", "base")
    with pytest.raises(KeyMapError, match="init_new_head=True"):
        load_port("sequence-classification", folder)
    model = load_port("sequence-classification", folder, init_new_head=True, id2label={"0": "a", "1": "b", "2": "c"})
    assert sorted(model.load_report["initialised"]) == ["classifier/bias", "classifier/kernel"]
    assert model.flax_shapes()["classifier/kernel"][-1] == 3
    flat = model.export_flax()
    flat.pop(next(iter(flat)))
    flat["nonsense/kernel"] = np.zeros(2)
    before = model.export_flax()
    with pytest.raises(KeyMapError, match="nothing was loaded") as error:
        model.load_flax(flat)
    assert "missing: 1" in str(error.value) and "unexpected: 1" in str(error.value)
    after = model.export_flax()
    assert all(np.array_equal(before[p], after[p]) for p in before)


def test_saved_model_export_reloads_with_the_same_logits(tmp_path):
    """A SavedModel with dynamic batch and length: reloaded without the Python classes, it gives
    the port's logits."""
    _, folder, (inputs, _) = bert_folder(tmp_path, "masked-lm")
    model = load_port("masked-lm", folder)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32)])
    def serve(input_ids, attention_mask):
        return {"logits": model(input_ids=input_ids, attention_mask=attention_mask).logits}

    tf.saved_model.save(model, str(tmp_path / "saved_model"), signatures={"serving_default": serve})
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    ids, mask = np.asarray(inputs["input_ids"], np.int32), np.asarray(inputs["attention_mask"], np.int32)
    want = model(input_ids=ids, attention_mask=mask).logits.numpy()
    got = loaded.signatures["serving_default"](input_ids=tf.constant(ids), attention_mask=tf.constant(mask))["logits"]
    # Graph mode (grappler) may reorder float32 sums: the float32 parity tolerance, not bit equality.
    assert parity.max_abs(got.numpy(), want) <= parity.TOL
    shorter = loaded.signatures["serving_default"](input_ids=tf.constant(ids[:2, :5]),
                                                   attention_mask=tf.constant(mask[:2, :5]))["logits"]
    assert tuple(shorter.shape) == (2, 5, want.shape[-1])


def test_call_runs_under_tf_function_with_unknown_batch_and_length(tmp_path):
    """`tf.function(model.__call__)` traced once for (None, None) ids returns the same output
    dataclass as eager, for any batch and length."""
    _, folder, (inputs, _) = bert_folder(tmp_path, "masked-lm")
    model = load_port("masked-lm", folder)
    spec = tf.TensorSpec([None, None], tf.int32)
    call = tf.function(lambda ids, mask: model(input_ids=ids, attention_mask=mask, output_hidden_states=True),
                       input_signature=[spec, spec])
    ids, mask = np.asarray(inputs["input_ids"], np.int32), np.asarray(inputs["attention_mask"], np.int32)
    eager = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    traced = call(tf.constant(ids), tf.constant(mask))
    assert type(traced) is type(eager) and len(traced.hidden_states) == len(eager.hidden_states)
    assert parity.max_abs(traced.logits.numpy(), eager.logits.numpy()) <= parity.TOL
    assert tuple(call(tf.constant(ids[:1, :4]), tf.constant(mask[:1, :4])).logits.shape)[:2] == (1, 4)
    assert len(call.get_concrete_function().graph.as_graph_def().node) > 0


def test_bfloat16_params_and_compute(tmp_path):
    """bf16 agrees with float32 to about 1e-2 relative (8 mantissa bits): its own tolerance."""
    _, folder, (inputs, _) = bert_folder(tmp_path, "base")
    full = load_port("base", folder)(**tf_inputs(inputs)).last_hidden_state.numpy()
    half = load_port("base", folder, dtype=tf.bfloat16, param_dtype=tf.bfloat16)(**tf_inputs(inputs))
    assert half.last_hidden_state.dtype == tf.bfloat16
    got = tf.cast(half.last_hidden_state, tf.float32).numpy()
    assert np.abs(got - full).max() <= 5e-2 * np.abs(full).max()


def test_port_imports_loads_and_runs_without_jax_or_torch(tmp_path, record_property):
    _, folder, (inputs, _) = bert_folder(tmp_path, "masked-lm")
    want = PretrainedModel.from_pretrained(folder, task="masked-lm")(input_ids=inputs["input_ids"],
                                                                     attention_mask=inputs["attention_mask"]).logits
    np.save(tmp_path / "ids.npy", np.asarray(inputs["input_ids"]))
    np.save(tmp_path / "mask.npy", np.asarray(inputs["attention_mask"]))
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("jax", "jaxlib", "flax", "torch", "transformers"):
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        import numpy as np
        import ports.tf as ptf
        model = ptf.AutoModelForMaskedLM.from_pretrained({str(folder)!r})
        ids, mask = np.load({str(tmp_path / 'ids.npy')!r}), np.load({str(tmp_path / 'mask.npy')!r})
        out = model(input_ids=ids, attention_mask=mask)
        np.save({str(tmp_path / 'out.npy')!r}, out.logits.numpy())
        assert not any(m.split(".")[0] in ("jax", "flax", "torch") for m in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    diff = parity.max_abs(np.load(tmp_path / "out.npy"), np.asarray(want))
    record_property("parity:tf port without jax/torch vs jax", diff)
    assert diff <= parity.TOL
