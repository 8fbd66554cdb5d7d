"""Training library: decay mask, schedules, configs and overrides, data packing / shuffling /
sharding determinism, checkpoint corruption fallback, and (in a subprocess) NaN detection and
bf16 causal-LM training."""
import dataclasses
import json
import sys
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl import flags
from ml_collections import config_flags

from configs import bert_classify, bert_mlm, gpt2_clm
from core.checkpoint import keymap as km
from core.modeling import PretrainedModel, _abstract_params
from core.models.bert.config import BertConfig
from core.tokenization import AutoTokenizer
from core.training import checkpoint as ckpt
from core.training import data as D
from core.training import optim, testing

WORDPIECE = "experiments/data/wordpiece"
# config_flags loads config files with importlib's deprecated load_module().
pytestmark = pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")


# -- optimiser -------------------------------------------------------------------------------------

def _bert_abstract_params():
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16)
    module = PretrainedModel.build_module(config, "masked-lm")
    return km.unflatten(_abstract_params(module, "masked-lm"))


def test_decay_mask_contents():
    params = _bert_abstract_params()
    mask = km.flatten(optim.decay_mask(params, "bias,norm"))
    decayed = sorted(p for p, on in mask.items() if on)
    assert decayed == sorted([
        "bert/embeddings/position_embeddings/embedding", "bert/embeddings/token_type_embeddings/embedding",
        "bert/embeddings/word_embeddings/embedding",
        "bert/encoder/layer/block/attention/output/dense/kernel",
        "bert/encoder/layer/block/attention/self/key/kernel", "bert/encoder/layer/block/attention/self/query/kernel",
        "bert/encoder/layer/block/attention/self/value/kernel", "bert/encoder/layer/block/intermediate/dense/kernel",
        "bert/encoder/layer/block/output/dense/kernel", "cls/predictions/transform/dense/kernel"])
    # Every LayerNorm param, every bias (including the MLM head's raw `bias`) is excluded.
    assert not mask["cls/predictions/bias"] and not mask["bert/embeddings/LayerNorm/scale"]
    no_emb = km.flatten(optim.decay_mask(params, "bias,norm,embedding"))
    assert [p for p in no_emb if no_emb[p]] == [p for p in decayed if not p.endswith("/embedding")]
    everything = km.flatten(optim.decay_mask(params, ""))
    assert all(everything.values())
    # Norm-only exclusion still excludes LayerNorm biases (they are norm params) but decays others.
    norm_only = km.flatten(optim.decay_mask(params, "norm"))
    assert not norm_only["bert/embeddings/LayerNorm/bias"] and norm_only["cls/predictions/bias"]
    # GPT-2 / LLaMA style names.
    assert optim.param_categories("transformer/h/block/ln_1/scale") == {"norm"}
    assert optim.param_categories("transformer/ln_f/bias") == {"norm", "bias"}
    assert optim.param_categories("model/layers/block/input_layernorm/scale") == {"norm"}
    assert optim.param_categories("transformer/wte/embedding") == {"embedding"}
    with pytest.raises(ValueError, match="unknown categories"):
        optim.decay_mask(params, "bias,layernorm")


def _opt(**kw):
    c = bert_mlm.get_config("tiny").optimizer
    for k, v in kw.items():
        c[k] = v
    return c


def test_schedules_warmup_then_decay():
    cos = optim.make_schedule(_opt(lr=1.0, warmup_steps=10, decay_steps=110, schedule="cosine", end_lr_ratio=0.1))
    assert float(cos(0)) == 0.0 and float(cos(5)) == pytest.approx(0.5)
    assert float(cos(10)) == pytest.approx(1.0)
    assert float(cos(60)) == pytest.approx(0.55, abs=1e-6)        # halfway down to 0.1
    assert float(cos(110)) == pytest.approx(0.1, abs=1e-6)
    lin = optim.make_schedule(_opt(lr=2.0, warmup_steps=0, decay_steps=100, schedule="linear", end_lr_ratio=0.0))
    assert float(lin(0)) == 2.0 and float(lin(50)) == pytest.approx(1.0) and float(lin(100)) == 0.0
    const = optim.make_schedule(_opt(lr=3.0, warmup_steps=4, decay_steps=100, schedule="constant"))
    assert float(const(2)) == pytest.approx(1.5) and float(const(99)) == 3.0
    with pytest.raises(ValueError, match="schedule"):
        optim.make_schedule(_opt(schedule="exponential"))


