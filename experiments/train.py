"""Train a model from an ml_collections config.

    python -m experiments.train --config=configs/bert_mlm.py --workdir=/tmp/mlm
    python -m experiments.train --config=configs/bert_mlm.py:tiny --workdir=/tmp/t \
        --config.optimizer.lr=3e-4 --config.train.steps=50
    python -m experiments.train --config=configs/bert_classify.py --workdir=/tmp/cls   # fine-tune MiniLM

Re-running the same command with the same --workdir resumes from its newest readable
checkpoint (exactly: the finished run equals an uninterrupted one). Multi-host: add
--coordinator_address=host:port --num_processes=N --process_id=i (or --distributed to let JAX
detect a TPU pod / SLURM / MPI cluster); see WORKSPACE.md, "Training".
"""
from absl import app, flags, logging
import jax
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Experiment config file, optionally with :variant.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and the exported model.")
flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator host:port (multi-host).")
flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() with cluster auto-detection.")
FLAGS = flags.FLAGS

jax.config.parse_flags_with_absl()      # --jax_* flags; before the required-flag validators exist
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from core.training import metrics, parallel, trainer
    from core.training.export_check import format_check

    if FLAGS.verbosity <= 0:
        metrics.quiet_library_logs()
    parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                                    auto=FLAGS.distributed)
    logging.info("config:\n%s", FLAGS.config)
    summary = trainer.train(FLAGS.config, FLAGS.workdir)
    if jax.process_index() == 0:
        evals = summary.get("eval_history", [])
        line = (f"steps {summary['start_step']}→{summary['end_step']} in {summary['seconds']:.1f}s; "
                f"train loss {summary.get('first_train_loss', float('nan')):.4f} → "
                f"{summary.get('final_train_loss', float('nan')):.4f}")
        if evals:
            line += f"; eval loss {evals[0]['loss']:.4f} (step {evals[0]['step']}) → {evals[-1]['loss']:.4f}"
        if "tokens_per_sec" in summary:
            line += f"; {summary['tokens_per_sec']:,.0f} tokens/s"
        print(line)
        for text in summary.get("samples", []):
            print(f"sample: {text!r}")
        if summary.get("export"):
            print(f"exported: {summary['export']}")
        if summary.get("export_check"):
            print(f"export check (same eval rows): {format_check(summary['export_check'])}")


if __name__ == "__main__":
    app.run(main)
