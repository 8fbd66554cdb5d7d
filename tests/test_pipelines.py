"""Pipelines: the same folders through Rosetta's and transformers' pipelines give identical labels,
spans and tokens, and scores within 1e-5. Question answering (removed from transformers v5) is
checked against spans computed directly from the reference model's logits.

The models are tiny random-weight BERTs (parity.build_eager) with the real MiniLM tokenizer files
next to them (vocab_size 30522 = the tokenizer's); feature-extraction also runs the real MiniLM.
"""
import json
import shutil

import numpy as np
import pytest
import torch
import transformers

from core import pipeline
from core.data import minilm_folder
from core.pipelines import PipelineError
from tests import parity

TINY = dict(vocab_size=30522, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
            max_position_embeddings=512, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
            layer_norm_eps=1e-7, hidden_act="gelu_new")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "MISC"]
NLI_LABELS = ["contradiction", "neutral", "entailment"]

# Punctuation, accents, an emoji ([UNK]), numbers, sub-words, casing, lengths from 1 to ~30 tokens.
TEXTS = [
    "Hugging Face Inc. is a company based in New York City.",
    "Its headquarters are in DUMBO, therefore very close to the Manhattan Bridge!",
    "unbelievably",
    "Zoë visited Zürich in 2019 🙂 and met Jean-Baptiste.",
    "The quick brown fox jumps over the lazy dog; antidisestablishmentarianism is long.",
    "Tokyo",
    "I'd like 3.5 kg of apples, please — thanks!",
    "Sarah and I live in London, Paris and Berlin, but not in the rain.",
]
MASKED = [
    "Paris is the [MASK] of France.",
    "The [MASK] jumped over the [MASK] dog.",
    "[MASK]",
    "Zoë bought 3 [MASK] in Zürich 🙂.",
    "I think unbelievably [MASK] things happen.",
]
CONTEXT = ("Hugging Face Inc. is a company based in New York City. Its headquarters are in DUMBO, therefore very "
           "close to the Manhattan Bridge. The company was founded in 2016 by Clément Delangue, Julien Chaumond "
           "and Thomas Wolf, and it develops tools for building applications using machine learning.")


def build(hf_class, folder, seed=0, **overrides):
    config = transformers.BertConfig(**{**TINY, **overrides})
    parity.build_eager(hf_class, config, seed).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_folder() / name, folder)
    return folder


def labelled(labels, **kw):
    return dict(id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}, **kw)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    return {
        "mlm": build(transformers.BertForMaskedLM, root / "mlm"),
        "ner": build(transformers.BertForTokenClassification, root / "ner", seed=1, **labelled(NER_LABELS)),
        "nli": build(transformers.BertForSequenceClassification, root / "nli", seed=2, **labelled(NLI_LABELS)),
        "one": build(transformers.BertForSequenceClassification, root / "one", seed=3, num_labels=1),
        "qa": build(transformers.BertForQuestionAnswering, root / "qa", seed=5),
    }


@pytest.fixture(scope="module")
def ours(folders):
    """Rosetta pipelines, one per (task, folder), shared by the tests so each shape compiles once.
    Every test text fits in 32 tokens: one length bucket."""
    cache = {}

    def get(task, name, **kwargs):
        if (task, name) not in cache:
            cache[task, name] = pipeline(task, model=folders[name], min_length_bucket=32, **kwargs)
        return cache[task, name]
    return get


@pytest.fixture(scope="module")
def theirs(folders):
    cache = {}

    def get(task, name):
        if (task, name) not in cache:
            cache[task, name] = transformers.pipeline(task, model=str(folders[name]))
        return cache[task, name]
    return get


class Diff:
    """Walks two pipeline outputs: same structure, keys (in order), types and non-score values;
    floats within tol. Keeps the largest float difference."""

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
        elif isinstance(ours, (float, np.floating)):
            diff = abs(float(ours) - float(theirs))
            self.worst = max(self.worst, diff)
            assert diff <= parity.TOL, f"{where}: {ours} vs {theirs}"
        else:
            assert ours == theirs, f"{where}: {ours!r} vs {theirs!r}"


