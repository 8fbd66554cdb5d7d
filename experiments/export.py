"""Export a Hugging Face folder's model for serving without Python model code, through the
generated ports, and check the exported artifact against the port on a sample batch.

    python -m experiments.export --model=path/to/hf --format=onnx --out=/tmp/model.onnx
    python -m experiments.export --model=path/to/hf --format=torchscript --out=/tmp/model.pt
    python -m experiments.export --model=path/to/hf --format=torch_export --out=/tmp/model.pt2
    python -m experiments.export --model=path/to/hf --format=saved_model --out=/tmp/saved_model

Text models (input_ids, attention_mask in; the task's main output — logits, or
last_hidden_state for a base model — out). Batch and length are dynamic in every format but
TorchScript, whose trace is specialised to the example's shapes (use onnx or torch_export for
dynamic shapes). --task defaults to the head config.json's `architectures` names.
"""
from __future__ import annotations

import pathlib

import numpy as np
from absl import app, flags

FORMATS = ("onnx", "torchscript", "torch_export", "saved_model")
flags.DEFINE_string("model", None, "Hugging Face folder (config.json + safetensors).")
flags.DEFINE_enum("format", "onnx", FORMATS, "What to write.")
flags.DEFINE_string("out", None, "Output file (onnx, torchscript, torch_export) or directory (saved_model).")
flags.DEFINE_string("task", None, "Head to export (default: from config.json's architectures).")
flags.DEFINE_integer("max_length", 512, "Largest sequence length the dynamic shapes admit.")
flags.mark_flags_as_required(["model", "out"])
FLAGS = flags.FLAGS


def _sample(vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.random.default_rng(0).integers(1, min(vocab_size, 1000), size=(2, 9)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    return ids, mask


def _main_output(out):
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state


def export_torch(folder, task: str, fmt: str, out: pathlib.Path, max_length: int = 512) -> float:
    """Write `fmt` for the torch port of `folder`; return max |artifact - port| on a sample."""
    import torch

    from ports.torch import model_class
    from core.checkpoint.loading import read_config

    config = read_config(folder)
    model = model_class(config.model_type, task).from_pretrained(folder).eval()

    class MainOutput(torch.nn.Module):       # exporters take tensors in and out
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return _main_output(self.inner(input_ids=input_ids, attention_mask=attention_mask))

    wrapped = MainOutput(model).eval()
    ids, mask = (torch.from_numpy(a) for a in _sample(config.vocab_size))
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=max_length)
    dynamic = ({0: batch, 1: length}, {0: batch, 1: length})
    with torch.no_grad():
        want = wrapped(ids, mask).numpy()
        if fmt == "onnx":
            import onnxruntime

            program = torch.onnx.export(wrapped, (ids, mask), dynamo=True, input_names=["input_ids", "attention_mask"],
                                        output_names=["output"], dynamic_shapes=dynamic, verbose=False)
            program.save(str(out))
            session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            (got,) = session.run(["output"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        elif fmt == "torchscript":
            traced = torch.jit.trace(wrapped, (ids, mask), strict=False)
            traced.save(str(out))
            got = torch.jit.load(str(out))(ids, mask).numpy()
        elif fmt == "torch_export":
            program = torch.export.export(wrapped, (ids, mask), dynamic_shapes=dynamic)
            torch.export.save(program, str(out))
            got = torch.export.load(str(out)).module()(ids, mask).numpy()
        else:
            raise ValueError(f"format {fmt!r}: not a torch format ({FORMATS[:3]})")
    return float(np.max(np.abs(got - want)))


def export_tf(folder, task: str, out: pathlib.Path) -> float:
    """A SavedModel with a `serving_default` signature (dynamic batch and length)."""
    import tensorflow as tf

    from ports.tf import model_class
    from core.checkpoint.loading import read_config

    config = read_config(folder)
    model = model_class(config.model_type, task).from_pretrained(folder)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32)])
    def serve(input_ids, attention_mask):
        return {"output": _main_output(model(input_ids=input_ids, attention_mask=attention_mask))}

    tf.saved_model.save(model, str(out), signatures={"serving_default": serve})
    ids, mask = (a.astype(np.int32) for a in _sample(config.vocab_size))
    want = _main_output(model(input_ids=ids, attention_mask=mask)).numpy()
    loaded = tf.saved_model.load(str(out))
    got = loaded.signatures["serving_default"](input_ids=tf.constant(ids), attention_mask=tf.constant(mask))["output"]
    return float(np.max(np.abs(got.numpy() - want)))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from experiments.convert import task_from_architectures

    folder, out = pathlib.Path(FLAGS.model), pathlib.Path(FLAGS.out)
    if not (folder / "config.json").is_file():
        raise app.UsageError(f"--model={folder}: no config.json there; pass a Hugging Face model folder")
    task = FLAGS.task or task_from_architectures(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    if FLAGS.format == "saved_model":
        diff = export_tf(folder, task, out)
    else:
        diff = export_torch(folder, task, FLAGS.format, out, FLAGS.max_length)
    print(f"wrote {out} ({FLAGS.format}, {task}); max |exported - port| on a sample batch: {diff:.2e}")


if __name__ == "__main__":
    app.run(main)
