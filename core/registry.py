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
         "question-answering", "multiple-choice", "pretraining", "causal-lm", "seq2seq-lm",
         "encoder", "image-classification", "image-classification-with-teacher", "masked-image-modeling",
         "text-encoder", "vision-encoder", "ctc", "audio-frame-classification", "audio-xvector")


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
    **{model_type: Family(model_type, f"core.models.t5.config:{cfg}", "core.models.t5.modeling",
                          "core.models.t5.params", "", {
                              "base": ("T5Module", f"{hf}Model"),
                              "seq2seq-lm": ("T5ForConditionalGeneration", f"{hf}ForConditionalGeneration"),
                              "sequence-classification": ("T5ForSequenceClassification",
                                                          f"{hf}ForSequenceClassification"),
                              "question-answering": ("T5ForQuestionAnswering", f"{hf}ForQuestionAnswering"),
                              "encoder": ("T5EncoderModel", f"{hf}EncoderModel"),
                          })
       for model_type, cfg, hf in (("t5", "T5Config", "T5"), ("mt5", "MT5Config", "MT5"),
                                   ("umt5", "UMT5Config", "UMT5"))},
    "pegasus_x": Family("pegasus_x", "core.models.pegasus_x.config:PegasusXConfig", "core.models.pegasus_x.modeling",
                        "core.models.pegasus_x.params", "model", {
                            "base": ("PegasusXModule", "PegasusXModel"),
                            "seq2seq-lm": ("PegasusXForConditionalGeneration", "PegasusXForConditionalGeneration"),
                        }),
    "longt5": Family("longt5", "core.models.t5.config:LongT5Config", "core.models.t5.modeling", "core.models.t5.params",
                     "", {
                         "base": ("T5Module", "LongT5Model"),
                         "seq2seq-lm": ("T5ForConditionalGeneration", "LongT5ForConditionalGeneration"),
                         "encoder": ("T5EncoderModel", "LongT5EncoderModel"),
                     }),
    "openai-gpt": Family("openai-gpt", "core.models.openai.config:OpenAIGPTConfig", "core.models.openai.modeling",
                         "core.models.openai.params", "transformer", {
                             "base": ("OpenAIGPTModule", "OpenAIGPTModel"),
                             "causal-lm": ("OpenAIGPTLMHeadModel", "OpenAIGPTLMHeadModel"),
                             "sequence-classification": ("OpenAIGPTForSequenceClassification",
                                                         "OpenAIGPTForSequenceClassification"),
                         }),
    "xglm": Family("xglm", "core.models.xglm.config:XGLMConfig", "core.models.xglm.modeling",
                   "core.models.xglm.params", "model", {
                       "base": ("XGLMModule", "XGLMModel"),
                       "causal-lm": ("XGLMForCausalLM", "XGLMForCausalLM"),
                   }),
    "biogpt": Family("biogpt", "core.models.biogpt.config:BioGptConfig", "core.models.biogpt.modeling",
                     "core.models.biogpt.params", "biogpt", {
                         "base": ("BioGptModule", "BioGptModel"),
                         "causal-lm": ("BioGptForCausalLM", "BioGptForCausalLM"),
                         "sequence-classification": ("BioGptForSequenceClassification",
                                                     "BioGptForSequenceClassification"),
                         "token-classification": ("BioGptForTokenClassification", "BioGptForTokenClassification"),
                     }),
    "opt": Family("opt", "core.models.opt.config:OPTConfig", "core.models.opt.modeling",
                  "core.models.opt.params", "model", {
                      "base": ("OPTModule", "OPTModel"),
                      "causal-lm": ("OPTForCausalLM", "OPTForCausalLM"),
                      "sequence-classification": ("OPTForSequenceClassification", "OPTForSequenceClassification"),
                      "question-answering": ("OPTForQuestionAnswering", "OPTForQuestionAnswering"),
                  }),
    "gpt_neo": Family("gpt_neo", "core.models.gpt_neo.config:GPTNeoConfig", "core.models.gpt_neo.modeling",
                      "core.models.gpt_neo.params", "transformer", {
                          "base": ("GPTNeoModule", "GPTNeoModel"),
                          "causal-lm": ("GPTNeoForCausalLM", "GPTNeoForCausalLM"),
                          "sequence-classification": ("GPTNeoForSequenceClassification",
                                                      "GPTNeoForSequenceClassification"),
                          "token-classification": ("GPTNeoForTokenClassification", "GPTNeoForTokenClassification"),
                          "question-answering": ("GPTNeoForQuestionAnswering", "GPTNeoForQuestionAnswering"),
                      }),
    "gptj": Family("gptj", "core.models.gptj.config:GPTJConfig", "core.models.gptj.modeling",
                   "core.models.gptj.params", "transformer", {
                       "base": ("GPTJModule", "GPTJModel"),
                       "causal-lm": ("GPTJForCausalLM", "GPTJForCausalLM"),
                       "sequence-classification": ("GPTJForSequenceClassification", "GPTJForSequenceClassification"),
                       "question-answering": ("GPTJForQuestionAnswering", "GPTJForQuestionAnswering"),
                   }),
    # CodeGen runs on GPT-J's modules (a fused qkv_proj, un-permuted by its key map).
    "codegen": Family("codegen", "core.models.codegen.config:CodeGenConfig", "core.models.gptj.modeling",
                      "core.models.codegen.params", "transformer", {
                          "base": ("GPTJModule", "CodeGenModel"),
                          "causal-lm": ("GPTJForCausalLM", "CodeGenForCausalLM"),
                      }),
    "gpt_neox": Family("gpt_neox", "core.models.gpt_neox.config:GPTNeoXConfig", "core.models.gpt_neox.modeling",
                       "core.models.gpt_neox.params", "gpt_neox", {
                           "base": ("GPTNeoXModule", "GPTNeoXModel"),
                           "causal-lm": ("GPTNeoXForCausalLM", "GPTNeoXForCausalLM"),
                           "sequence-classification": ("GPTNeoXForSequenceClassification",
                                                       "GPTNeoXForSequenceClassification"),
                           "token-classification": ("GPTNeoXForTokenClassification", "GPTNeoXForTokenClassification"),
                           "question-answering": ("GPTNeoXForQuestionAnswering", "GPTNeoXForQuestionAnswering"),
                       }),
    "bloom": Family("bloom", "core.models.bloom.config:BloomConfig", "core.models.bloom.modeling",
                    "core.models.bloom.params", "transformer", {
                        "base": ("BloomModule", "BloomModel"),
                        "causal-lm": ("BloomForCausalLM", "BloomForCausalLM"),
                        "sequence-classification": ("BloomForSequenceClassification", "BloomForSequenceClassification"),
                        "token-classification": ("BloomForTokenClassification", "BloomForTokenClassification"),
                        "question-answering": ("BloomForQuestionAnswering", "BloomForQuestionAnswering"),
                    }),
    "falcon": Family("falcon", "core.models.falcon.config:FalconConfig", "core.models.falcon.modeling",
                     "core.models.falcon.params", "transformer", {
                         "base": ("FalconModule", "FalconModel"),
                         "causal-lm": ("FalconForCausalLM", "FalconForCausalLM"),
                         "sequence-classification": ("FalconForSequenceClassification",
                                                     "FalconForSequenceClassification"),
                         "token-classification": ("FalconForTokenClassification", "FalconForTokenClassification"),
                         "question-answering": ("FalconForQuestionAnswering", "FalconForQuestionAnswering"),
                     }),
    "gpt_bigcode": Family("gpt_bigcode", "core.models.gpt_bigcode.config:GPTBigCodeConfig",
                          "core.models.gpt_bigcode.modeling", "core.models.gpt_bigcode.params", "transformer", {
                              "base": ("GPTBigCodeModule", "GPTBigCodeModel"),
                              "causal-lm": ("GPTBigCodeForCausalLM", "GPTBigCodeForCausalLM"),
                              "sequence-classification": ("GPTBigCodeForSequenceClassification",
                                                          "GPTBigCodeForSequenceClassification"),
                              "token-classification": ("GPTBigCodeForTokenClassification",
                                                       "GPTBigCodeForTokenClassification"),
                          }),
}