def compare(task, ours_pipe, hf_pipe, record, calls):
    diff = Diff()
    for args, kwargs in calls:
        ours = ours_pipe(*args, **kwargs)
        theirs = hf_pipe(*args, **kwargs)
        diff.check(ours, theirs, f"{task}{kwargs}")
    record(f"parity:pipeline {task} vs transformers", diff.worst)
    return diff.worst


def test_feature_extraction_real_minilm_and_tiny(ours, theirs, record_property):
    folder = minilm_folder()
    minilm = pipeline("feature-extraction", model=folder, min_length_bucket=32)
    a = minilm(TEXTS)
    b = transformers.pipeline("feature-extraction", model=str(folder))(TEXTS)
    assert [np.shape(x) for x in a] == [np.shape(x) for x in b]
    worst = max(parity.max_abs(x, y) for x, y in zip(a, b))
    record_property("parity:pipeline feature-extraction (MiniLM) vs transformers", worst)
    assert worst <= parity.TOL
    single = minilm(TEXTS[0], return_tensors=True)
    assert single.shape == (1, len(minilm.tokenizer(TEXTS[0])["input_ids"]), 384) and single.dtype == np.float32
    assert isinstance(minilm(TEXTS[2])[0][0][0], float)
    # batch_size > 1: rows come back padded to their batch's longest input, as in transformers. (On
    # random weights the padded positions are well-conditioned, unlike MiniLM's; see test_minilm.)
    # An MLM folder (no pooler weights) serves feature-extraction.
    tiny = ours("feature-extraction", "mlm")
    a, b = tiny(TEXTS, batch_size=3), theirs("feature-extraction", "mlm")(TEXTS, batch_size=3)
    assert [np.shape(x) for x in a] == [np.shape(x) for x in b]
    assert [np.shape(x)[1] for x in a[:3]] == [max(len(tiny.tokenizer(t)["input_ids"]) for t in TEXTS[:3])] * 3
    tiny_worst = max(parity.max_abs(x, y) for x, y in zip(a, b))
    record_property("parity:pipeline feature-extraction (tiny) vs transformers", tiny_worst)
    assert tiny_worst <= parity.TOL


def test_fill_mask(ours, theirs, record_property):
    compare("fill-mask", ours("fill-mask", "mlm"), theirs("fill-mask", "mlm"), record_property, [
        ((MASKED,), {"batch_size": 4}),
        ((MASKED[0],), {"top_k": 3}),
        ((MASKED[1:3],), {"top_k": 2}),
        ((MASKED[:1],), {}),                                   # a one-element list is unwrapped
        ((MASKED[0],), {"targets": ["capital", "city", "the"]}),
        ((MASKED[3],), {"targets": "apples", "top_k": 1}),      # not in the vocabulary: its first token
    ])


def test_text_classification(ours, theirs, record_property):
    pairs = [{"text": TEXTS[0], "text_pair": TEXTS[1]}, {"text": TEXTS[2], "text_pair": TEXTS[5]}]
    calls = [
        ((TEXTS[0],), {}),
        ((TEXTS,), {"batch_size": 4}),
        ((TEXTS[3],), {"top_k": None}),
        ((TEXTS[:4],), {"top_k": 2}),
        ((TEXTS[:2],), {"top_k": 1}),
        ((pairs[0],), {}),
        ((pairs,), {"top_k": None}),
        ((TEXTS[4],), {"function_to_apply": "sigmoid", "top_k": None}),
        ((TEXTS[4],), {"function_to_apply": "none"}),
        ((TEXTS[4:6],), {"function_to_apply": "softmax"}),
    ]
    mine, reference = ours("text-classification", "nli"), theirs("text-classification", "nli")
    compare("text-classification", mine, reference, record_property, calls)      # default: softmax
    # the default function follows problem_type: sigmoid for multi-label, none for regression
    config, hf_problem = mine.model.config, reference.model.config.problem_type
    try:
        for problem in ("multi_label_classification", "regression"):
            mine.model.config, reference.model.config.problem_type = config.replace(problem_type=problem), problem
            compare("text-classification", mine, reference, record_property, calls[:4])
    finally:
        mine.model.config, reference.model.config.problem_type = config, hf_problem
    # one label: sigmoid by default
    compare("text-classification", ours("sentiment-analysis", "one"), theirs("text-classification", "one"),
            record_property, calls[:4])


