"""Pipelines on the torch port (`ports.torch.pipeline`) against Rosetta's JAX pipelines (`core.pipeline`) on
the same folders (the tiny random folders of tests/test_pipelines*.py) and inputs: identical labels, spans,
texts and tokens, scores within 1e-5; identical generated texts (greedy and beam); bad inputs raise the
same error type and message. The torch path runs without importing JAX (checked in a subprocess).
"""
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from core import pipeline as jax_pipeline
from core.pipelines import PipelineError
from ports.torch import AutoModelForCausalLM, AutoModelForMaskedLM
from ports.torch import pipeline as torch_pipeline
from ports.torch.pipelines import TorchModel
from tests import parity
from tests.test_pipelines import CONTEXT, MASKED, NER_LABELS, NLI_LABELS, TEXTS
from tests.test_pipelines import folders as text_folders  # noqa: F401  (a fixture)
from tests.test_pipelines_audio import RATE, _folders as audio_folders, tones, waves
from tests.test_pipelines_generation import CHAT, PROMPTS, images
from tests.test_pipelines_generation import folders as gen_folders  # noqa: F401  (a fixture)


class Diff:
    """Same structure, keys, types and non-float values; floats (python or numpy) within 1e-5."""

    def __init__(self):
        self.worst = 0.0

    def check(self, a, b, where="out"):
        assert type(a) is type(b), f"{where}: type {type(a).__name__} vs {type(b).__name__}"
        if isinstance(a, dict):
            assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
            for key in a:
                self.check(a[key], b[key], f"{where}[{key!r}]")
        elif isinstance(a, (list, tuple)):
            assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
            for i, (x, y) in enumerate(zip(a, b)):
                self.check(x, y, f"{where}[{i}]")
        elif isinstance(a, (float, np.floating)):
            diff = abs(float(a) - float(b))
            self.worst = max(self.worst, diff)
            assert diff <= parity.TOL, f"{where}: {a} vs {b}"
        else:
            assert a == b, f"{where}: {a!r} vs {b!r}"


WORST: dict = {}


def both(task, folder, **kwargs):
    return jax_pipeline(task, model=folder, **kwargs), torch_pipeline(task, model=folder, **kwargs)


def compare(task, pipes, calls, record):
    diff = Diff()
    for args, kwargs in calls:
        diff.check(pipes[1](*args, **kwargs), pipes[0](*args, **kwargs), f"{task} {kwargs}")
    WORST[task] = max(WORST.get(task, 0.0), diff.worst)
    record(f"parity:torch pipeline {task} vs JAX pipeline", diff.worst)
    return diff.worst


def same_error(calls):
    """Each call raises the same exception type and message in both pipelines."""
    for jax_call, torch_call in calls:
        with pytest.raises(Exception) as want:
            jax_call()
        with pytest.raises(Exception) as got:
            torch_call()
        assert type(got.value) is type(want.value) and str(got.value) == str(want.value), (got.value, want.value)


# -- encoder tasks ---------------------------------------------------------------------------------------------
# Inputs come in whole batches of 4 (one padded shape per pipeline: one JAX compilation each).
@pytest.fixture(scope="module")
def text_pipes(text_folders):
    kw = dict(min_length_bucket=32, batch_size=4)
    return {task: both(task, text_folders[name], **kw) for task, name in [
        ("feature-extraction", "mlm"), ("fill-mask", "mlm"), ("text-classification", "nli"),
        ("token-classification", "ner"), ("zero-shot-classification", "nli")]}


