"""Evaluate a trained model on the eval split of an experiment config.

    python -m experiments.evaluate --config=configs/bert_mlm.py --workdir=/tmp/mlm [--checkpoint=best]
    python -m experiments.evaluate --config=configs/bert_classify.py --hf_folder=/tmp/cls/hf

Prints the metrics (loss; perplexity and token accuracy for language models; accuracy for
classifiers) as JSON and, with --workdir, writes them to <workdir>/eval_<checkpoint>.json.
"""
from __future__ import annotations

import json
import pathlib

from absl import app, flags
import jax
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "The experiment config the model was trained with.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "A training workdir (or Rosetta checkpoint) to evaluate.")
flags.DEFINE_string("checkpoint", "latest", "With --workdir: latest, best or a step number.")
flags.DEFINE_string("hf_folder", None, "Evaluate a Hugging Face folder instead of a workdir checkpoint.")
FLAGS = flags.FLAGS

jax.config.parse_flags_with_absl()
flags.mark_flag_as_required("config")


def evaluate(config, workdir=None, which: str = "latest", hf_folder=None) -> dict:
    """Eval metrics of a workdir checkpoint or of a Hugging Face folder."""
    from core.training import checkpoint as ckpt
    from core.training import trainer

    if (workdir is None) == (hf_folder is None):
        raise ValueError("pass exactly one of workdir and hf_folder")
    if hf_folder is not None:              # existing fields: allowed on a locked config
        config.model.init_from = str(hf_folder)
        if (pathlib.Path(hf_folder) / "tokenizer_config.json").is_file():
            config.tokenizer = str(hf_folder)
    exp = trainer.Experiment(config, workdir or pathlib.Path(hf_folder))
    params, source = exp.model.params, {"hf_folder": str(hf_folder)}
    if workdir is not None:
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), exp.model.params)
        store = ckpt.CheckpointStore(workdir, best_metric=config.checkpoint.best_metric,
                                     best_mode=config.checkpoint.best_mode, read_only=True)
        params, meta = store.restore_params(which, abstract)
        store.close()
        source = {"workdir": str(workdir), "checkpoint": which, "step": meta.get("step")}
    batches = exp.eval_batches()
    if not batches:
        raise ValueError("the config has no eval split (data.eval is empty and data.eval_fraction is 0)")
    result = exp.evaluate(exp.placement.put_state(params), batches)
    return {**source, **result}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from core.training import metrics
    metrics.quiet_library_logs()
    result = evaluate(FLAGS.config, FLAGS.workdir, FLAGS.checkpoint, FLAGS.hf_folder)
    print(json.dumps(result, indent=2))
    if FLAGS.workdir and jax.process_index() == 0:
        (pathlib.Path(FLAGS.workdir) / f"eval_{FLAGS.checkpoint}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    app.run(main)