def test_token_classification(ours, theirs, record_property):
    mine, reference = ours("ner", "ner", batch_size=4), theirs("token-classification", "ner")
    for strategy in ("none", "simple", "first", "average", "max"):
        compare("token-classification", mine, reference, record_property, [
            ((TEXTS,), {"aggregation_strategy": strategy}),
            ((TEXTS[3],), {"aggregation_strategy": strategy, "ignore_labels": []}),
            ((TEXTS[:3],), {"aggregation_strategy": strategy, "ignore_labels": ["O", "MISC"]}),
        ])


def test_zero_shot_classification(ours, theirs, record_property):
    mine = ours("zero-shot-classification", "nli", batch_size=4)
    reference = theirs("zero-shot-classification", "nli")
    assert mine.entailment_id == reference.entailment_id == 2
    labels = ["travel", "business", "cooking", "science fiction"]
    compare("zero-shot-classification", mine, reference, record_property, [
        ((TEXTS[0],), {"candidate_labels": labels}),
        ((TEXTS[:4],), {"candidate_labels": labels, "multi_label": True}),
        ((TEXTS[1],), {"candidate_labels": "sports, politics,  cooking"}),
        ((TEXTS[2:4],), {"candidate_labels": ["travel"]}),           # one label: entailment vs contradiction
        ((TEXTS[4],), {"candidate_labels": labels[:2], "hypothesis_template": "This text is about {}."}),
    ])


# -- question answering: against spans computed directly from the reference model's logits ----------------
def reference_answers(model, tokenizer, question, context, max_seq_len, doc_stride, top_k=1, max_answer_len=15,
                      handle_impossible_answer=False):
    """Every window: softmax of the start/end logits over the context tokens (plus CLS), candidates
    (i, j) in the context with i <= j < i + max_answer_len scored p_start[i] * p_end[j], the top_k per
    window widened to whole words (by the word ids) and merged by lower-cased text (scores add);
    null score = min over windows of p_start[CLS] * p_end[CLS]."""
    enc = tokenizer(question, context, truncation="only_second", max_length=max_seq_len, stride=doc_stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True)
    answers, null = [], 1e6
    for w in range(len(enc["input_ids"])):
        inputs = {k: torch.tensor([enc[k][w]]) for k in ("input_ids", "token_type_ids", "attention_mask")}
        with torch.no_grad():
            out = model(**inputs)
        seq, words, offsets = enc.sequence_ids(w), enc.word_ids(w), enc["offset_mapping"][w]
        allowed = [0] + [i for i, s in enumerate(seq) if s == 1]
        probs = []
        for logits in (out.start_logits[0].double().numpy(), out.end_logits[0].double().numpy()):
            e = np.exp(logits[allowed] - logits[allowed].max())
            p = np.zeros(len(logits))
            p[allowed] = e / e.sum()
            probs.append(p)
        null = min(null, probs[0][0] * probs[1][0])
        context_tokens = allowed[1:]
        spans = sorted(((probs[0][i] * probs[1][j], i, j) for i in context_tokens for j in context_tokens
                        if i <= j < i + max_answer_len), reverse=True)[:top_k]
        for score, i, j in spans:
            first = min(k for k in context_tokens if words[k] == words[i])
            last = max(k for k in context_tokens if words[k] == words[j])
            start, end = offsets[first][0], offsets[last][1]
            same = [a for a in answers if a["answer"].lower() == context[start:end].lower()]
            if same:
                same[0]["score"] += score
            else:
                answers.append({"score": score, "start": start, "end": end, "answer": context[start:end]})
    if handle_impossible_answer:
        answers.append({"score": null, "start": 0, "end": 0, "answer": ""})
    answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
    return answers[0] if len(answers) == 1 else answers


