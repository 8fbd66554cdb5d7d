"""The generated PyTorch port, family by family, against the JAX model and `transformers`.

Every registered family with a parity test module (`tests/test_<family>.py`) is covered, each
head once (the first case of each (model_type, task) of that module's CASES, so its tiny
non-default configs and padded inputs are reused): the port loaded from the same Hugging Face
folder as the JAX model must match it and `transformers` on every output (hidden states,
attentions, logits, loss) within 1e-5; gradients of a loss with labels must match JAX's;
`train()` / `eval()` must switch dropout; saving must round-trip bit for bit into JAX; and the
port must import, load and run with JAX unimportable.
"""
import contextlib
import dataclasses
import importlib
import json
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import torch
import transformers

import ports.torch as pt
from core import registry
from core.checkpoint import keymap as km
from core.checkpoint.keymap import KeyMapError
from core.modeling import PretrainedModel
from tests import parity

ROOT = pathlib.Path(__file__).resolve().parent.parent
AUTO = {"causal-lm": pt.AutoModelForCausalLM, "base": pt.AutoModel, "masked-lm": pt.AutoModelForMaskedLM,
        "sequence-classification": pt.AutoModelForSequenceClassification,
        "token-classification": pt.AutoModelForTokenClassification,
        "question-answering": pt.AutoModelForQuestionAnswering,
        "multiple-choice": pt.AutoModelForMultipleChoice, "pretraining": pt.AutoModelForPreTraining,
        "seq2seq-lm": pt.AutoModelForSeq2SeqLM}
DEFAULT_FIELDS = ("loss", "logits", "hidden_states", "attentions")


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """Adapter over a family's parity test module: `CASES` of (task, overrides, *extra) or, where
    one module covers several model types (RoBERTa's), (model_type, task, overrides, *extra);
    `build_reference([model_type,] task, tmp_path, **overrides)`; `task_inputs(task,
    {**TINY, **overrides}, *extra)`; optional `OUTPUT_FIELDS`."""
    package: str
    tests: object

    def cases(self):
        """(model_type, task, overrides, extra) for the first case of each head and extra."""
        seen, out = set(), []
        for case in self.tests.CASES:
            if case[0] in registry.FAMILIES and len(case) >= 3 and isinstance(case[2], dict):
                model_type, task, overrides, *extra = case
            else:
                (task, overrides, *extra), model_type = case, self.package
            if (model_type, task, tuple(extra)) not in seen:
                seen.add((model_type, task, tuple(extra)))
                out.append((model_type, task, overrides, tuple(extra)))
        return out

    @property
    def takes_model_type(self) -> bool:
        return self.tests.CASES[0][0] in registry.FAMILIES

    def build(self, model_type, task, overrides, tmp_path):
        if self.takes_model_type:
            return self.tests.build_reference(model_type, task, tmp_path, **overrides)
        return self.tests.build_reference(task, tmp_path, **overrides)

    def inputs(self, task, overrides, extra=()):
        return self.tests.task_inputs(task, {**self.tests.TINY, **overrides}, *extra)

    def fields(self, task):
        return getattr(self.tests, "OUTPUT_FIELDS", {}).get(task, DEFAULT_FIELDS)


def family_specs() -> dict:
    """Every registered family package that has a parity test module (no silent omissions:
    a module without the shared helpers fails here)."""
    specs = {}
    for family in registry.FAMILIES.values():
        package = family.modeling.split(".")[2]
        if package in specs or not (ROOT / "tests" / f"test_{package}.py").exists():
            continue
        tests = importlib.import_module(f"tests.test_{package}")
        missing = [n for n in ("CASES", "TINY", "build_reference", "task_inputs") if not hasattr(tests, n)]
        assert not missing, f"tests/test_{package}.py lacks {missing}: teach tests/test_torch_port.py its helpers"
        specs[package] = FamilySpec(package, tests)
    return specs


SPECS = family_specs()
# Families whose port is generated; test_every_tested_family_has_a_port fails for the others.
PORTED = {p: s for p, s in SPECS.items() if (ROOT / "ports" / "torch" / "models" / f"{p}.py").exists()}
CASES = [(package, *case) for package, spec in PORTED.items() for case in spec.cases()]


def test_every_tested_family_has_a_port():
    missing = sorted(set(SPECS) - set(PORTED))
    assert not missing, (f"no generated torch port for {missing}: run `python -m scripts.transpile` and fix the "
                         "portable-subset violations it reports")


