"""Convert between a Hugging Face folder and a Rosetta (orbax) checkpoint.

    python -m experiments.convert --from_hf=path/to/hf --to_rosetta=/tmp/ckpt [--task=masked-lm]
    python -m experiments.convert --from_rosetta=/tmp/workdir --to_hf=/tmp/hf [--checkpoint=best]

A Rosetta checkpoint is a directory in the training workdir layout: `config.json` (the model's
Hugging Face config), `rosetta.json` (task, model type, tokenizer) and `checkpoints/<step>/`
(orbax). Every training workdir is one; `--from_hf` writes a params-only one (step 0), with the
folder's tokenizer files copied to `tokenizer/`. HF → Rosetta → HF is bit-identical.
"""
from __future__ import annotations

import json
import pathlib
import shutil

from absl import app, flags, logging

flags.DEFINE_string("from_hf", None, "Hugging Face model folder to convert.")
flags.DEFINE_string("to_rosetta", None, "Output directory for the Rosetta checkpoint.")
flags.DEFINE_string("task", None, "Task head to load from the HF folder (default: from its architectures).")
flags.DEFINE_string("from_rosetta", None, "Rosetta checkpoint / training workdir to convert.")
flags.DEFINE_string("to_hf", None, "Output Hugging Face folder.")
flags.DEFINE_string("checkpoint", "latest", "Which checkpoint of --from_rosetta: latest, best or a step.")
FLAGS = flags.FLAGS


def task_from_architectures(folder: pathlib.Path) -> str:
    """The task whose `transformers` class config.json's `architectures` names ("base" if none)."""
    from core import registry
    data = json.loads((folder / "config.json").read_text())
    family = registry.family(data["model_type"])
    for arch in data.get("architectures") or ():
        for task, (_, hf_class) in family.heads.items():
            if hf_class == arch:
                return task
    return "base"


def hf_to_rosetta(hf_folder, out_dir, task: str | None = None) -> pathlib.Path:
    from core.modeling import PretrainedModel
    from core.training import checkpoint as ckpt
    from core.training import trainer

    hf_folder, out_dir = pathlib.Path(hf_folder), pathlib.Path(out_dir)
    task = task or task_from_architectures(hf_folder)
    model = PretrainedModel.from_pretrained(hf_folder, task=task)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text((hf_folder / "config.json").read_text())
    tokenizer_dir = out_dir / "tokenizer"
    copied = [n for n in trainer.TOKENIZER_FILES if (hf_folder / n).is_file()]
    for name in copied:
        tokenizer_dir.mkdir(exist_ok=True)
        shutil.copy2(hf_folder / name, tokenizer_dir / name)
    for extra in ("generation_config.json",):
        if (hf_folder / extra).is_file():
            shutil.copy2(hf_folder / extra, out_dir / extra)
    (out_dir / "rosetta.json").write_text(json.dumps({
        "task": task, "model_type": model.config.model_type,
        "tokenizer": "tokenizer" if copied else None, "source": str(hf_folder)}, indent=2) + "\n")
    ckpt.save_params_checkpoint(out_dir, 0, model.params, {"task": task, "model_type": model.config.model_type,
                                                           "source": str(hf_folder)})
    return out_dir


def rosetta_to_hf(rosetta_dir, hf_folder, which: str = "latest") -> pathlib.Path:
    import jax
    from core.modeling import PretrainedModel, _abstract_params, read_config
    from core.checkpoint import keymap as km
    from core.training import checkpoint as ckpt
    from core.training import trainer

    rosetta_dir, hf_folder = pathlib.Path(rosetta_dir), pathlib.Path(hf_folder)
    info = json.loads((rosetta_dir / "rosetta.json").read_text())
    config = read_config(rosetta_dir)
    module = PretrainedModel.build_module(config, info["task"])
    abstract = km.unflatten(_abstract_params(module, info["task"]))
    store = ckpt.CheckpointStore(rosetta_dir, best_metric="loss", read_only=True)
    params, meta = store.restore_params(which, abstract)
    store.close()
    cls = PretrainedModel
    if info["task"] == "causal-lm":
        from core.generation.model import CausalLMModel
        cls = CausalLMModel
    out = cls(config, module, jax.device_get(params), info["task"])
    if cls is not PretrainedModel and (rosetta_dir / "generation_config.json").is_file():
        from core.generation.config import GenerationConfig
        out.generation_config = GenerationConfig.from_pretrained(rosetta_dir, config)
    out.save_pretrained(hf_folder)
    tokenizer = info.get("tokenizer")
    if tokenizer:
        tok_dir = pathlib.Path(tokenizer)
        tok_dir = tok_dir if tok_dir.is_absolute() else rosetta_dir / tok_dir
        for name in trainer.TOKENIZER_FILES:
            if (tok_dir / name).is_file():
                shutil.copy2(tok_dir / name, hf_folder / name)
    logging.info("wrote %s from %s step %s", hf_folder, rosetta_dir, meta.get("step"))
    return hf_folder


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.from_hf and FLAGS.to_rosetta:
        print(hf_to_rosetta(FLAGS.from_hf, FLAGS.to_rosetta, FLAGS.task))
    elif FLAGS.from_rosetta and FLAGS.to_hf:
        print(rosetta_to_hf(FLAGS.from_rosetta, FLAGS.to_hf, FLAGS.checkpoint))
    else:
        raise app.UsageError("pass --from_hf with --to_rosetta, or --from_rosetta with --to_hf")


if __name__ == "__main__":
    app.run(main)
