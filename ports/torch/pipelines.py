"""Pipelines on the torch port: `core.pipeline`'s tasks, arguments and outputs, with the model forward
(and `generate`) running in the generated torch modules.

    from ports.torch import pipeline
    fill = pipeline("fill-mask", model="path/to/folder", batch_size=8)
    fill("Paris is the [MASK] of France.", top_k=3)
    gen = pipeline("text-generation", model=AutoModelForCausalLM.from_pretrained(folder), tokenizer=folder)
    gen("Once upon a time", max_new_tokens=20, do_sample=False, seed=0)

The pre- and post-processing are `core.pipelines`' own (one copy); this module only supplies the torch
`Backend`: loading (the port's class for the task's head), the forward (`torch.no_grad()`, eval mode,
outputs brought back as numpy, the pipelines' `_select` run with torch ops) and `TorchModel`, the thin
adapter giving the pipelines what they read from a model (config, task, max_length,
generation_config, generate: `input_ids`, or Whisper's `input_features` for
automatic-speech-recognition). Sampling takes `seed=` (no `prng_key`). Imports no JAX.
`compile_count` counts the distinct padded shapes run (torch compiles nothing; the count says the
same as the JAX pipeline's on the same inputs).
"""
from __future__ import annotations

import inspect
import types
from typing import Optional

import numpy as np
import torch

from core import pipelines as core_pipelines
from core import registry
from core.checkpoint.loading import read_config
from core.pipelines.base import Backend, Pipeline
from ports.torch.runtime.module import Module, port_module, to_numpy

OPS = types.SimpleNamespace(
    take_along_axis=lambda a, indices, axis: torch.take_along_dim(a, indices, dim=axis),
    softmax=lambda x, axis: torch.softmax(x, dim=axis),
    argmax=lambda x, axis: torch.argmax(x, dim=axis),
    float32=lambda x: x.float(),
)

# Auto class of each head, for error messages.
_AUTO = {"base": "AutoModel", "masked-lm": "AutoModelForMaskedLM",
         "sequence-classification": "AutoModelForSequenceClassification",
         "token-classification": "AutoModelForTokenClassification",
         "question-answering": "AutoModelForQuestionAnswering", "causal-lm": "AutoModelForCausalLM",
         "seq2seq-lm": "AutoModelForSeq2SeqLM", "image-classification": "AutoModelForImageClassification",
         "ctc": "AutoModelForCTC"}


def _device(module: torch.nn.Module) -> torch.device:
    for param in module.parameters():
        return param.device
    return torch.device("cpu")


def _tensor(array, device) -> torch.Tensor:
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def _to_host(out):
    if isinstance(out, dict):
        return {name: _to_host(value) for name, value in out.items()}
    return to_numpy(out)


class TorchModel:
    """What a pipeline reads from its model, for a torch port module (`.module`)."""

    params = None                    # the weights live in the module

    def __init__(self, module: Module):
        self.module = module
        self.config = module.config
        self.task = type(module).head_task(module.config)

    @property
    def pipeline_backend(self) -> Backend:
        return TORCH

    @property
    def max_length(self) -> Optional[int]:
        limit = getattr(self.config, "max_input_length", None)
        if limit is not None:
            return limit
        return getattr(self.config, "max_position_embeddings", None)

    @property
    def generation_config(self):
        return self.module._generation_defaults()

    def generate(self, input_ids=None, attention_mask=None, seed: Optional[int] = None, prng_key=None, tokenizer=None,
                 input_features=None, **kwargs) -> np.ndarray:
        """The port's `generate` on numpy inputs (`input_ids`, or a speech model's `input_features`);
        int64 numpy tokens."""
        if prng_key is not None:
            raise ValueError("prng_key is JAX's; the torch port samples from seed=<int>")
        device = _device(self.module)
        if input_features is not None:
            kwargs["input_features"] = _tensor(np.asarray(input_features, np.float32), device)
        out = self.module.generate(None if input_ids is None else _tensor(input_ids, device),
                                   attention_mask=None if attention_mask is None else _tensor(attention_mask, device),
                                   seed=seed, tokenizer=tokenizer, **kwargs)
        return out.cpu().numpy()

    def __repr__(self):
        params = sum(p.numel() for p in self.module.parameters())
        return f"TorchModel({self.config.model_type}, task={self.task!r}, params={params:,})"


class TorchBackend(Backend):
    loaded_name = "a torch port model (ports.torch.AutoModel...)"

    def is_loaded(self, obj) -> bool:
        return isinstance(obj, (Module, TorchModel))

    def adopt(self, model):
        return model if isinstance(model, TorchModel) else TorchModel(model)

    def reload_hint(self, head: str) -> str:
        return f"ports.torch.{_AUTO.get(head, 'model_class(model_type, ' + repr(head) + ')')}.from_pretrained(folder)"

    def load(self, folder, head, dtype, **kwargs):
        cls = self._class(registry.family(read_config(folder).model_type), head)
        return TorchModel(cls.from_pretrained(folder, dtype=torch.float32 if dtype is None else dtype, **kwargs))

    @staticmethod
    def _class(family, head):
        return getattr(port_module(family), family.heads[head][0])

    def module_fields(self, family, head):
        return set(inspect.signature(self._class(family, head).__init__).parameters)

    def input_names(self, model):
        return set(inspect.signature(type(model.module).forward).parameters)

    def compile(self, pipeline: Pipeline, forward):
        seen: set = set()

        def run(*arrays):
            key = tuple(None if a is None else (np.shape(a), np.asarray(a).dtype.str) for a in arrays)
            if key not in seen:           # one "compile" per distinct padded shape, as the JAX pipelines count
                seen.add(key)
                pipeline._traces += 1
            module = pipeline.model.module
            device = _device(module)
            tensors = [None if a is None else _tensor(a, device) for a in arrays]
            was_training = module.training
            module.eval()
            try:
                with torch.no_grad():
                    out = forward(module, OPS, *tensors)
            finally:
                module.train(was_training)
            return _to_host(out)

        return run


TORCH = TorchBackend()


def pipeline(task: str, model=None, tokenizer=None, batch_size: int = 1, dtype=torch.float32,
             min_length_bucket: int = 8, model_kwargs: Optional[dict] = None) -> Pipeline:
    """`core.pipeline` on the torch port: the same tasks, arguments and outputs.

    model: a folder, or a torch port module loaded with the task's head (`ports.torch.AutoModelFor...`).
    dtype: the torch compute dtype. model_kwargs: passed to the port's `from_pretrained`.
    """
    return core_pipelines.pipeline(task, model=model, tokenizer=tokenizer, batch_size=batch_size, dtype=dtype,
                                   min_length_bucket=min_length_bucket, model_kwargs=model_kwargs, backend=TORCH)


__all__ = ["OPS", "TORCH", "TorchBackend", "TorchModel", "pipeline"]