def torch_inputs(*dicts):
    return parity.to_torch({k: v for d in dicts for k, v in d.items()})


def load_port(task, folder, **kwargs):
    """The Auto class of `task`, or (tasks without one in `transformers`, like T5's "encoder")
    the registered head class itself."""
    if task in AUTO:
        model = AUTO[task].from_pretrained(folder, **kwargs)
    else:
        model_type = json.loads((folder / "config.json").read_text())["model_type"]
        model = pt.model_class(model_type, task).from_pretrained(folder, **kwargs)
    assert isinstance(model, torch.nn.Module) and not model.training
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
        expected = reference(**torch_inputs(inputs, labels), output_hidden_states=True, output_attentions=True)
        got = port(**torch_inputs(inputs, labels), output_hidden_states=True, output_attentions=True)
        fast = port(**torch_inputs(inputs, labels))       # no weights requested: scaled_dot_product_attention
    ours = PretrainedModel.from_pretrained(folder, task=task)(**inputs, **labels, output_hidden_states=True,
                                                              output_attentions=True)
    parity.assert_close(parity.compare_outputs(ours, got, fields), record=record_property,
                        label=f"torch port of {package} vs jax")
    parity.assert_close(parity.compare_outputs(got, expected, fields), record=record_property,
                        label=f"torch port of {package} vs transformers")
    main = [f for f in fields if f != "loss" and not per_layer(f)]
    parity.assert_close(parity.compare_outputs(fast, expected, main + ["loss"] * ("loss" in fields)),
                        record=record_property, label=f"torch port of {package} vs transformers")
    assert all(getattr(fast, f) is None for f in fields if per_layer(f))


def per_layer(field: str) -> bool:
    """Per-layer outputs (hidden_states, decoder_attentions, cross_attentions, ...): only on request."""
    return field.endswith("hidden_states") or field.endswith("attentions")


# One language-model head per family, with its labels: the loss reaches every parameter.
LM_TASKS = ("masked-lm", "causal-lm", "seq2seq-lm", "image-classification")
GRADIENT_CASES = [next(c for c in CASES if c[0] == package and c[2] in LM_TASKS)
                  for package in PORTED if any(c[0] == package and c[2] in LM_TASKS for c in CASES)]


def gradient_error(jax_grads: dict, torch_grads: dict) -> dict:
    """Per leaf, max |difference| relative to the leaf's largest JAX gradient. A leaf whose
    gradient is (analytically) about zero, below 1% of the model's largest gradient (a key bias,
    which softmax ignores), is measured against that model-wide scale instead: float32 noise of
    a cancelling sum is no error (its float64 gradient shows torch and JAX equally far off)."""
    scale = max(float(np.abs(g).max()) for g in jax_grads.values())
    errors = {}
    for path, want in jax_grads.items():
        got = torch_grads[path]
        got = np.zeros_like(want) if got is None else got
        leaf = float(np.abs(want).max())
        denominator = leaf if leaf >= 1e-2 * scale else scale
        errors[path] = float(np.abs(np.asarray(want, np.float64) - got).max()) / denominator
    return errors


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
    port(**torch_inputs(inputs, labels)).loss.backward()
    torch_grads = port.flax_grads()
    assert sorted(torch_grads) == sorted(jax_grads)
    errors = gradient_error(jax_grads, torch_grads)
    worst = max(errors, key=errors.get)
    record_property(f"parity:torch port of {package} gradients vs jax (relative)", errors[worst])
    assert errors[worst] <= 1e-5, f"{worst}: relative gradient error {errors[worst]:.3g}"


DECODERS = [p for p in PORTED if any("causal-lm" in f.heads and f.modeling.split(".")[2] == p
                                     for f in registry.FAMILIES.values())]


@pytest.mark.parametrize("package", [pytest.param(p, marks=parity.extended_unless_representative(p), id=p)
                                     for p in DECODERS])