def _bart_like(model_type: str, hf: str, config: str, heads=("seq2seq-lm", "sequence-classification",
                                                         "question-answering", "causal-lm"), lm: str = "") -> Family:
    """The BART family (core/models/bart): one module set, per-type configs."""
    names = {"base": ("BartModule", f"{hf}Model"),
             "seq2seq-lm": ("BartForConditionalGeneration", lm or f"{hf}ForConditionalGeneration"),
             "sequence-classification": ("BartForSequenceClassification", f"{hf}ForSequenceClassification"),
             "question-answering": ("BartForQuestionAnswering", f"{hf}ForQuestionAnswering"),
             "causal-lm": ("BartForCausalLM", f"{hf}ForCausalLM")}
    return Family(model_type, f"core.models.bart.config:{config}", "core.models.bart.modeling",
                  "core.models.bart.params", "model", {t: names[t] for t in ("base", *heads)})


FAMILIES.update({
    "bart": _bart_like("bart", "Bart", "BartConfig"),
    "mbart": _bart_like("mbart", "MBart", "MBartConfig"),
    "plbart": _bart_like("plbart", "PLBart", "PLBartConfig", ("seq2seq-lm", "sequence-classification", "causal-lm")),
    "marian": _bart_like("marian", "Marian", "MarianConfig", ("seq2seq-lm", "causal-lm"), lm="MarianMTModel"),
    "pegasus": _bart_like("pegasus", "Pegasus", "PegasusConfig", ("seq2seq-lm", "causal-lm")),
    "m2m_100": _bart_like("m2m_100", "M2M100", "M2M100Config", ("seq2seq-lm",)),
    "blenderbot": _bart_like("blenderbot", "Blenderbot", "BlenderbotConfig", ("seq2seq-lm", "causal-lm")),
    "blenderbot-small": _bart_like("blenderbot-small", "BlenderbotSmall", "BlenderbotSmallConfig",
                                   ("seq2seq-lm", "causal-lm")),
    "mvp": _bart_like("mvp", "Mvp", "MvpConfig"),
    "fsmt": _bart_like("fsmt", "FSMT", "FSMTConfig", ("seq2seq-lm",)),
})


