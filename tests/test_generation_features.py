"""Generation features against `transformers.generate`: no_repeat_ngram_size and
encoder_no_repeat_ngram_size (decoder-only and T5), stop strings on a byte-level BPE tokenizer
trained here (token boundaries splitting the string), and streamers (the streamed tokens are the
returned ones, in order; `TextStreamer` prints what transformers' prints) — in the jitted JAX loop
and in the host loop the ports use."""
import io
import json
import time

import numpy as np
import pytest
import tokenizers
import torch
import transformers
from transformers.generation import logits_process as hf

from core import AutoModelForCausalLM, AutoModelForSeq2SeqLM
from core.generation import GenerationConfig, host, processors, stopping
from core.generation import TextStreamer
from core.tokenization import AutoTokenizer
from tests import parity, test_t5

CORPUS = ["the quick brown fox jumps over the lazy dog", "stop! stopping is the hardest part of stopwatch work",
          "hello world, hello there; general kenobi", "über naïve café — déjà vu 12345 67890",
          "a b c d e f g h i j k l m n o p q r s t u v w x y z", "A. B. C. the end. THE END?"] * 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A byte-level BPE tokenizer (GPT-2 style) trained on CORPUS and a GPT-2 over its vocabulary,
    weights ~ N(0, 1) so argmax is far from ties."""
    folder = tmp_path_factory.mktemp("features") / "gpt2"
    folder.mkdir()
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "model_max_length": 64}))
    vocab = tok.get_vocab_size()
    config = transformers.GPT2Config(vocab_size=vocab, n_embd=24, n_layer=2, n_head=3, n_inner=37, n_positions=64,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
                                     pad_token_id=0)
    torch.manual_seed(3)
    reference = parity.randomize_(
        transformers.GPT2LMHeadModel._from_config(config, attn_implementation="eager").eval(), 3, std=1.0)
    reference.save_pretrained(folder)
    hf_tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"),
                                                        eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    return reference, AutoModelForCausalLM.from_pretrained(folder), hf_tokenizer, AutoTokenizer.from_pretrained(folder)


def prompts(tokenizer):
    """Two left-padded prompts."""
    rows = [tokenizer("the quick brown")["input_ids"], tokenizer("hello")["input_ids"]]
    width = max(map(len, rows))
    ids = np.array([[0] * (width - len(r)) + list(r) for r in rows])
    mask = np.array([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def reference_generate(reference, ids, mask, **kwargs):
    with torch.no_grad():
        return reference.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), **kwargs).numpy()


def host_generate(model, ids, mask, tokenizer=None, streamer=None, **kwargs):
    """The host loop (what the torch / TF ports run) over the JAX model's own forward."""
    def forward(tokens, slot_mask, positions, cache, index):
        out = model(input_ids=tokens, attention_mask=slot_mask, position_ids=positions, cache=cache,
                    cache_index=index, logits_to_keep=1)
        return np.asarray(out.logits[:, -1], np.float32), out.cache

    def reorder(cache, beam_idx):
        return tuple(np.take(np.asarray(c), beam_idx, axis=1) for c in cache)

    seed = kwargs.pop("seed", 0)
    config = model.generation_config.merged(None, **kwargs)
    return host.generate(forward, model.init_cache, reorder, config, ids, mask, model.config.vocab_size, 64, 64,
                         seed=seed, streamer=streamer, tokenizer=tokenizer)


# -- n-gram processors, directly against transformers' ---------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3])
def test_ngram_processors_match_transformers(n):
    rng = np.random.default_rng(n)
    scores = rng.normal(size=(4, 7)).astype(np.float32)
    seqs = rng.integers(0, 7, size=(4, 9))                 # small vocab: many repeated n-grams
    encoder = rng.integers(0, 7, size=(2, 6))
    for cur_len in (n - 1, n, 9):
        if cur_len == 0:
            continue
        want = hf.NoRepeatNGramLogitsProcessor(n)(torch.tensor(seqs[:, :cur_len]), torch.tensor(scores)).numpy()
        np.testing.assert_array_equal(np.asarray(processors.no_repeat_ngram(scores, seqs, cur_len, n)), want)
        request = host.Request(seqs, seqs, seqs, np.zeros(4, np.int32), 4, 9, 0, (), 0,
                               GenerationConfig().merged(None, no_repeat_ngram_size=n, encoder_no_repeat_ngram_size=n),
                               None, np.repeat(encoder, 2, axis=0))
        hf_encoder = hf.EncoderNoRepeatNGramLogitsProcessor(n, torch.tensor(encoder))
        want = hf_encoder(torch.tensor(seqs[:, :cur_len]), torch.tensor(want)).numpy()
        got = processors.encoder_no_repeat_ngram(processors.no_repeat_ngram(scores, seqs, cur_len, n),
                                                 np.repeat(encoder, 2, axis=0), seqs, cur_len, n)
        np.testing.assert_array_equal(np.asarray(got), want)
        np.testing.assert_array_equal(host.process(request, scores, seqs, cur_len, warp=False), want)


