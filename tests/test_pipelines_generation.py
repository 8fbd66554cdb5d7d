"""Generation and vision pipelines: text-generation and image / zero-shot-image classification against
transformers' pipelines on the same folders (identical texts and labels, scores within 1e-5);
text2text-generation / summarization / translation (removed from transformers v5) against the reference
model's own `generate` on the same tokenized inputs, decoded as v4's pipelines decoded.

Tiny random models (weights ~ N(0, 1) for the LMs, so greedy argmax is far from ties) over one byte-level
BPE tokenizer trained here.
"""
import json

import numpy as np
import pytest
import tokenizers
import torch
import transformers
from PIL import Image

from core import pipeline
from core.pipelines import PipelineError
from tests import parity

CORPUS = ["the quick brown fox jumps over the lazy dog", "hello world, how are you today?",
          "a photo of a cat", "a photo of a dog", "This is a photo of a car.", "summarize: the end of the story",
          "translate English to French: good morning", "Once upon a time there was a king."] * 4
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
PROMPTS = ["the quick brown", "hello", "Once upon a time there was", "a photo"]
CHAT = [{"role": "user", "content": "hello world"}]


def save_tokenizer(folder, wrap: bool, **config):
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    if wrap:
        tok.post_processor = tokenizers.processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
         "model_max_length": 64, **config}))
    return tok.get_vocab_size()


def randomized(hf_class, config, seed, std=1.0):
    torch.manual_seed(seed)
    return parity.randomize_(hf_class._from_config(config, attn_implementation="eager").eval(), seed, std=std)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen_pipelines")
    out = {}
    # GPT-2 with a chat template and a pad token
    vocab = save_tokenizer(root / "gpt2", wrap=False, pad_token="<pad>", chat_template=CHATML)
    config = transformers.GPT2Config(vocab_size=vocab, n_embd=24, n_layer=2, n_head=3, n_inner=37, n_positions=64,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=2)
    randomized(transformers.GPT2LMHeadModel, config, 3).save_pretrained(root / "gpt2")
    out["gpt2"] = root / "gpt2"
    # BART with T5-style task_specific_params
    vocab = save_tokenizer(root / "bart", wrap=True, pad_token="<pad>")
    config = transformers.BartConfig(
        vocab_size=vocab, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=24, max_position_embeddings=64, dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, bos_token_id=0, pad_token_id=1, eos_token_id=2,
        decoder_start_token_id=2, forced_eos_token_id=None,
        task_specific_params={"summarization": {"prefix": "summarize: ", "num_beams": 2},
                              "translation_en_to_fr": {"prefix": "translate English to French: "}})
    randomized(transformers.BartForConditionalGeneration, config, 4).save_pretrained(root / "bart")
    out["bart"] = root / "bart"
    # ViT image classifier
    labels = ["cat", "dog", "car", "tree"]
    config = transformers.ViTConfig(image_size=16, patch_size=4, hidden_size=12, num_hidden_layers=2,
                                    num_attention_heads=3, intermediate_size=20, id2label=dict(enumerate(labels)),
                                    label2id={n: i for i, n in enumerate(labels)})
    parity.build_eager(transformers.ViTForImageClassification, config, 5).save_pretrained(root / "vit")
    transformers.ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(root / "vit")
    out["vit"] = root / "vit"
    # CLIP
    vocab = save_tokenizer(root / "clip", wrap=True, pad_token="<pad>")
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=vocab, hidden_size=12, intermediate_size=17, num_hidden_layers=2,
                         num_attention_heads=3, max_position_embeddings=32, eos_token_id=2, pad_token_id=1,
                         bos_token_id=0),
        vision_config=dict(hidden_size=15, intermediate_size=23, num_hidden_layers=2, num_attention_heads=5,
                           image_size=16, patch_size=4), projection_dim=8)
    parity.build_eager(transformers.CLIPModel, config, 6).save_pretrained(root / "clip")
    transformers.CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
                                    ).save_pretrained(root / "clip")
    out["clip"] = root / "clip"
    return out