def test_cached_decoding_equals_the_full_forward(package, tmp_path, record_property):
    """Prefill 5 positions into the static cache, then single-token steps, right and left
    padded: every real token's logits equal the full forward's (and transformers'), whether the
    cache is updated functionally (as in JAX) or in place (`ops.inplace_updates`)."""
    from ports.torch.runtime import ops
    spec = SPECS[package]
    model_type, task, overrides, _ = next(c for c in spec.cases() if c[1] == "causal-lm")
    reference, folder = spec.build(model_type, task, overrides, tmp_path)
    port = load_port(task, folder)
    for padding, inplace in (("right", False), ("left", True)):
        inputs, _ = spec.inputs(task, overrides, (padding,))
        ids, mask = torch_inputs(inputs)["input_ids"], torch_inputs(inputs)["attention_mask"]
        batch, length = ids.shape
        with torch.no_grad(), (ops.inplace_updates() if inplace else contextlib.nullcontext()):
            expected = reference(input_ids=ids, attention_mask=mask).logits
            full = port(input_ids=ids, attention_mask=mask).logits
            out = port(input_ids=ids[:, :5], attention_mask=mask, cache=port.init_cache(batch, length), cache_index=0)
            steps = [out.logits]
            for t in range(5, length):
                out = port(input_ids=ids[:, t:t + 1], attention_mask=mask, cache=out.cache, cache_index=t)
                steps.append(out.logits)
        cached = torch.cat(steps, dim=1)
        real = mask == 1
        diff = parity.max_abs(cached[real], expected[real])
        record_property(f"parity:torch port of {package} vs transformers", diff)
        assert diff <= parity.TOL, f"{padding} padding, in place {inplace}: {diff:.3g}"
        assert parity.max_abs(cached[real], full[real]) <= parity.TOL


# -- behaviour (BERT stands for every family: the runtime is shared) ---------------------------------

def bert_folder(tmp_path, task="masked-lm", **overrides):
    spec = SPECS["bert"]
    reference, folder = spec.build("bert", task, overrides, tmp_path)
    return reference, folder, spec.inputs(task, overrides)


def test_train_turns_dropout_on_and_eval_off(tmp_path):
    _, folder, (inputs, _) = bert_folder(tmp_path, "base", hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
    model = load_port("base", folder)
    x = torch_inputs(inputs)
    with torch.no_grad():
        evaluated = model(**x).last_hidden_state
        assert torch.equal(evaluated, model(**x).last_hidden_state)
        weighted = model(**x, output_attentions=True).last_hidden_state    # explicit path, not SDPA
        assert torch.allclose(evaluated, weighted, atol=parity.TOL)
        assert not torch.equal(evaluated, model(**x, deterministic=False).last_hidden_state)  # explicit wins
        model.train()
        first, second = model(**x).last_hidden_state, model(**x).last_hidden_state
        assert not torch.equal(first, second) and not torch.equal(first, evaluated)
        weighted = model(**x, output_attentions=True).last_hidden_state
        assert not torch.allclose(weighted, evaluated, atol=1e-3)
        assert torch.equal(model(**x, deterministic=True).last_hidden_state, evaluated)
        model.eval()
        assert torch.equal(model(**x).last_hidden_state, evaluated)
        # Like torch.nn.Dropout, a submodule in eval mode stays deterministic inside a training model.
        model.train()
        model.embeddings.eval()
        model.encoder.eval()
        assert torch.equal(model(**x).last_hidden_state, evaluated)


def test_remat_gives_the_same_gradients(tmp_path):
    _, folder, (inputs, labels) = bert_folder(tmp_path, hidden_dropout_prob=0.1)
    grads = []
    for remat in (False, True):
        model = load_port("masked-lm", folder, remat=remat).train()
        torch.manual_seed(0)
        model(**torch_inputs(inputs, labels)).loss.backward()
        grads.append(model.flax_grads())
    for path, g in grads[0].items():
        np.testing.assert_array_equal(g, grads[1][path], err_msg=path)


@pytest.mark.parametrize("package", [pytest.param(p, marks=parity.extended_unless_representative(p), id=p)
                                     for p in sorted(PORTED)])
def test_saved_folder_reloads_bit_identically_in_jax(package, tmp_path):
    spec = PORTED[package]
    for model_type, task, overrides, _ in [c for c in spec.cases() if c[1] in ("masked-lm", "causal-lm")][:1]:
        _, folder = spec.build(model_type, task, overrides, tmp_path / package)
        port = load_port(task, folder)
        out = tmp_path / package / "saved"
        port.save_pretrained(out, max_shard_size="20KB")
        reloaded = PretrainedModel.from_pretrained(out, task=task)
        exported = port.export_flax()
        params = km.flatten(reloaded.params)
        assert sorted(params) == sorted(exported), package
        for path, value in params.items():
            np.testing.assert_array_equal(np.asarray(value), exported[path], err_msg=f"{package}: {path}")
        from safetensors.numpy import load_file
        original = load_file(str(folder / "model.safetensors"))
        index = json.loads((out / "model.safetensors.index.json").read_text())
        assert sorted(index["weight_map"]) == sorted(original), package
        for key, shard in index["weight_map"].items():
            np.testing.assert_array_equal(load_file(str(out / shard))[key], original[key], err_msg=key)
        saved = json.loads((out / "config.json").read_text())
        assert saved["architectures"] == [registry.family(model_type).heads[task][1]]


def test_strict_loading_errors_and_options(tmp_path):
    reference, folder, (inputs, _) = bert_folder(tmp_path)
    # A base model from a task checkpoint (the head is dropped and reported).
    with pytest.raises(KeyMapError, match="pooler/dense/kernel"):
        pt.AutoModel.from_pretrained(folder)
    base = pt.AutoModel.from_pretrained(folder, module_kwargs={"add_pooling_layer": False})
    assert "cls.predictions.bias" in base.load_report["dropped"]
    with torch.no_grad():
        diff = parity.max_abs(base(**torch_inputs(inputs)).last_hidden_state,
                              reference.bert(**torch_inputs(inputs)).last_hidden_state)
    assert diff <= parity.TOL
    # A new head initialised for fine-tuning (from a bare encoder's folder).
    _, base_folder, _ = bert_folder(tmp_path / "base", "base")
    with pytest.raises(KeyMapError, match="init_new_head=True"):
        pt.AutoModelForSequenceClassification.from_pretrained(base_folder)
    classifier = pt.AutoModelForSequenceClassification.from_pretrained(base_folder, init_new_head=True)
    assert sorted(classifier.load_report["initialised"]) == ["classifier/bias", "classifier/kernel"]
    assert float(classifier.classifier.weight.detach().abs().max()) > 0
    # A config that does not fit the weights: one error, every bad key, nothing loaded.
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "intermediate_size": 40, "num_hidden_layers": 4}))
    with pytest.raises(KeyMapError) as err:
        pt.AutoModelForMaskedLM.from_pretrained(folder)
    message = str(err.value)
    assert "nothing was loaded" in message and "intermediate.dense.weight" in message and "layers [3]" in message
    # A class loads only as the head the registry names it for.
    with pytest.raises(TypeError, match="not a registered head"):
        importlib.import_module("ports.torch.models.bert").BertEncoder.from_pretrained(folder)