def test_question_answering_matches_spans_from_reference_logits(folders, record_property):
    ours = pipeline("question-answering", model=folders["qa"], batch_size=64, min_length_bucket=64)
    model = transformers.BertForQuestionAnswering.from_pretrained(folders["qa"]).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folders["qa"])
    questions = ["Where is the company based?", "Who founded Hugging Face in 2016?", "What?"]
    cases = [
        dict(max_seq_len=384, doc_stride=128),                 # the defaults: one window
        dict(max_seq_len=32, doc_stride=8),                    # several overlapping windows
        dict(max_seq_len=40, doc_stride=12, top_k=3, max_answer_len=4),
        dict(max_seq_len=32, doc_stride=8, top_k=2, handle_impossible_answer=True),
    ]
    diff = Diff()
    for case in cases:
        got = ours(question=questions, context=CONTEXT, **case)
        assert isinstance(got, list) and len(got) == len(questions)
        for question, answer in zip(questions, got):
            expected = reference_answers(model, tokenizer, question, CONTEXT, **case)
            expected = json.loads(json.dumps(expected, default=float))     # numpy → python floats
            diff.check(answer, expected, f"qa {question!r} {case}")
    # one example → one dict; the positional and dict forms agree with the keyword form
    one = ours({"question": questions[0], "context": CONTEXT})
    assert one == ours(question=questions[0], context=CONTEXT) == ours(questions[0], CONTEXT)
    assert set(one) == {"score", "start", "end", "answer"} and one["answer"] == CONTEXT[one["start"]:one["end"]]
    record_property("parity:pipeline question-answering vs reference spans", diff.worst)


# -- compilation --------------------------------------------------------------------------------------------
def test_bucketed_shapes_bound_recompiles(folders, theirs, record_property):
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]     # one token each
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 31, size=100)]
    classify = pipeline("text-classification", model=folders["nli"], batch_size=8)
    first = classify(texts)
    compiles = classify.compile_count
    # 13 batches of 12 distinct padded lengths, but only rows {8, 4 (the last 100 % 8)} x lengths {8, 16, 32}
    assert len({max(len(t.split()) for t in texts[i:i + 8]) for i in range(0, 100, 8)}) > 6
    assert 1 <= compiles <= 6
    assert classify._forward._cache_size() == compiles
    assert classify(texts) == first and classify.compile_count == compiles          # same call: no new compile
    more = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 31, size=100)]
    classify(more)
    assert classify.compile_count <= 6
    record_property("compiles: text-classification, 2x100 inputs (1-30 words), batch_size=8",
                    classify.compile_count)
    Diff().check(first[:5], theirs("text-classification", "nli")(texts[:5]))