def test_optimizer_clips_by_global_norm_and_masks_decay():
    params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}}
    # b1 = b2 = 0: Adam's step is g / |g| = 1 for the kernel gradient, 0 for a zero one.
    opt = _opt(lr=0.1, warmup_steps=0, decay_steps=10, schedule="constant", clip_norm=1.0, weight_decay=0.5,
               b1=0.0, b2=0.0, eps=1e-8)
    tx, _ = optim.make_optimizer(opt, params)
    grads = {"dense": {"kernel": jnp.full((2, 2), 100.0), "bias": jnp.zeros((2,))}}
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["dense"]["kernel"], -0.1 * (1.0 + 0.5), rtol=1e-6)   # adam + decay
    np.testing.assert_allclose(updates["dense"]["bias"], 0.0, atol=1e-9)                  # no decay on bias
    # Clipping: two steps on raw gradients equal plain AdamW on gradients clipped by hand.
    opt = _opt(lr=0.1, warmup_steps=0, decay_steps=10, schedule="constant", clip_norm=1.0, weight_decay=0.0)
    tx, _ = optim.make_optimizer(opt, params)
    plain = optax.adamw(0.1, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=0.0)
    state, ref_state = tx.init(params), plain.init(params)
    for scale in (100.0, 0.25):
        g = {"dense": {"kernel": jnp.full((2, 2), scale), "bias": jnp.full((2,), scale)}}
        norm = float(optax.tree.norm(g))
        clipped = jax.tree.map(lambda x: x * min(1.0, 1.0 / norm), g)
        got, state = tx.update(g, state, params)
        want, ref_state = plain.update(clipped, ref_state, params)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# -- configs ---------------------------------------------------------------------------------------

def _parse(argv):
    """Parse like `experiments.train` does; config_flags reads the overrides from sys.argv."""
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True)
    with mock.patch.object(sys, "argv", ["prog", *argv]):
        values(["prog", *argv])
    return values.config


def test_config_variants_and_command_line_overrides():
    c = _parse(["--config=configs/bert_mlm.py:tiny", "--config.optimizer.lr=3e-4", "--config.train.steps=7",
                "--config.parallel.mode=pmap", "--config.model.hf.hidden_size=48", "--config.log.tensorboard=True"])
    assert c.optimizer.lr == 3e-4 and c.train.steps == 7 and c.parallel.mode == "pmap"
    assert c.model.hf.hidden_size == 48 and c.log.tensorboard is True
    assert c.data.seq_len == bert_mlm.get_config("tiny").data.seq_len          # untouched
    assert _parse(["--config=configs/bert_mlm.py"]).model.hf.hidden_size == 128   # default variant
    with pytest.raises(AttributeError, match='Did you mean "lr"'):
        _parse(["--config=configs/bert_mlm.py:tiny", "--config.optimizer.lrr=1e-3"])   # misspelt key
    with pytest.raises(flags.IllegalFlagValueError, match="steps"):
        _parse(["--config=configs/bert_mlm.py:tiny", "--config.train.steps=many"])     # wrong type
    with pytest.raises(flags.IllegalFlagValueError, match="unknown variant"):
        _parse(["--config=configs/bert_mlm.py:huge"])
    locked = _parse(["--config=configs/bert_mlm.py:tiny"])
    with pytest.raises(AttributeError):
        locked.optimizer.new_field = 1                                      # lock_config
    for module, variants in ((bert_mlm, bert_mlm.VARIANTS), (bert_classify, bert_classify.VARIANTS),
                             (gpt2_clm, gpt2_clm.VARIANTS)):
        for variant in variants:
            assert module.get_config(variant).task in ("masked-lm", "causal-lm", "sequence-classification")


# -- data ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(D.resolve_path(WORDPIECE))


def test_packing_is_exact_and_deterministic(tokenizer):
    docs = D.read_documents("experiments/data/corpus.txt")
    assert len(docs) > 20
    special = D.SpecialIds.of(tokenizer)
    ids = D.tokenize_documents(tokenizer, docs)
    rows = D.pack(ids, 32, "masked-lm", special)
    assert rows.dtype == np.int32 and rows.shape[1] == 32
    assert (rows[:, 0] == special.cls).all() and (rows[:, -1] == special.sep).all()
    stream = sum((doc + [special.sep] for doc in ids), [])[:-1]       # docs joined by [SEP]
    np.testing.assert_array_equal(rows[:, 1:-1].reshape(-1), stream[:rows.shape[0] * 30])
    np.testing.assert_array_equal(D.pack(ids, 32, "masked-lm", special), rows)
    eos = dataclasses.replace(special, eos=special.sep)
    causal = D.pack(ids, 16, "causal-lm", eos)
    np.testing.assert_array_equal(causal.reshape(-1), sum((doc + [special.sep] for doc in ids), [])[:causal.size])
    with pytest.raises(ValueError, match="too few"):
        D.pack([[5, 6]], 64, "masked-lm", special)
    train, held_out = D.split_documents(docs, 0.1)
    assert len(held_out) == len(docs) // 10 and not set(train) & set(held_out)


