"""Which model types Rosetta supports and where each piece lives. Importable without JAX.

Every family names its config class, the module holding its canonical Flax classes, its key
map, and per task the Flax class and the `transformers` class name written into
`config.json["architectures"]` on save.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Mapping

TASKS = ("base", "masked-lm", "sequence-classification", "token-classification",
         "question-answering", "multiple-choice", "pretraining", "causal-lm", "seq2seq-lm")


@dataclasses.dataclass(frozen=True)
class Family:
    model_type: str
    config: str                       # "module:Class"
    modeling: str                     # module with the Flax classes
    params: str                       # module with key_map(config, task)
    base_prefix: str                  # attribute holding the backbone inside task heads
    heads: Mapping[str, tuple[str, str]]  # task → (Flax class, transformers class)

    def config_class(self):
        module, name = self.config.split(":")
        return getattr(importlib.import_module(module), name)

    def module_class(self, task: str):
        self.check_task(task)
        return getattr(importlib.import_module(self.modeling), self.heads[task][0])

    def key_map(self, config, task: str):
        return importlib.import_module(self.params).key_map(config, task)

    def check_task(self, task: str):
        if task not in self.heads:
            raise ValueError(f"model_type {self.model_type!r} has no {task!r} head; "
                             f"it has: {', '.join(self.heads)}")


def _bert_like(model_type: str, package: str, prefix: str, hf: str, config: str, extra=()) -> Family:
    heads = {
        "base": (f"{hf}Module", f"{hf}Model"),
        "masked-lm": (f"{hf}ForMaskedLM", f"{hf}ForMaskedLM"),
        "sequence-classification": (f"{hf}ForSequenceClassification", f"{hf}ForSequenceClassification"),
        "token-classification": (f"{hf}ForTokenClassification", f"{hf}ForTokenClassification"),
        "question-answering": (f"{hf}ForQuestionAnswering", f"{hf}ForQuestionAnswering"),
        "multiple-choice": (f"{hf}ForMultipleChoice", f"{hf}ForMultipleChoice"),
    }
    heads.update(extra)
    return Family(model_type, f"core.models.{package}.config:{config}", f"core.models.{package}.modeling",
                  f"core.models.{package}.params", prefix, heads)


FAMILIES: dict[str, Family] = {
    "bert": _bert_like("bert", "bert", "bert", "Bert", "BertConfig"),
    "roberta": _bert_like("roberta", "roberta", "roberta", "Roberta", "RobertaConfig"),
    "xlm-roberta": _bert_like("xlm-roberta", "roberta", "roberta", "XLMRoberta", "XLMRobertaConfig"),
    "camembert": _bert_like("camembert", "roberta", "roberta", "Camembert", "CamembertConfig"),
    "distilbert": _bert_like("distilbert", "distilbert", "distilbert", "DistilBert", "DistilBertConfig"),
    "albert": _bert_like("albert", "albert", "albert", "Albert", "AlbertConfig",
                         extra={"pretraining": ("AlbertForPreTraining", "AlbertForPreTraining")}),
    "electra": _bert_like("electra", "electra", "electra", "Electra", "ElectraConfig",
                          extra={"pretraining": ("ElectraForPreTraining", "ElectraForPreTraining")}),
    "mpnet": _bert_like("mpnet", "mpnet", "mpnet", "MPNet", "MPNetConfig"),
    "gpt2": Family("gpt2", "core.models.gpt2.config:GPT2Config", "core.models.gpt2.modeling",
                   "core.models.gpt2.params", "transformer", {
                       "base": ("GPT2Module", "GPT2Model"),
                       "causal-lm": ("GPT2LMHeadModel", "GPT2LMHeadModel"),
                       "sequence-classification": ("GPT2ForSequenceClassification", "GPT2ForSequenceClassification"),
                   }),
    "llama": Family("llama", "core.models.llama.config:LlamaConfig", "core.models.llama.modeling",
                    "core.models.llama.params", "model", {
                        "base": ("LlamaModule", "LlamaModel"),
                        "causal-lm": ("LlamaForCausalLM", "LlamaForCausalLM"),
                        "sequence-classification": ("LlamaForSequenceClassification", "LlamaForSequenceClassification"),
                    }),
}


def family(model_type: str) -> Family:
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise ValueError(f"model_type {model_type!r} is not supported by Rosetta; supported: "
                         f"{', '.join(sorted(FAMILIES))}") from None