def test_load_flax_is_strict_and_round_trips(tmp_path):
    model = pt.model_class("bert", "masked-lm").from_config(transformers_config_as_ours())
    flat = model.export_flax()
    other = pt.model_class("bert", "masked-lm").from_config(transformers_config_as_ours(), seed=1)
    other.load_flax(flat)
    for path, value in other.export_flax().items():
        np.testing.assert_array_equal(value, flat[path])
    bad = dict(flat)
    bad.pop("cls/predictions/bias")
    bad["extra/kernel"] = np.zeros(3, np.float32)
    bad["bert/embeddings/word_embeddings/embedding"] = np.zeros((2, 2), np.float32)
    with pytest.raises(KeyMapError) as err:
        other.load_flax(bad)
    message = str(err.value)
    assert "missing: 1" in message and "unexpected: 1" in message and "mis-shaped: 1" in message


def transformers_config_as_ours():
    return pt.AutoConfig.for_model("bert", **SPECS["bert"].tests.TINY)


def test_creation_ops_follow_the_module_device(tmp_path):
    """Canonical code creates arrays without a device (default masks, position ids): they must
    land on the parameters' device. `meta` stands in for an accelerator here."""
    model = pt.model_class("bert", "masked-lm").from_config(transformers_config_as_ours()).to("meta")
    ids = torch.ones(2, 5, dtype=torch.int64, device="meta")
    out = model(input_ids=ids, labels=ids)
    assert out.logits.device.type == "meta" and out.logits.shape == (2, 5, 101)