def test_shuffling_is_seeded_resumable_and_host_sharded(tokenizer):
    schedule = D.Schedule(num_rows=10, global_batch=4, seed=3)
    first = [schedule.positions(s)[0] for s in range(10)]
    again = [D.Schedule(num_rows=10, global_batch=4, seed=3).positions(s)[0] for s in range(10)]
    assert all((a == b).all() for a, b in zip(first, again))                        # deterministic
    other = [D.Schedule(num_rows=10, global_batch=4, seed=4).positions(s)[0] for s in range(10)]
    assert any((a != b).any() for a, b in zip(first, other))                         # seeded
    stream = np.concatenate(first)
    for epoch in range(4):                                                           # each epoch: a permutation
        assert sorted(stream[epoch * 10:(epoch + 1) * 10]) == list(range(10))
    assert not (stream[:10] == stream[10:20]).all()                                  # reshuffled per epoch
    # Per-host sharding: two hosts' slices are the global batch, in order, with global indices.
    hosts = [D.Schedule(num_rows=10, global_batch=4, seed=3, process_index=p, process_count=2) for p in (0, 1)]
    for s in (0, 7):
        rows = np.concatenate([h.positions(s)[0] for h in hosts])
        index = np.concatenate([h.positions(s)[1] for h in hosts])
        np.testing.assert_array_equal(rows, schedule.positions(s)[0])
        np.testing.assert_array_equal(index, np.arange(4))
    # Batches (with MLM masking) depend on (seed, step) only: a resumed run reads the same data,
    # and a host's rows equal the same rows of the single-host batch.
    docs = D.read_documents("experiments/data/corpus.txt")
    examples = D.lm_example_set(tokenizer, docs, "masked-lm", 32, 0.15, with_token_types=True)
    full = D.TrainBatches(examples, D.Schedule(len(examples), 8, seed=1))
    half = D.TrainBatches(examples, D.Schedule(len(examples), 8, seed=1, process_index=1, process_count=2))
    b5 = full(5)
    for key, value in D.TrainBatches(examples, D.Schedule(len(examples), 8, seed=1))(5).items():
        np.testing.assert_array_equal(value, b5[key])
    for key, value in half(5).items():
        np.testing.assert_array_equal(value, b5[key][4:])
    masked = b5["labels"] != D.IGNORE_INDEX
    assert masked.any(axis=1).all()                                       # at least one target per row
    assert (b5["input_ids"][masked] != b5["labels"][masked]).mean() > 0.5  # mostly [MASK] / random
    assert not masked[:, 0].any() and not masked[:, -1].any()              # never [CLS] / [SEP]
    assert not (full(6)["labels"] == b5["labels"]).all()
    assert D.Schedule(len(examples), 8, seed=1).state(5) == {"step": 5, "num_rows": len(examples),
                                                              "global_batch": 8, "seed": 1, "shuffle": True}


def test_eval_batches_cover_the_split_once_with_padding(tokenizer):
    rows = D.read_labelled("experiments/data/sentiment_eval.jsonl", "text", "", "label")
    examples = D.classification_example_set(tokenizer, rows, ("negative", "positive"), 24, "text", "", "label",
                                            with_token_types=True)
    batches = D.eval_batches(examples, 10, seed=0)
    assert len(batches) == 3 and sum(float(b["weights"].sum()) for b in batches) == len(rows) == 24
    labels = np.concatenate([b["labels"][b["weights"] > 0] for b in batches])
    np.testing.assert_array_equal(labels, [{"negative": 0, "positive": 1}[r["label"]] for r in rows])
    with pytest.raises(ValueError, match="not in data.labels"):
        D.classification_example_set(tokenizer, rows, ("neg", "pos"), 24, "text", "", "label", True)


@pytest.mark.tf
def test_metrics_go_to_jsonl_and_tensorboard(tmp_path):
    from core.training import metrics
    writer = metrics.MetricWriter(tmp_path, tensorboard=True)
    writer.write(1, "train", {"loss": 2.5, "lr": 1e-3})
    writer.write(2, "eval", {"loss": float("nan")})
    writer.close()
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [{"step": 1, "split": "train", "loss": 2.5, "lr": 1e-3},
                     {"step": 2, "split": "eval", "loss": "nan"}]
    import tensorflow as tf
    events = [(e.step, v.tag, float(tf.make_ndarray(v.tensor)), v.metadata.plugin_data.plugin_name)
              for f in (tmp_path / "tb").iterdir() for e in tf.compat.v1.train.summary_iterator(str(f))
              for v in e.summary.value]
    assert events[:2] == [(1, "train/loss", 2.5, "scalars"), (1, "train/lr", pytest.approx(1e-3), "scalars")]
    assert events[2][:2] == (2, "eval/loss") and np.isnan(events[2][2])
    writer.truncate_after(1)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


# -- checkpoints -----------------------------------------------------------------------------------