# -- no_repeat_ngram_size in generate --------------------------------------------------------------

NGRAM_CASES = {
    "greedy-2": dict(max_new_tokens=24, no_repeat_ngram_size=2),
    "greedy-3-encoder-2": dict(max_new_tokens=24, no_repeat_ngram_size=3, encoder_no_repeat_ngram_size=2),
    "beam-2": dict(max_new_tokens=16, no_repeat_ngram_size=2, num_beams=3, num_return_sequences=2),
}


@pytest.mark.parametrize("name", list(NGRAM_CASES))
def test_no_repeat_ngram_is_token_identical_to_transformers(setup, name):
    reference, ours, _, tokenizer = setup
    ids, mask = prompts(tokenizer)
    kwargs = dict(NGRAM_CASES[name], do_sample=False)
    expected = reference_generate(reference, ids, mask, **kwargs)
    got = ours.generate(ids, attention_mask=mask, **kwargs)
    np.testing.assert_array_equal(got, expected)
    if name != "greedy-3-encoder-2":       # the host loop (the ports') once per search
        np.testing.assert_array_equal(host_generate(ours, ids, mask, **kwargs), expected)
    if name == "greedy-2":       # the constraint bites: without it, greedy repeats a bigram
        free = reference_generate(reference, ids, mask, max_new_tokens=24, do_sample=False)
        assert (free != expected).any()
        for row in got:
            bigrams = list(zip(row[:-1].tolist(), row[1:].tolist()))
            assert len(bigrams) == len(set(bigrams)) or row[0] == 0     # (left padding repeats (0, 0))


def test_seq2seq_ngrams_and_streaming(tmp_path):
    """T5: no_repeat_ngram_size + encoder_no_repeat_ngram_size token-identical to transformers;
    the streamer gets the decoder start ids, then each step's token."""
    reference, folder = test_t5.build_reference("t5", "seq2seq-lm", tmp_path, seed=1, std=0.5, num_decoder_layers=2)
    ours = AutoModelForSeq2SeqLM.from_pretrained(folder)
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 12, size=(2, 8))        # few distinct ids: the encoder n-grams get hit
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    ids = np.where(mask == 1, ids, 0)
    kwargs = dict(max_new_tokens=20, no_repeat_ngram_size=2, encoder_no_repeat_ngram_size=2)
    expected = reference_generate(reference, ids, mask, do_sample=False, **kwargs)
    assert (expected != reference_generate(reference, ids, mask, do_sample=False, max_new_tokens=20)).any()
    np.testing.assert_array_equal(ours.generate(ids, attention_mask=mask, **kwargs), expected)
    recorder = Recorder()
    got = ours.generate(ids[:1], max_new_tokens=8, streamer=recorder)
    np.testing.assert_array_equal(recorder.calls[0], got[:, :1])
    np.testing.assert_array_equal(np.concatenate(recorder.calls[1:-1]), got[0, 1:])
    assert recorder.calls[-1] == "end"


# -- stop strings -----------------------------------------------------------------------------------

def test_stop_string_table_matches_transformers(setup):
    _, _, hf_tokenizer, tokenizer = setup
    from transformers.generation.stopping_criteria import StopStringCriteria
    for stops in (["stop"], ["o", "the end", "é"], "lazy dog"):
        want = StopStringCriteria(hf_tokenizer, stops)
        got = stopping.build_table(tokenizer, stops)
        np.testing.assert_array_equal(got.table, want.embedding_vec.numpy())
        assert (got.max_valid_positions, got.max_valid_end_lens, got.maximum_token_len) == (
            want.max_valid_positions, want.max_valid_end_lens, want.maximum_token_len)
        rng = np.random.default_rng(0)
        seqs = rng.integers(0, len(tokenizer), size=(64, 12))
        flipped = stopping.last_tokens_flipped(seqs, 12, got.maximum_token_len, got.table.shape[0] - 1)
        np.testing.assert_array_equal(stopping.check(np, got.table, got.target_lens, got.dims, flipped),
                                      want(torch.tensor(seqs), None).numpy())


def _stop_strings_for(tokenizer, generated_rows):
    """A stop string per row that ends inside one of its greedy tokens (the token boundary splits
    it: the token overhangs the string's end), cut from clean text (no partial UTF-8)."""
    stops = []
    for row in generated_rows:
        row = row.tolist()
        for k in range(5, len(row)):
            text = tokenizer.decode(row[:k + 1])
            last = tokenizer.decode(row[k:k + 1])
            candidate = text[-4:-1]
            if (len(last) >= 2 and "\ufffd" not in text[-6:] and candidate.strip()
                    and candidate not in tokenizer.decode(row[:k])):
                stops.append(candidate)
                break
    assert stops
    return stops