def test_bfloat16_params_and_compute(tmp_path):
    reference, folder, (inputs, _) = bert_folder(tmp_path, "base")
    model = load_port("base", folder, dtype=torch.bfloat16, param_dtype=torch.bfloat16)
    assert model.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    with torch.no_grad():
        got = model(**torch_inputs(inputs)).last_hidden_state
        want = reference(**torch_inputs(inputs)).last_hidden_state
    assert got.dtype == torch.bfloat16
    # bf16 carries ~3 significant digits: agreement is about 1e-2 relative, not 1e-5.
    assert float((got.float() - want).abs().max() / want.abs().max()) < 5e-2


@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime_with_dynamic_shapes(tmp_path):
    """experiments.export's ONNX path (torch.onnx's dynamo exporter, onnxruntime on other
    shapes than the exported example), compared with the port and with the JAX model."""
    import onnxruntime

    from experiments.export import export_torch

    _, folder, _ = bert_folder(tmp_path)
    path = tmp_path / "bert.onnx"
    assert export_torch(folder, "masked-lm", "onnx", path, max_length=40) <= parity.TOL
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 100, (3, 7)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    (got,) = session.run(["output"], {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        want = load_port("masked-lm", folder)(input_ids=torch.from_numpy(ids),
                                               attention_mask=torch.from_numpy(mask)).logits.numpy()
    jax_logits = np.asarray(PretrainedModel.from_pretrained(folder, task="masked-lm")(
        input_ids=ids, attention_mask=mask).logits)
    assert got.shape == (3, 7, want.shape[-1])
    assert np.max(np.abs(got - want)) <= parity.TOL
    assert np.max(np.abs(got - jax_logits)) <= parity.TOL


def test_export_script_writes_torchscript_and_exported_programs(tmp_path):
    from experiments.export import export_torch

    _, folder, _ = bert_folder(tmp_path)
    assert export_torch(folder, "masked-lm", "torchscript", tmp_path / "bert.pt") <= 1e-6
    assert export_torch(folder, "masked-lm", "torch_export",
                        tmp_path / "bert.pt2", max_length=40) <= 1e-6
    program = torch.export.load(str(tmp_path / "bert.pt2")).module()
    ids = torch.randint(1, 100, (4, 11))
    with torch.no_grad():
        want = load_port("masked-lm", folder)(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        assert torch.allclose(program(ids, torch.ones_like(ids)), want, atol=1e-6)   # other shapes than exported


# -- without JAX --------------------------------------------------------------------------------------

def test_port_imports_loads_and_runs_without_jax(tmp_path, record_property):
    """One subprocess with jax / flax / chex unimportable loads every family's folder through
    `ports.torch` and runs it; the parent compares the outputs with the JAX model's."""
    jobs = []
    for package, spec in PORTED.items():
        model_type, task, overrides, extra = spec.cases()[0]
        _, folder = spec.build(model_type, task, overrides, tmp_path / package)
        inputs, labels = spec.inputs(task, overrides, extra)
        (tmp_path / package).mkdir(parents=True, exist_ok=True)   # some builders cache their folder elsewhere
        np.savez(tmp_path / package / "inputs.npz", **inputs)
        field = [f for f in spec.fields(task) if f not in ("loss", "hidden_states", "attentions")][0]
        jobs.append({"package": package, "auto": AUTO[task].__name__,
                     "task": task, "folder": str(folder), "field": field,
                     "inputs": str(tmp_path / package / "inputs.npz"), "out": str(tmp_path / package / "out.npy")})
    script = textwrap.dedent(f"""
        import json, sys
        class BlockJax:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("jax", "jaxlib", "flax", "chex", "optax"):
                    raise ImportError(f"{{name}} is blocked in this test")
        sys.meta_path.insert(0, BlockJax())
        import numpy as np, torch
        import ports.torch as pt
        for job in json.loads({json.dumps(json.dumps(jobs))}):
            model = getattr(pt, job["auto"]).from_pretrained(job["folder"])
            inputs = {{k: torch.as_tensor(v) for k, v in np.load(job["inputs"]).items()}}
            with torch.no_grad():
                np.save(job["out"], getattr(model(**inputs), job["field"]).numpy())
        blocked = sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "flax", "chex"))
        assert not blocked, blocked
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
    for job in jobs:
        inputs = dict(np.load(job["inputs"]))
        want = getattr(PretrainedModel.from_pretrained(job["folder"], task=job["task"])(**inputs), job["field"])
        diff = parity.max_abs(np.load(job["out"]), np.asarray(want))
        record_property(f"parity:torch port of {job['package']} vs jax", diff)
        assert diff <= parity.TOL, f"{job['package']}: {diff}"