def _state(value: float):
    params = {"dense": {"kernel": jnp.full((3, 2), value), "bias": jnp.zeros((2,))}}
    tx = optax.adamw(1e-3)
    return {"step": jnp.asarray(int(value), jnp.int32), "params": params, "opt_state": tx.init(params),
            "rng": jax.random.key_data(jax.random.key(int(value)))}


def test_corrupt_latest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, caplog):
    store = ckpt.CheckpointStore(tmp_path, keep=3, best_metric="")
    for step in (1, 2, 3):
        store.save(step, _state(step), {"step": step, "data": {"step": step}})
    store.wait()
    # Corrupt step 3: every file of its state item overwritten with garbage.
    for f in (tmp_path / "checkpoints" / "3" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"\x00garbage" * 3)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _state(0))
    with caplog.at_level("ERROR"):
        state, meta = store.restore_latest(abstract)
    assert meta["step"] == 2 and int(state["step"]) == 2
    np.testing.assert_array_equal(state["params"]["dense"]["kernel"], np.full((3, 2), 2.0))
    assert "checkpoint at step 3" in caplog.text and "cannot be restored" in caplog.text
    assert store.steps() == [1, 2] and len(list((tmp_path / "corrupt").iterdir())) == 1
    # Training goes on: the redone step 3 saves cleanly where the corrupt one was.
    store.save(3, _state(3), {"step": 3})
    store.wait()
    assert store.restore_latest(abstract)[1]["step"] == 3
    store.close()


# -- whole runs (subprocess: fresh JAX, fast compile) -------------------------------------------------

RUNS = r'''
import json, math, sys
import jax, numpy as np
from configs import bert_mlm, gpt2_clm
from core.training import trainer, metrics
metrics.quiet_library_logs()
root = sys.argv[1]
out = {}

def tiny(policy):
    c = bert_mlm.get_config("tiny")
    c.train.steps, c.train.log_every, c.train.eval_every, c.train.eval_at_start = 5, 1, 0, False
    c.checkpoint.every, c.checkpoint.best_metric, c.export = 2, "", ""
    c.debug.inject_nan_at_step, c.nan_policy = 3, policy
    return c

try:
    trainer.train(tiny("stop"), root + "/stop")
    out["stop"] = "no error"
except trainer.TrainingDiverged as e:
    out["stop"] = str(e)
out["stop_checkpoints"] = sorted(int(p.name) for p in __import__("pathlib").Path(root + "/stop/checkpoints").iterdir()
                                 if p.name.isdigit())
summary, params = trainer.train(tiny("skip"), root + "/skip", return_params=True)
out["skip"] = summary["skipped_steps"]
out["skip_finite"] = all(bool(np.isfinite(x).all()) for x in jax.tree.leaves(params))

c = gpt2_clm.get_config("tiny")
c.model.dtype = "bfloat16"
c.train.steps, c.train.log_every, c.train.eval_every, c.train.eval_at_start = 8, 4, 0, False
c.checkpoint.every, c.checkpoint.best_metric = 0, ""
c.optimizer.lr, c.optimizer.warmup_steps = 3e-3, 2
summary, params = trainer.train(c, root + "/clm", return_params=True)
out["clm_dtypes"] = sorted({str(x.dtype) for x in jax.tree.leaves(params)})
out["clm_losses"] = [summary["first_train_loss"], summary["final_train_loss"]]
print("RESULT " + json.dumps(out))
'''


def _runs(root):
    result = testing.run_python(["-c", RUNS, str(root)], cache_dir=root / "jax-cache")
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return testing.shared_result(tmp_path_factory, "training-runs", _runs)


def test_nan_stop_names_the_step_and_keeps_the_last_good_checkpoint(runs):
    out, _ = runs
    message = out["stop"]
    assert message.startswith("non-finite loss at step 3 (loss=nan"), message
    assert "last checkpoint is step 2" in message and "nan_policy='skip'" in message
    assert out["stop_checkpoints"] == [2]                 # nothing saved after the bad step


def test_nan_skip_drops_the_update_and_goes_on(runs):
    out, root = runs
    assert out["skip"] == [3] and out["skip_finite"]
    lines = [json.loads(l) for l in (root / "skip" / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2, 3, 4, 5]
    assert lines[2]["loss"] == "nan" and all(isinstance(l["loss"], float) for i, l in enumerate(lines) if i != 2)


def test_causal_lm_trains_in_bf16_with_float32_master_params(runs):
    out, root = runs
    assert out["clm_dtypes"] == ["float32"]
    first, last = out["clm_losses"]
    assert np.isfinite(first) and last < first
    saved = json.loads((root / "clm" / "hf" / "config.json").read_text())
    assert saved["model_type"] == "gpt2" and saved["architectures"] == ["GPT2LMHeadModel"]