def test_text_tasks_match_jax(text_folders, text_pipes, record_property):
    features = text_pipes["feature-extraction"]          # the folder has no pooler: loaded without one
    compare("feature-extraction", features, [((TEXTS[:4],), {})], record_property)
    assert isinstance(features[1].model, TorchModel) and features[1].model.module.add_pooling_layer is False
    fill = text_pipes["fill-mask"]
    compare("fill-mask", fill, [((MASKED[:4],), {"top_k": 3}),
                                ((MASKED[:4],), {"targets": ["paris", "city", "zzzq"]})], record_property)
    classify = text_pipes["text-classification"]
    pairs = [{"text": a, "text_pair": b} for a, b in zip(TEXTS[:4], TEXTS[4:])]
    compare("text-classification", classify,
            [((TEXTS[:4],), {}), ((TEXTS[4:],), {"top_k": None}), ((pairs,), {}),
             ((TEXTS[:4],), {"function_to_apply": "sigmoid", "top_k": 2})], record_property)
    compare("text-classification", both("text-classification", text_folders["one"], min_length_bucket=32,
                                        batch_size=4), [((TEXTS[4:],), {})], record_property)
    ner = text_pipes["token-classification"]
    compare("token-classification", ner, [((TEXTS[:4],), {}), ((TEXTS[4:],), {"aggregation_strategy": "simple"}),
                                          ((TEXTS[:4],), {"aggregation_strategy": "max", "ignore_labels": []})],
            record_property)
    zero = text_pipes["zero-shot-classification"]
    compare("zero-shot-classification", zero,
            [((TEXTS[0], ["city", "fruit", "animal", "sport"]), {}),
             ((TEXTS[6],), {"candidate_labels": "a, b, c, d", "multi_label": True})], record_property)
    qa = both("question-answering", text_folders["qa"], batch_size=16, min_length_bucket=32)
    questions = ["Where is the company based?", "Who founded Hugging Face in 2016?"]
    compare("question-answering", qa, [((), dict(question=questions, context=CONTEXT, max_seq_len=32, doc_stride=8,
                                                 top_k=2, handle_impossible_answer=True))], record_property)
    # the same padded shapes: torch counts what JAX compiles
    for pair in (*text_pipes.values(), qa):
        assert pair[1].compile_count == pair[0].compile_count >= 1


def test_loaded_torch_module_and_errors(text_folders, text_pipes):
    fill = text_pipes["fill-mask"]
    module = AutoModelForMaskedLM.from_pretrained(text_folders["mlm"])
    loaded = torch_pipeline("fill-mask", model=module, tokenizer=text_folders["mlm"], min_length_bucket=32)
    assert loaded.model.module is module and loaded(MASKED[0]) == fill[1](MASKED[0])
    assert torch_pipeline("fill-mask", model=loaded.model, tokenizer=loaded.tokenizer).model is loaded.model
    with pytest.raises(PipelineError, match="a loaded model needs tokenizer="):
        torch_pipeline("fill-mask", model=module)
    with pytest.raises(PipelineError, match="needs a model with the 'sequence-classification' head.*"
                                            "ports.torch.AutoModelForSequenceClassification"):
        torch_pipeline("text-classification", model=module, tokenizer=text_folders["mlm"])
    with pytest.raises(TypeError, match="torch port model"):
        torch_pipeline("fill-mask", model=fill[0].model)
    classify, ner = text_pipes["text-classification"], text_pipes["token-classification"]
    zero = text_pipes["zero-shot-classification"]
    qa = both("question-answering", text_folders["qa"])
    calls = []
    for args, kwargs, pairs in [
        ((["a [MASK]", "no mask here"],), {}, fill), ((["a [MASK]", ""],), {}, fill), (([3],), {}, fill),
        (({"text": "a [MASK]"},), {}, fill), (([],), {}, fill), (("a [MASK]",), {"top_k": 0}, fill),
        (("a",), {"function_to_apply": "relu"}, classify), (([["a", "b"]],), {}, classify),
        (({"txt": "a"},), {}, classify), (("word " * 600,), {}, classify),
        (("a",), {"aggregation_strategy": "longest"}, ner),
        (("a text",), {}, zero), (("a text",), {"candidate_labels": ["x"], "hypothesis_template": "No slot."}, zero),
        (({"question": "who?"},), {}, qa), ((), {"question": "who?", "context": ""}, qa),
        ((), {"question": "who?", "context": CONTEXT, "max_seq_len": 16, "doc_stride": 20}, qa),
    ]:
        calls.append(tuple(lambda p=p, a=args, k=kwargs: p(*a, **k) for p in pairs))
    same_error(calls)
    same_error([(lambda a=a, f=f: jax_pipeline(a, model=text_folders[f]),
                 lambda a=a, f=f: torch_pipeline(a, model=text_folders[f]))
                for a, f in [("fill-mask", "nli"), ("question-answering", "mlm"), ("speech-to-text", "mlm"),
                             ("summarization", "mlm")]])
    assert classify[1]("word " * 600, truncation=True)[0]["label"] in NLI_LABELS
    assert {e["entity"] for e in ner[1](TEXTS[0])} <= set(NER_LABELS)