class Diff:
    def __init__(self):
        self.worst = 0.0

    def check(self, ours, theirs, where="out"):
        assert type(ours) is type(theirs), f"{where}: type {type(ours).__name__} vs {type(theirs).__name__}"
        if isinstance(ours, dict):
            assert list(ours) == list(theirs), f"{where}: keys {list(ours)} vs {list(theirs)}"
            for key in ours:
                self.check(ours[key], theirs[key], f"{where}[{key!r}]")
        elif isinstance(ours, list):
            assert len(ours) == len(theirs), f"{where}: length {len(ours)} vs {len(theirs)}"
            for i, (a, b) in enumerate(zip(ours, theirs)):
                self.check(a, b, f"{where}[{i}]")
        elif isinstance(ours, float):
            diff = abs(ours - theirs)
            self.worst = max(self.worst, diff)
            assert diff <= parity.TOL, f"{where}: {ours} vs {theirs}"
        else:
            assert ours == theirs, f"{where}: {ours!r} vs {theirs!r}"


# -- text-generation -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generators(folders):
    return (pipeline("text-generation", model=folders["gpt2"], batch_size=2),
            transformers.pipeline("text-generation", model=str(folders["gpt2"])))


def test_text_generation_matches_transformers(generators, record_property):
    ours, theirs = generators
    diff = Diff()
    greedy = {"max_new_tokens": 5, "do_sample": False}          # one option set: few compiles
    calls = [
        (PROMPTS[0], greedy),
        (PROMPTS, greedy),                                              # batches of 2, left padding
        (PROMPTS[2], {**greedy, "return_full_text": False}),
        (PROMPTS[0], {**greedy, "return_tensors": True}),
        (CHAT, greedy),
        ([CHAT, CHAT + [{"role": "assistant", "content": "hi"}]], greedy),   # continue_final_message
        (PROMPTS[1], {**greedy, "num_beams": 3, "num_return_sequences": 2}),
    ]
    for inputs, kwargs in calls:
        got = ours(inputs, **kwargs)
        want = theirs(inputs, **kwargs)
        diff.check(got, want, f"text-generation {kwargs}")
    assert diff.worst == 0.0
    # sampling: right structure, prompt kept, reproducible from a seed
    a = ours(PROMPTS[0], max_new_tokens=5, do_sample=True, seed=1)
    assert a == ours(PROMPTS[0], max_new_tokens=5, do_sample=True, seed=1)
    assert len(a) == 1 and a[0]["generated_text"].startswith(PROMPTS[0])
    record_property("compiles: text-generation", ours.compile_count)


def test_text_generation_without_pad_token_pads_with_eos(folders, generators):
    tokenizer = __import__("core").AutoTokenizer.from_pretrained(folders["gpt2"])
    tokenizer.pad_token = None
    assert tokenizer.pad_token_id is None
    nopad = pipeline("text-generation", model=folders["gpt2"], tokenizer=tokenizer, batch_size=4)
    one_by_one = generators[1](PROMPTS[:2], max_new_tokens=5, do_sample=False)
    assert nopad(PROMPTS[:2], max_new_tokens=5, do_sample=False) == one_by_one


# -- seq2seq: against the reference model's generate ----------------------------------------------------
def reference_seq2seq(folder, texts, prefix="", key="generated_text", **kwargs):
    model = transformers.BartForConditionalGeneration.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    out = []
    for text in texts:
        enc = tokenizer(prefix + text, return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(**enc, **kwargs)
        out.append([{key: tokenizer.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=False)}
                    for row in ids.tolist()])
    return out


def test_seq2seq_pipelines_match_reference_generate(folders):
    folder = folders["bart"]
    t2t = pipeline("text2text-generation", model=folder, batch_size=2)
    want = reference_seq2seq(folder, PROMPTS, max_new_tokens=6)
    assert t2t(PROMPTS, max_new_tokens=6) == [w[0] for w in want]
    assert t2t(PROMPTS[0], max_new_tokens=6) == want[0]
    shared = dict(model=t2t.model, tokenizer=t2t.tokenizer)          # one loaded model: compiles shared
    # summarization: the task's prefix and num_beams from task_specific_params
    summarize = pipeline("summarization", batch_size=4, **shared)
    want = reference_seq2seq(folder, PROMPTS, prefix="summarize: ", key="summary_text", max_new_tokens=6, num_beams=2)
    assert summarize(PROMPTS, max_new_tokens=6) == [w[0] for w in want]
    # translation_en_to_fr: T5's prefix; plain "translation": none
    want = reference_seq2seq(folder, PROMPTS[:2], prefix="translate English to French: ", key="translation_text",
                             max_new_tokens=6)
    assert pipeline("translation_en_to_fr", batch_size=2, **shared)(PROMPTS[:2], max_new_tokens=6) == [w[0] for w in want]
    want = reference_seq2seq(folder, PROMPTS[:1], key="translation_text", max_new_tokens=6)
    assert pipeline("translation", **shared)(PROMPTS[0], max_new_tokens=6) == want[0]


