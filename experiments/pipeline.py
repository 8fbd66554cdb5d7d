"""Run a Rosetta pipeline on a local folder and print the result as JSON.

    python -m experiments.pipeline --task=fill-mask --model=path/to/folder --inputs="Paris is the [MASK] of France."
    python -m experiments.pipeline --task=zero-shot-classification --model=path/to/nli \
        --inputs="I love pizza" --kwargs='{"candidate_labels": ["food", "sports"]}'
    python -m experiments.pipeline --task=question-answering --model=path/to/qa \
        --inputs='{"question": "Where?", "context": "It is in Paris."}'
    python -m experiments.pipeline --task=feature-extraction          # the bundled MiniLM

--inputs is repeatable; an input that parses as a JSON object is passed as a dict (text pairs for
text-classification, question/context for question-answering). Prints
{"task", "model", "outputs", "compile_count", "seconds"}; one input gives that input's output.
"""
from __future__ import annotations

import json
import time

from absl import app, flags
import numpy as np

FLAGS = flags.FLAGS


def define_flags():
    """Defined on demand (not at import) so that tests can import `run` next to other experiments'
    flags of the same names."""
    flags.DEFINE_string("task", None, "feature-extraction, fill-mask, text-classification, token-classification, "
                        "question-answering or zero-shot-classification (aliases: sentiment-analysis, ner).")
    flags.DEFINE_string("model", None, "A local Hugging Face folder (default: the bundled all-MiniLM-L6-v2 "
                        "checkpoint, which serves feature-extraction).")
    flags.DEFINE_multi_string("inputs", [], "An input text, or a JSON object (repeatable).")
    flags.DEFINE_string("kwargs", "{}", "Call options as a JSON object, e.g. '{\"top_k\": 3}'.")
    flags.DEFINE_integer("batch_size", 8, "Inputs per forward pass.")
    flags.DEFINE_enum("framework", "jax", ["jax", "torch"],
                      "jax: core.pipeline; torch: ports.torch.pipeline (the generated PyTorch port, no JAX).")
    flags.mark_flag_as_required("task")


def to_json(value):
    """`default=` for json.dumps: numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _parse(text: str):
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(value, dict):
            return value
    return text


def run(task: str, model: str, inputs: list[str], kwargs: dict, batch_size: int = 8, framework: str = "jax") -> dict:
    if framework == "torch":
        from ports.torch import pipeline
    else:
        from core import pipeline

    if not inputs:
        raise app.UsageError("pass at least one --inputs")
    pipe = pipeline(task, model=model, batch_size=batch_size)
    items = [_parse(text) for text in inputs]
    start = time.perf_counter()
    outputs = pipe(items[0] if len(items) == 1 else items, **kwargs)
    return {"task": pipe.task, "model": str(model), "framework": framework, "outputs": outputs, "compile_count": pipe.compile_count,
            "seconds": round(time.perf_counter() - start, 3)}


def main(argv):
    del argv
    from core import data

    try:
        kwargs = json.loads(FLAGS.kwargs)
    except json.JSONDecodeError as e:
        raise app.UsageError(f"--kwargs is not valid JSON ({e})")
    if not isinstance(kwargs, dict):
        raise app.UsageError("--kwargs must be a JSON object")
    model = FLAGS.model or str(data.minilm_folder())
    from core.pipelines import PipelineError

    try:
        result = run(FLAGS.task, model, FLAGS.inputs, kwargs, FLAGS.batch_size, FLAGS.framework)
    except (PipelineError, KeyError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(json.dumps(result, default=to_json, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    define_flags()
    app.run(main)