# -- errors -----------------------------------------------------------------------------------------------------
def test_bad_inputs_and_unservable_tasks_raise_clear_errors(folders, ours):
    with pytest.raises(PipelineError, match=r"fill-mask needs the trained weights of a BertForMaskedLM head.*"
                                           r"BertForSequenceClassification"):
        pipeline("fill-mask", model=folders["nli"])
    with pytest.raises(PipelineError, match="BertForQuestionAnswering head"):
        pipeline("question-answering", model=folders["mlm"])
    with pytest.raises(KeyError, match="Unknown task 'speech-to-text'.*fill-mask"):
        pipeline("speech-to-text", model=folders["mlm"])
    with pytest.raises(PipelineError, match="seq2seq-lm"):
        pipeline("summarization", model=folders["mlm"])
    with pytest.raises(FileNotFoundError, match="not a directory.*do not download"):
        pipeline("fill-mask", model="bert-base-uncased")

    fill = ours("fill-mask", "mlm")
    # a loaded model: needs its tokenizer, and the task's head
    with pytest.raises(PipelineError, match="a loaded model needs tokenizer="):
        pipeline("fill-mask", model=fill.model)
    with pytest.raises(PipelineError, match="text-classification needs a model with the 'sequence-classification'"):
        pipeline("text-classification", model=fill.model, tokenizer=fill.tokenizer)
    assert pipeline("fill-mask", model=fill.model, tokenizer=folders["mlm"]).model is fill.model
    with pytest.raises(PipelineError, match=r"No mask_token \(\[MASK\]\) found on input 1"):
        fill(["a [MASK]", "no mask here"])
    with pytest.raises(PipelineError, match=r"inputs\[1\] is an empty string"):
        fill(["a [MASK]", ""])
    with pytest.raises(TypeError, match=r"inputs\[0\] must be a string, got int"):
        fill([3])
    with pytest.raises(TypeError, match="must be a string or a list of strings, got dict"):
        fill({"text": "a [MASK]"})
    with pytest.raises(PipelineError, match="empty list"):
        fill([])
    with pytest.raises(ValueError, match="top_k must be an int >= 1"):
        fill("a [MASK]", top_k=0)

    classify = ours("text-classification", "nli")
    with pytest.raises(ValueError, match="function_to_apply must be one of sigmoid, softmax, none"):
        classify("a", function_to_apply="relu")
    with pytest.raises(ValueError, match="send a dictionary"):
        classify([["a", "b"]])
    with pytest.raises(PipelineError, match="keys 'text' and optionally 'text_pair'"):
        classify({"txt": "a"})
    with pytest.raises(PipelineError, match="512 positions; pass truncation=True"):
        classify("word " * 600)
    assert classify("word " * 600, truncation=True)[0]["label"] in NLI_LABELS

    ner = ours("ner", "ner")
    with pytest.raises(ValueError, match="aggregation_strategy must be one of none, simple"):
        ner("a", aggregation_strategy="longest")
    zero_shot = ours("zero-shot-classification", "nli")
    with pytest.raises(PipelineError, match="candidate_labels"):
        zero_shot("a text")
    with pytest.raises(ValueError, match="was not able to be formatted"):
        zero_shot("a text", candidate_labels=["x"], hypothesis_template="No slot here.")
    qa = ours("question-answering", "qa")
    with pytest.raises(KeyError, match="question:..., context:"):
        qa({"question": "who?"})
    with pytest.raises(ValueError, match="`context` cannot be empty"):
        qa(question="who?", context="")
    with pytest.raises(ValueError, match="larger than `max_seq_len`"):
        qa(question="who?", context=CONTEXT, max_seq_len=16, doc_stride=20)
    with pytest.raises(PipelineError, match="question is probably too long"):
        qa(question="who " * 40 + "?", context=CONTEXT, max_seq_len=32, doc_stride=4)


def test_command_line_prints_json(folders):
    from experiments import pipeline as cli
    pair = json.dumps({"text": TEXTS[0], "text_pair": TEXTS[1]})
    result = cli.run("text-classification", str(folders["nli"]), [pair, TEXTS[2]], {"top_k": None}, batch_size=2)
    assert result["compile_count"] == 1 and len(result["outputs"]) == 2
    printed = json.loads(json.dumps(result, default=cli.to_json))
    assert sorted(e["label"] for e in printed["outputs"][0]) == sorted(NLI_LABELS)
    assert isinstance(printed["outputs"][0][0]["score"], float)
    assert json.loads(json.dumps(np.float32(0.5), default=cli.to_json)) == 0.5
    in_torch = cli.run("text-classification", str(folders["nli"]), [pair, TEXTS[2]], {"top_k": None}, batch_size=2,
                       framework="torch")
    assert in_torch["framework"] == "torch"
    assert [[e["label"] for e in row] for row in in_torch["outputs"]] == \
        [[e["label"] for e in row] for row in result["outputs"]]