@pytest.mark.parametrize("beams", [1, 3], ids=["greedy", "beam"])
def test_stop_strings_are_token_identical_to_transformers(setup, beams):
    reference, ours, hf_tokenizer, tokenizer = setup
    ids, mask = prompts(tokenizer)
    base = dict(max_new_tokens=24, do_sample=False, num_beams=beams)
    free = reference_generate(reference, ids, mask, **base)
    stops = _stop_strings_for(tokenizer, free[:, ids.shape[1]:])
    expected = reference_generate(reference, ids, mask, stop_strings=stops, tokenizer=hf_tokenizer, **base)
    # the stop strings stopped rows early (their tail is padding, or the batch is shorter)
    assert expected.shape[1] < free.shape[1] or (expected != free[:, :expected.shape[1]]).any()
    got = ours.generate(ids, attention_mask=mask, stop_strings=stops, tokenizer=tokenizer, **base)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(host_generate(ours, ids, mask, tokenizer=tokenizer, stop_strings=stops, **base),
                                  expected)


def test_refusals(setup):
    _, ours, _, tokenizer = setup
    ids, mask = prompts(tokenizer)
    with pytest.raises(ValueError, match="must pass the model's tokenizer"):
        ours.generate(ids, attention_mask=mask, stop_strings=["x"])
    with pytest.raises(ValueError, match="cannot be used with beam search"):
        ours.generate(ids[:1], num_beams=2, streamer=Recorder())
    with pytest.raises(TypeError, match="put\\(token_ids\\) and end"):
        ours.generate(ids[:1], streamer=object())
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        ours.generate(ids, attention_mask=mask, no_repeat_ngram_size=-1)


# -- streaming --------------------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.calls = []

    def put(self, value):
        self.calls.append(np.asarray(value).copy())

    def end(self):
        self.calls.append("end")


@pytest.mark.parametrize("mode", ["greedy", "sampling"])
def test_streamed_tokens_are_the_returned_ones_in_order(setup, mode):
    reference, ours, hf_tokenizer, tokenizer = setup
    ids = np.array([tokenizer("the quick")["input_ids"]])
    kwargs = dict(max_new_tokens=15, do_sample=mode == "sampling", top_k=20, seed=4)
    runs = [lambda **kw: ours.generate(ids, **kw)]
    if mode == "greedy":      # the host loop (the ports'): greedy is enough, it calls the streamer the same way
        runs.append(lambda **kw: host_generate(ours, ids, np.ones_like(ids), **kw))
    for run in runs:
        recorder = Recorder()
        got = run(streamer=recorder, **kwargs)
        assert recorder.calls[-1] == "end" and all(isinstance(c, np.ndarray) for c in recorder.calls[:-1])
        np.testing.assert_array_equal(recorder.calls[0], ids)
        steps = recorder.calls[1:-1]
        assert all(step.shape == (1,) for step in steps)
        np.testing.assert_array_equal(np.concatenate(steps), got[0, ids.shape[1]:])
    np.testing.assert_array_equal(got, runs[0](**kwargs))      # streaming changes nothing
    if mode == "greedy":
        # transformers' TextStreamer and ours print the same text, given the same tokens.
        hf_out, our_out = io.StringIO(), io.StringIO()
        hf_streamer = transformers.TextStreamer(hf_tokenizer, skip_prompt=True)
        hf_streamer.on_finalized_text = lambda text, stream_end=False: print(
            text, end="" if not stream_end else None, file=hf_out)
        expected = reference_generate(reference, ids, np.ones_like(ids), streamer=hf_streamer, max_new_tokens=15,
                                      do_sample=False)
        np.testing.assert_array_equal(got, expected)
        ours.generate(ids, streamer=TextStreamer(tokenizer, skip_prompt=True, file=our_out), max_new_tokens=15)
        assert our_out.getvalue() == hf_out.getvalue() and our_out.getvalue().strip()


def test_streaming_overhead(setup, record_property):
    """The cost of the ordered host callback per generated step (recorded, loosely bounded)."""
    _, ours, _, _ = setup
    ids = np.array([[5, 6, 7]])
    kwargs = dict(max_new_tokens=40, eos_token_id=None)

    def best(**extra):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            ours.generate(ids, **kwargs, **extra)
            times.append(time.perf_counter() - start)
        return min(times)

    ours.generate(ids, **kwargs)
    ours.generate(ids, streamer=Recorder(), **kwargs)         # compile both
    plain, streamed = best(), best(streamer=Recorder())
    per_step_ms = (streamed - plain) / 40 * 1e3
    record_property("streaming_overhead_ms_per_token", round(per_step_ms, 4))
    record_property("generate_ms_per_token", round(plain / 40 * 1e3, 4))
    print(f"streaming overhead: {per_step_ms:.3f} ms/token (generate alone {plain / 40 * 1e3:.3f} ms/token)")
    assert per_step_ms < 5.0
