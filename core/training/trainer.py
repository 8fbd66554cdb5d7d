"""The training loop: `train(config, workdir)` runs an experiment config to its last step,
resuming from the workdir's newest readable checkpoint, and returns a summary.

Workdir layout: `metrics.jsonl`, `tb/` (TensorBoard, optional), `checkpoints/`, `best/`,
`corrupt/` (see checkpoint.py), `config.json` (the model's Hugging Face config),
`rosetta.json` (task, model type, tokenizer), `experiment.json` (the experiment config),
`summary.json`, and `hf/` — the final (or best) model exported as a Hugging Face folder with
its tokenizer files.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
import pathlib
import shutil
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from core import registry
from core.modeling import PretrainedModel, read_config
from core.tokenization import AutoTokenizer
from core.training import checkpoint as ckpt
from core.training.export_check import compare_export
from core.training import data as D
from core.training import metrics as M
from core.training import optim
from core.training import parallel
from core.training import steps as S

TASKS = ("masked-lm", "causal-lm", "sequence-classification")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "merges.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")


class TrainingDiverged(FloatingPointError):
    """A step produced a non-finite loss or gradient norm and `nan_policy` is "stop"."""


# -- pieces ------------------------------------------------------------------------------------------

def causal_lm_available() -> bool:
    return any("causal-lm" in fam.heads for fam in registry.FAMILIES.values())


def check_task(task: str, family: str) -> None:
    if task not in TASKS:
        raise ValueError(f"config.task={task!r}: expected one of {TASKS}")
    if task == "causal-lm" and not causal_lm_available():
        raise NotImplementedError(
            "task 'causal-lm' is wired in the trainer but pending: no registered model family has a "
            "'causal-lm' head yet (GPT-2 is being added to core/registry.py)")
    registry.family(family).check_task(task)


def resolve_model_folder(init_from: str) -> Optional[pathlib.Path]:
    """'' → None (random init); 'minilm' → the bundled all-MiniLM-L6-v2; else a folder path."""
    if not init_from:
        return None
    if init_from == "minilm":
        from core import data as bundled
        return bundled.minilm_folder()
    folder = D.resolve_path(init_from)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model.init_from={init_from!r}: {folder} is not a Hugging Face model folder "
                                "(no config.json)")
    return folder


def tokenizer_folder(config) -> pathlib.Path:
    if config.tokenizer:
        return D.resolve_path(config.tokenizer)
    folder = resolve_model_folder(config.model.init_from)
    if folder is None:
        raise ValueError("config.tokenizer is empty and model.init_from names no folder to take one from")
    return folder


def model_input_names(module, examples: D.ExampleSet) -> tuple[str, ...]:
    accepted = inspect.signature(type(module).__call__).parameters
    return tuple(k for k in ("input_ids", "attention_mask", "token_type_ids")
                 if k in examples.arrays and k in accepted)


def label_names(config, rows) -> tuple[str, ...]:
    if config.data.labels:
        return tuple(s.strip() for s in config.data.labels.split(",") if s.strip())
    return tuple(sorted({str(r[config.data.label_field]) for r in rows}))


def build_data(config, tokenizer, process_index: int = 0, process_count: int = 1):
    """(train ExampleSet, eval ExampleSet or None, label names)."""
    d, task = config.data, config.task
    with_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    if task in D.LM_TASKS:
        docs = D.read_documents(d.train, d.text_field)
        if d.eval:
            train_docs, eval_docs = docs, D.read_documents(d.eval, d.text_field)
        else:
            train_docs, eval_docs = D.split_documents(docs, d.eval_fraction)
        train = D.lm_example_set(tokenizer, train_docs, task, d.seq_len, d.mlm_probability, with_types)
        evals = (D.lm_example_set(tokenizer, eval_docs, task, d.seq_len, d.mlm_probability, with_types)
                 if eval_docs else None)
        return train, evals, ()
    rows = D.read_labelled(d.train, d.text_field, d.text_pair_field, d.label_field)
    names = label_names(config, rows)
    make = lambda r: D.classification_example_set(tokenizer, r, names, d.seq_len, d.text_field,  # noqa: E731
                                                  d.text_pair_field, d.label_field, with_types)
    evals = make(D.read_labelled(d.eval, d.text_field, d.text_pair_field, d.label_field)) if d.eval else None
    return make(rows), evals, names


def build_model(config, tokenizer, names: tuple[str, ...]) -> PretrainedModel:
    m, task = config.model, config.task
    dtype = jnp.dtype(m.dtype)
    overrides = dict(m.hf.to_dict()) if hasattr(m.hf, "to_dict") else dict(m.hf)
    if task == "sequence-classification":
        overrides["id2label"] = {str(i): n for i, n in enumerate(names)}
        overrides["label2id"] = {n: i for i, n in enumerate(names)}
        if len(names) == 1:
            overrides["problem_type"] = "regression"
    folder = resolve_model_folder(m.init_from)
    if folder is not None:
        family = read_config(folder).model_type
        check_task(task, family)
        kwargs = dict(task=task, dtype=dtype, param_dtype=jnp.float32, remat=m.remat, seed=config.seed)
        model = PretrainedModel.from_pretrained(folder, init_new_head=task == "sequence-classification",
                                                **kwargs, **overrides)
        if model.load_report.get("initialised"):
            logging.info("new %s head initialised: %s", task, model.load_report["initialised"])
        return model
    check_task(task, m.family)
    cls = registry.family(m.family).config_class()
    special = D.SpecialIds.of(tokenizer)
    fields = {f.name for f in dataclasses.fields(cls)}
    defaults = {"vocab_size": len(tokenizer)}
    if "pad_token_id" in fields and tokenizer.pad_token_id is not None:
        defaults["pad_token_id"] = tokenizer.pad_token_id
    if task == "causal-lm" and special.eos is not None:
        defaults.update(bos_token_id=special.eos, eos_token_id=special.eos)
    model_config = cls(**{**defaults, **overrides})
    return PretrainedModel.from_config(model_config, task=task, seed=config.seed, dtype=dtype,
                                       param_dtype=jnp.float32, remat=m.remat)


def _write_json(path: pathlib.Path, value) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str) + "\n")
    tmp.replace(path)


def export_hf(model: PretrainedModel, params, folder: pathlib.Path, tokenizer_dir: Optional[pathlib.Path]) -> None:
    model.params = jax.device_get(params)
    model.save_pretrained(folder)
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            if (tokenizer_dir / name).is_file():
                shutil.copy2(tokenizer_dir / name, folder / name)


def generate_samples(model: PretrainedModel, params, tokenizer, sample) -> list[str]:
    """Continue each of `sample.prompts` ("|"-separated) with the current params (causal LMs);
    sampling is seeded, so the same params give the same text."""
    prompts = [p for p in sample.prompts.split("|") if p.strip()]
    if not prompts:
        return []
    rows = [tokenizer(p)["input_ids"] for p in prompts]
    # Left padding; a tokenizer without a pad token (the embedded BPE) pads with EOS, as
    # transformers users do — the attention mask hides it either way.
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else D.SpecialIds.of(tokenizer).eos
    width = max(len(r) for r in rows)
    encoded = {"input_ids": np.array([[pad] * (width - len(r)) + list(r) for r in rows], np.int64),
               "attention_mask": np.array([[0] * (width - len(r)) + [1] * len(r) for r in rows], np.int64)}
    options = dict(max_new_tokens=sample.max_new_tokens, pad_token_id=pad)
    if sample.temperature > 0:
        options.update(do_sample=True, temperature=sample.temperature, top_k=sample.top_k, seed=0)
    else:
        options.update(do_sample=False)
    held, model.params = model.params, jax.device_get(params)
    try:
        ids = model.generate(encoded["input_ids"], attention_mask=encoded["attention_mask"], **options)
    finally:
        model.params = held
    prompt_len = encoded["input_ids"].shape[1]
    return [p + tokenizer.decode(row[prompt_len:], skip_special_tokens=True) for p, row in zip(prompts, ids)]


# -- the experiment ---------------------------------------------------------------------------------

class Experiment:
    """Everything `train` and `evaluate` share: tokenizer, data, model, optimiser, placement."""

    def __init__(self, config, workdir):
        self.config = config
        self.workdir = pathlib.Path(workdir)
        if config.precision:
            jax.config.update("jax_default_matmul_precision", config.precision)
        self.process_index, self.process_count = jax.process_index(), jax.process_count()
        self.tokenizer_dir = tokenizer_folder(config)
        self.tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_dir)
        self.train_set, self.eval_set, self.label_names = build_data(config, self.tokenizer)
        self.model = build_model(config, self.tokenizer, self.label_names)
        self.input_names = model_input_names(self.model.module, self.train_set)
        num_labels = self.model.config.num_labels if config.task == "sequence-classification" else 0
        t = config.train
        self.step_config = S.StepConfig(task=config.task, input_names=self.input_names, grad_accum=t.grad_accum,
                                        nan_policy=config.nan_policy,
                                        inject_nan_at_step=config.debug.inject_nan_at_step - 1
                                        if config.debug.inject_nan_at_step > 0 else -1,
                                        num_labels=num_labels, dropout_rng=t.dropout_rng)
        if config.nan_policy not in ("stop", "skip"):
            raise ValueError(f"config.nan_policy={config.nan_policy!r}: expected 'stop' or 'skip'")
        if config.export not in ("", "final", "best"):
            raise ValueError(f"config.export={config.export!r}: expected 'final', 'best' or ''")
        self.placement = parallel.Placement(config.parallel.mode, config.parallel.mesh_data,
                                            config.parallel.mesh_fsdp, config.parallel.fsdp_min_size)
        self.placement.check_batch(t.batch_size, t.grad_accum)
        self.placement.check_batch(t.eval_batch_size, 1, "train.eval_batch_size")
        self.tx, self.schedule = optim.make_optimizer(_with_decay_steps(config.optimizer, t.steps),
                                                      self.model.params)
        self.eval_step = self.placement.compile_eval(
            lambda **hooks: S.make_eval_step(self.model.module, self.step_config, **hooks), self.model.params)

    def initial_state(self) -> dict:
        params = self.model.params
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": jax.jit(self.tx.init)(params),
                "rng": jax.random.key_data(jax.random.key(self.config.seed))}

    def evaluate(self, params_on_devices, batches) -> dict[str, float]:
        totals = {k: 0.0 for k in S.SUM_KEYS}
        for batch in batches:
            sums = self.placement.host_metrics(self.eval_step(params_on_devices, self.placement.put_batch(batch)))
            for k in totals:
                totals[k] += float(sums[k])
        return S.summarize_eval(self.config.task, totals, self.step_config.num_labels)

    def eval_batches(self):
        if self.eval_set is None:
            return []
        return D.eval_batches(self.eval_set, self.config.train.eval_batch_size, self.config.seed,
                              self.process_index, self.process_count)


def _with_decay_steps(opt, steps: int):
    """The optimizer section with decay_steps defaulting to the run length."""
    values = opt.to_dict() if hasattr(opt, "to_dict") else dict(opt)
    if values.get("decay_steps", 0) <= 0:
        values["decay_steps"] = steps
    return _Namespace(values)


class _Namespace(dict):
    __getattr__ = dict.__getitem__


def train(config, workdir, return_params: bool = False):
    """Run `config` in `workdir` until `train.steps`; resumes from the newest good checkpoint.
    Returns the summary dict (also written to summary.json), and with `return_params` also the
    final params as numpy."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    exp = Experiment(config, workdir)
    t, c = config.train, config.checkpoint
    primary = exp.process_index == 0
    if primary:
        exp.model.config.save_pretrained(workdir)
        _write_json(workdir / "rosetta.json", {"task": config.task, "model_type": exp.model.config.model_type,
                                                "tokenizer": str(exp.tokenizer_dir),
                                                "input_names": list(exp.input_names)})
        _write_json(workdir / "experiment.json", json.loads(config.to_json_best_effort()))
    logging.info("model %s: %s params; task %s; %d train rows, %d eval rows of %d tokens",
                 exp.model.config.model_type, f"{exp.model.num_params():,}", config.task, len(exp.train_set),
                 0 if exp.eval_set is None else len(exp.eval_set), exp.train_set.seq_len)

    schedule = D.Schedule(len(exp.train_set), t.batch_size, config.seed, config.data.shuffle,
                          exp.process_index, exp.process_count)
    if len(exp.train_set) < t.batch_size:
        logging.warning("the training set has %d rows, fewer than one batch of %d: rows repeat within a batch",
                        len(exp.train_set), t.batch_size)
    batches = D.TrainBatches(exp.train_set, schedule)
    store = ckpt.CheckpointStore(workdir, keep=c.keep, async_save=c.async_save, best_metric=c.best_metric,
                                 best_mode=c.best_mode, keep_best=c.keep_best)
    writer = M.MetricWriter(workdir, tensorboard=config.log.tensorboard, enabled=primary)

    host_state = exp.initial_state()
    had_checkpoints = bool(store.steps())
    restored = store.restore_latest(exp.placement.abstract_state(host_state)) if had_checkpoints else None
    start = 0
    if restored is not None:
        host_state, meta = restored
        start = int(meta["step"])
        schedule.check_resume(meta.get("data", {}))
        writer.truncate_after(start)
        logging.info("resumed from the checkpoint at step %d", start)
    elif had_checkpoints:
        logging.warning("no readable checkpoint in %s: starting from step 0", workdir / "checkpoints")
    state = exp.placement.put_state(host_state)
    del host_state
    train_step = exp.placement.compile_train(
        lambda **hooks: S.make_train_step(exp.model.module, exp.tx, exp.schedule, exp.step_config, **hooks), state)
    eval_batches = exp.eval_batches()

    summary: dict[str, Any] = {"start_step": start, "steps": t.steps, "skipped_steps": []}
    progress = M.Progress(t.steps, start, enabled=config.log.progress and primary)

    def run_eval(step: int) -> dict[str, float]:
        if not eval_batches:
            return {}
        tic = time.time()
        result = exp.evaluate(exp.placement.params_of(state), eval_batches)
        writer.write(step, "eval", result)
        progress.write(f"eval @ step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in result.items())
                       + f" ({time.time() - tic:.1f}s)")
        summary.setdefault("eval_history", []).append({"step": step, **result})
        if samples_wanted:
            texts = generate_samples(exp.model, exp.placement.saveable(state)["params"], exp.tokenizer, config.sample)
            writer.write_text(step, "samples", texts)
            progress.write("\n".join(f"  sample @ step {step}: {t!r}" for t in texts))
            summary["samples"] = texts
        return result

    # Samples need every param on this host: single-process runs only.
    samples_wanted = config.task == "causal-lm" and bool(config.sample.prompts.strip()) and exp.process_count == 1
    if start == 0 and t.eval_at_start:
        run_eval(0)

    pending: list[tuple[int, Any]] = []
    tokens_since, steps_since, tick = 0, 0, None
    step = start
    last_saved = start if restored is not None else None
    try:
        while step < t.steps:
            batch = batches(step)
            state, step_metrics = train_step(state, exp.placement.put_batch(batch))
            step += 1
            pending.append((step, step_metrics))
            if tick is None:            # the first step holds compilation: time throughput after it
                jax.block_until_ready(step_metrics)
                tick = time.time()
            else:
                tokens_since += int(batch["attention_mask"].sum()) * exp.process_count
                steps_since += 1
            if config.debug.sleep_per_step:
                time.sleep(config.debug.sleep_per_step)
            do_eval = bool(eval_batches) and t.eval_every > 0 and (step % t.eval_every == 0 or step == t.steps)
            do_save = c.every > 0 and (step % c.every == 0 or step == t.steps)
            if not (step % t.log_every == 0 or step == t.steps or do_eval or do_save):
                continue
            # -- flush: fetch this interval's metrics, check them, log them --------------------------
            records = [(s, exp.placement.host_metrics(m)) for s, m in pending]
            pending.clear()
            now = time.time()
            for s, m in records:
                if not bool(m["finite"]):
                    message = (f"non-finite {'loss' if not math.isfinite(float(m['loss'])) else 'gradient norm'} "
                               f"at step {s} (loss={float(m['loss'])}, grad_norm={float(m['grad_norm'])}, "
                               f"lr={float(m['lr']):.3g})")
                    if config.nan_policy == "stop":
                        raise TrainingDiverged(
                            f"{message}; stopping. The update was not applied; the last checkpoint is "
                            f"{'step ' + str(last_saved) if last_saved is not None else 'none'} in "
                            f"{workdir / 'checkpoints'}. Lower optimizer.lr, check the data, or set "
                            "nan_policy='skip' to skip such steps.")
                    logging.warning("%s: update skipped (nan_policy='skip')", message)
                    summary["skipped_steps"].append(s)
            good = [m for _, m in records if bool(m["finite"])] or [records[-1][1]]
            values = {k: float(np.mean([float(m[k]) for m in good])) for k in ("loss", "grad_norm", "accuracy")}
            values["lr"] = float(records[-1][1]["lr"])
            if steps_since:
                values["tokens_per_sec"] = tokens_since / max(now - tick, 1e-9)
                values["steps_per_sec"] = steps_since / max(now - tick, 1e-9)
            tick, tokens_since, steps_since = now, 0, 0
            writer.write(step, "train", values)
            progress.update(step, len(records), values["loss"], values.get("tokens_per_sec", 0.0),
                            lr=values["lr"])
            summary.setdefault("first_train_loss", values["loss"])
            summary["final_train_loss"] = values["loss"]
            if "tokens_per_sec" in values:
                summary["tokens_per_sec"] = values["tokens_per_sec"]
            # -- eval, checkpoints ---------------------------------------------------------------
            result = run_eval(step) if do_eval else {}
            meta = {"step": step, "data": schedule.state(step), "task": config.task,
                    "model_type": exp.model.config.model_type, "train": values,
                    "eval": result, "time": time.time()}
            if do_save:
                store.save(step, exp.placement.saveable(state), meta)
                last_saved = step
            if result and c.best_metric:
                store.save_best(step, exp.placement.saveable(state)["params"], meta, result)
    finally:
        progress.close()
        store.wait()
        writer.close()
    final_params = exp.placement.saveable(state)["params"]
    if config.export:                   # collective steps (restore, gather) on every process
        params = final_params
        if config.export == "best" and store.best is not None and store.best.latest_step() is not None:
            params, _ = store.restore_params(
                "best", jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
                                     if isinstance(x, jax.Array) else jax.ShapeDtypeStruct(x.shape, x.dtype),
                                     final_params))
        if exp.process_count > 1:
            from jax.experimental import multihost_utils
            params = multihost_utils.process_allgather(params, tiled=True)
        if primary:
            export_hf(exp.model, params, workdir / "hf", exp.tokenizer_dir)
            summary["export"] = str(workdir / "hf")
            if config.export_check and eval_batches:
                batch = {k: v[:4] for k, v in eval_batches[0].items() if k in exp.input_names}
                summary["export_check"] = compare_export(workdir / "hf", config.task, batch)
    store.close()
    summary["seconds"] = time.time() - started
    summary["end_step"] = step
    if primary:
        _write_json(workdir / "summary.json", summary)
    logging.info("done: %s", {k: v for k, v in summary.items() if k != "eval_history"})
    if return_params:
        if exp.process_count > 1:
            from jax.experimental import multihost_utils
            final_params = multihost_utils.process_allgather(final_params, tiled=True)
        return summary, jax.tree.map(np.asarray, jax.device_get(final_params))
    return summary