def _vit_like(model_type: str, config: str, prefix: str, heads: dict) -> Family:
    """The ViT family (core/models/vit): one module set, per-type configs."""
    return Family(model_type, f"core.models.vit.config:{config}", "core.models.vit.modeling",
                  "core.models.vit.params", prefix, heads)


FAMILIES.update({
    "vit": _vit_like("vit", "ViTConfig", "vit", {
        "base": ("ViTModule", "ViTModel"),
        "image-classification": ("ViTForImageClassification", "ViTForImageClassification"),
        "masked-image-modeling": ("ViTForMaskedImageModeling", "ViTForMaskedImageModeling")}),
    "deit": _vit_like("deit", "DeiTConfig", "deit", {
        "base": ("ViTModule", "DeiTModel"),
        "image-classification": ("DeiTForImageClassification", "DeiTForImageClassification"),
        "masked-image-modeling": ("DeiTForMaskedImageModeling", "DeiTForMaskedImageModeling"),
        "image-classification-with-teacher": ("DeiTForImageClassificationWithTeacher",
                                              "DeiTForImageClassificationWithTeacher")}),
    "vit_msn": _vit_like("vit_msn", "ViTMSNConfig", "vit", {
        "base": ("ViTModule", "ViTMSNModel"),
        "image-classification": ("ViTForImageClassification", "ViTMSNForImageClassification")}),
})


FAMILIES.update({
    "clip": Family("clip", "core.models.clip.config:CLIPConfig", "core.models.clip.modeling",
                   "core.models.clip.params", "", {"base": ("CLIPModule", "CLIPModel")}),
    # The towers alone (transformers v5 saves their layers at the root).
    "clip_text_model": Family("clip_text_model", "core.models.clip.config:CLIPTextConfig", "core.models.clip.modeling",
                              "core.models.clip.params", "", {"base": ("CLIPTextTransformer", "CLIPTextModel"),
                                                              "text-encoder": ("CLIPTextTransformer", "CLIPTextModel")}),
    "clip_vision_model": Family("clip_vision_model", "core.models.clip.config:CLIPVisionConfig",
                                "core.models.clip.modeling", "core.models.clip.params", "",
                                {"base": ("CLIPVisionTransformer", "CLIPVisionModel"),
                                 "vision-encoder": ("CLIPVisionTransformer", "CLIPVisionModel")}),
})