# -- images -----------------------------------------------------------------------------------------------
def images(tmp_path):
    rng = np.random.default_rng(0)
    pil = Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    gray = Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8))
    array = rng.integers(0, 256, (18, 18, 3), dtype=np.uint8)
    path = tmp_path / "image.png"
    Image.fromarray(rng.integers(0, 256, (30, 17, 3), dtype=np.uint8)).save(path)
    return pil, gray, array, str(path)


def test_image_classification_matches_transformers(folders, tmp_path, record_property):
    ours = pipeline("image-classification", model=folders["vit"], batch_size=2)
    theirs = transformers.pipeline("image-classification", model=str(folders["vit"]))
    pil, gray, array, path = images(tmp_path)
    diff = Diff()
    for inputs, kwargs in [(pil, {}), ([pil, gray, array, path], {}), (path, {"top_k": 2}),
                           ([pil, array], {"function_to_apply": "sigmoid", "top_k": 10}),
                           (gray, {"function_to_apply": "none", "top_k": 1})]:
        diff.check(ours(inputs, **kwargs), theirs(inputs, **kwargs), f"image-classification {kwargs}")
    record_property("parity:pipeline image-classification vs transformers", diff.worst)
    assert ours.compile_count <= 2


def test_zero_shot_image_classification_matches_transformers(folders, tmp_path, record_property):
    ours = pipeline("zero-shot-image-classification", model=folders["clip"])
    theirs = transformers.pipeline("zero-shot-image-classification", model=str(folders["clip"]))
    pil, gray, array, path = images(tmp_path)
    diff = Diff()
    labels = ["cat", "dog", "car"]
    for inputs, kwargs in [(pil, {"candidate_labels": labels}), ([pil, path], {"candidate_labels": labels[::-1]}),
                           (gray, {"candidate_labels": labels, "hypothesis_template": "a photo of a {}"})]:
        diff.check(ours(inputs, **kwargs), theirs(inputs, **kwargs), f"zero-shot-image {kwargs}")
    record_property("parity:pipeline zero-shot-image-classification vs transformers", diff.worst)


# -- errors -----------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(folders, generators, tmp_path):
    ours = generators[0]
    with pytest.raises(PipelineError, match="empty string"):
        ours("")
    with pytest.raises(PipelineError, match=r"inputs\[1\] is an empty string"):
        ours(["a", "  "])
    with pytest.raises(PipelineError, match="empty list"):
        ours([])
    with pytest.raises(PipelineError, match="'role' and 'content'"):
        ours([{"role": "user"}])
    with pytest.raises(PipelineError, match="seq2seq-lm"):
        pipeline("summarization", model=folders["gpt2"])
    with pytest.raises(PipelineError, match="causal-lm"):
        pipeline("text-generation", model=folders["vit"])
    with pytest.raises(PipelineError, match="image-classification"):
        pipeline("image-classification", model=folders["gpt2"])
    with pytest.raises(PipelineError, match="CLIP-style"):
        pipeline("zero-shot-image-classification", model=folders["vit"])
    with pytest.raises(PipelineError, match="empty string"):
        pipeline("text2text-generation", model=folders["bart"])("")
    classify = pipeline("image-classification", model=folders["vit"])
    with pytest.raises(PipelineError, match="no image file"):
        classify(str(tmp_path / "missing.png"))
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(PipelineError, match="cannot read"):
        classify(str(bad))
    with pytest.raises(PipelineError, match="candidate_labels"):
        pipeline("zero-shot-image-classification", model=folders["clip"])(str(bad))