# -- generation ------------------------------------------------------------------------------------------------
def test_text_generation_matches_jax(gen_folders, record_property):
    folder = gen_folders["gpt2"]
    pipes = both("text-generation", folder, batch_size=2, min_length_bucket=16)     # greedy: one shape
    greedy = dict(max_new_tokens=5, do_sample=False)
    compare("text-generation", pipes,
            [(([*PROMPTS, CHAT, PROMPTS[0]],), greedy), ((PROMPTS[:2],), {**greedy, "return_full_text": False}),
             ((PROMPTS[2:],), {**greedy, "return_tensors": True}),
             ((PROMPTS[:2],), {**greedy, "num_beams": 2, "num_return_sequences": 2})], record_property)
    sampled = pipes[1](PROMPTS[:2], max_new_tokens=4, do_sample=True, seed=3)
    assert sampled == pipes[1](PROMPTS[:2], max_new_tokens=4, do_sample=True, seed=3)
    loaded = torch_pipeline("text-generation", model=AutoModelForCausalLM.from_pretrained(folder), tokenizer=folder,
                            batch_size=2)
    assert loaded(PROMPTS[:2], **greedy) == pipes[0](PROMPTS[:2], **greedy)
    same_error([tuple(lambda p=p, a=args, k=kwargs: p(*a, **k) for p in pipes) for args, kwargs in [
        (("",), {}), ((["a", "  "],), {}), (([],), {}), (([{"role": "user"}],), {}),
        (("a " * 70,), {"max_new_tokens": 5}),
        (("a",), {"num_beams": 2, "do_sample": False, "num_return_sequences": 3})]])
    with pytest.raises(PipelineError, match="seed="):
        pipes[1]("a", max_new_tokens=2, prng_key=object())


def test_seq2seq_pipelines_match_jax(gen_folders, record_property):
    folder = gen_folders["bart"]
    t2t = both("text2text-generation", folder, batch_size=2, min_length_bucket=16)
    compare("text2text-generation", t2t, [((PROMPTS,), {"max_new_tokens": 6}),
                                          ((PROMPTS[:2],), {"max_new_tokens": 6, "return_tensors": True})],
            record_property)
    # one loaded model (shared JAX compilations): summarization's num_beams=2 and translation's T5-style prefix
    summarize, translate = ([make(task, model=p.model, tokenizer=p.tokenizer, batch_size=2, min_length_bucket=16)
                             for make, p in zip((jax_pipeline, torch_pipeline), t2t)]
                            for task in ("summarization", "translation_en_to_fr"))
    compare("summarization", summarize, [((PROMPTS[:2],), {"max_new_tokens": 6})], record_property)
    compare("translation", translate, [((PROMPTS[:2],), {"max_new_tokens": 6})], record_property)
    same_error([tuple(lambda p=p, a=args: p(*a) for p in t2t) for args in [("",), ([],), (3,)]]
               + [(lambda: jax_pipeline("summarization", model=gen_folders["gpt2"]),
                   lambda: torch_pipeline("summarization", model=gen_folders["gpt2"]))])


# -- images and audio -------------------------------------------------------------------------------------------
def test_image_pipelines_match_jax(gen_folders, tmp_path, record_property):
    pil, gray, array, path = images(tmp_path)
    classify = both("image-classification", gen_folders["vit"], batch_size=2)
    compare("image-classification", classify,
            [(([pil, gray, array, path],), {}), (([path, gray],), {"top_k": 2}),
             (([pil, array],), {"function_to_apply": "sigmoid", "top_k": 10})], record_property)
    assert classify[1].compile_count == classify[0].compile_count
    zero = both("zero-shot-image-classification", gen_folders["clip"])
    labels = ["cat", "dog", "car"]
    compare("zero-shot-image-classification", zero,
            [((pil,), {"candidate_labels": labels}), (([gray, path],), {"candidate_labels": labels[::-1],
                                                                         "hypothesis_template": "a photo of a {}"})],
            record_property)
    same_error([tuple(lambda p=p: p(str(tmp_path / "missing.png")) for p in classify),
                tuple(lambda p=p: p(pil) for p in zero),
                (lambda: jax_pipeline("zero-shot-image-classification", model=gen_folders["vit"]),
                 lambda: torch_pipeline("zero-shot-image-classification", model=gen_folders["vit"]))])