FAMILIES.update({
    "beit": Family("beit", "core.models.beit.config:BeitConfig", "core.models.beit.modeling",
                   "core.models.beit.params", "beit", {
                       "base": ("BeitModule", "BeitModel"),
                       "image-classification": ("BeitForImageClassification", "BeitForImageClassification"),
                       "masked-image-modeling": ("BeitForMaskedImageModeling", "BeitForMaskedImageModeling")}),
    "vit_mae": Family("vit_mae", "core.models.vit_mae.config:ViTMAEConfig", "core.models.vit_mae.modeling",
                      "core.models.vit_mae.params", "vit", {
                          "base": ("ViTMAEModule", "ViTMAEModel"),
                          "pretraining": ("ViTMAEForPreTraining", "ViTMAEForPreTraining")}),
})


FAMILIES.update({
    "convnext": Family("convnext", "core.models.convnext.config:ConvNextConfig", "core.models.convnext.modeling",
                       "core.models.convnext.params", "convnext", {
                           "base": ("ConvNextModule", "ConvNextModel"),
                           "image-classification": ("ConvNextForImageClassification",
                                                    "ConvNextForImageClassification")}),
    "resnet": Family("resnet", "core.models.resnet.config:ResNetConfig", "core.models.resnet.modeling",
                     "core.models.resnet.params", "resnet", {
                         "base": ("ResNetModule", "ResNetModel"),
                         "image-classification": ("ResNetForImageClassification", "ResNetForImageClassification")}),
})


FAMILIES.update({
    "swin": Family("swin", "core.models.swin.config:SwinConfig", "core.models.swin.modeling",
                   "core.models.swin.params", "swin", {
                       "base": ("SwinModule", "SwinModel"),
                       "image-classification": ("SwinForImageClassification", "SwinForImageClassification"),
                       "masked-image-modeling": ("SwinForMaskedImageModeling", "SwinForMaskedImageModeling")}),
})



def _wav2vec2_like(model_type: str, config: str, prefix: str, hf: str, frame_and_xvector: bool = False) -> Family:
    """Wav2Vec2 / HuBERT / WavLM (core/models/wav2vec2): one module set, per-type configs;
    `frame_and_xvector` adds the audio-frame-classification and x-vector heads (not HuBERT's)."""
    heads = {"base": ("Wav2Vec2Module", f"{hf}Model"),
             "ctc": ("Wav2Vec2ForCTC", f"{hf}ForCTC"),
             "sequence-classification": ("Wav2Vec2ForSequenceClassification", f"{hf}ForSequenceClassification")}
    if frame_and_xvector:
        heads["audio-frame-classification"] = ("Wav2Vec2ForAudioFrameClassification",
                                               f"{hf}ForAudioFrameClassification")
        heads["audio-xvector"] = ("Wav2Vec2ForXVector", f"{hf}ForXVector")
    return Family(model_type, f"core.models.wav2vec2.config:{config}", "core.models.wav2vec2.modeling",
                  "core.models.wav2vec2.params", prefix, heads)


FAMILIES.update({
    "wav2vec2": _wav2vec2_like("wav2vec2", "Wav2Vec2Config", "wav2vec2", "Wav2Vec2", frame_and_xvector=True),
    "hubert": _wav2vec2_like("hubert", "HubertConfig", "hubert", "Hubert"),
    "wavlm": _wav2vec2_like("wavlm", "WavLMConfig", "wavlm", "WavLM", frame_and_xvector=True),
})

FAMILIES["whisper"] = Family("whisper", "core.models.whisper.config:WhisperConfig", "core.models.whisper.modeling",
                             "core.models.whisper.params", "", {
                                 "base": ("WhisperModule", "WhisperModel"),
                                 "seq2seq-lm": ("WhisperForConditionalGeneration", "WhisperForConditionalGeneration"),
                                 "sequence-classification": ("WhisperForAudioClassification",
                                                             "WhisperForAudioClassification"),
                             })

def family(model_type: str) -> Family:
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise ValueError(f"model_type {model_type!r} is not supported by Rosetta; supported: "
                         f"{', '.join(sorted(FAMILIES))}") from None