def test_audio_pipelines_match_jax(tmp_path_factory, record_property):
    ctc, cls = audio_folders(str(tmp_path_factory.mktemp("torch_audio")))
    asr = both("automatic-speech-recognition", ctc, batch_size=4)
    compare("automatic-speech-recognition", asr,
            [(([{"raw": waves()[1], "sampling_rate": RATE}, *waves()[1:]],), {}),
             ((waves(1, (2800,))[0],), {"chunk_length_s": 0.06, "stride_length_s": 0.01})],    # 4 chunks: one shape
            record_property)
    assert asr[1].compile_count == asr[0].compile_count
    classify = both("audio-classification", cls, batch_size=2)
    compare("audio-classification", classify, [((tones(),), {}), ((tones()[0],), {"top_k": 2,
                                                                                 "function_to_apply": "sigmoid"})],
            record_property)
    same_error([tuple(lambda p=p, a=args: p(*a) for p in asr) for args in [
        (np.zeros(0, np.float32),), ([],), ({"raw": waves()[0], "sampling_rate": 8000},), (np.ones(8, np.float32),),
        (12,)]] + [tuple(lambda p=p: p(np.zeros((2, 300), np.float32)) for p in classify)])


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory):
    """tests/test_pipelines_whisper.py's tiny random Whisper folder (30 s window, tokenizer, generation config)."""
    from tests.test_pipelines_whisper import _folder
    return _folder(str(tmp_path_factory.mktemp("torch_whisper")))


def test_whisper_asr_matches_jax(whisper_folder, record_property):
    """Whisper speech recognition on the torch port (the port's Whisper generate through `TorchModel`): texts
    identical to the JAX pipeline for a clip, a batch (torch batch_size=2: rows of 2 and 1; JAX one row at a
    time, one compiled loop) and long audio in 30 s chunks."""
    from tests.test_pipelines_whisper import CLIPS, tone
    jax_asr = jax_pipeline("automatic-speech-recognition", model=whisper_folder)
    torch_asr = torch_pipeline("automatic-speech-recognition", model=whisper_folder, batch_size=2)
    assert isinstance(torch_asr.model, TorchModel)
    long = np.concatenate([tone(f, 7.0, a) for f, a in ((220, .5), (3000, .8), (1000, .1), (500, .3), (4000, .5),
                                                        (300, .2))])
    options = {"num_beams": 1, "max_new_tokens": 8}
    compare("automatic-speech-recognition (whisper)", (jax_asr, torch_asr),
            [((CLIPS[0],), options), ((CLIPS,), options), ((long,), {**options, "chunk_length_s": 30})],
            record_property)
    assert len({r["text"] for r in torch_asr(CLIPS, **options)}) > 1
    assert jax_asr.compile_count == 1 and torch_asr.compile_count == 2


# -- no JAX ------------------------------------------------------------------------------------------------------
def test_torch_path_imports_no_jax(text_folders, gen_folders, whisper_folder, tmp_path_factory):
    ctc, _ = audio_folders(str(tmp_path_factory.mktemp("torch_audio_nojax")))
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from ports.torch import pipeline
        assert 'jax' not in sys.modules
        print(pipeline("fill-mask", model={str(text_folders["mlm"])!r})("Paris is the [MASK] of France.", top_k=1))
        print(pipeline("text-generation", model={str(gen_folders["gpt2"])!r})("hello", max_new_tokens=3,
                                                                               do_sample=False))
        print(pipeline("summarization", model={str(gen_folders["bart"])!r})("hello", max_new_tokens=3))
        print(pipeline("image-classification", model={str(gen_folders["vit"])!r})(np.zeros((16, 16, 3), np.uint8)))
        print(pipeline("automatic-speech-recognition", model={str(ctc)!r})(np.ones(800, np.float32)))
        print(pipeline("automatic-speech-recognition", model={str(whisper_folder)!r})(np.ones(8000, np.float32),
                                                                                    num_beams=1, max_new_tokens=3))
        jax = [m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'flax', 'jaxlib'))]
        assert not jax, jax
        print("NO-JAX-OK")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=pathlib.Path(__file__).parent.parent)
    assert done.returncode == 0 and "NO-JAX-OK" in done.stdout, done.stderr[-3000:]
