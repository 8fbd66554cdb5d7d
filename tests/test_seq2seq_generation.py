"""The seq2seq generation engine (`Seq2SeqLMModel.generate`) against `transformers.generate` on
tiny T5 / mT5 / UMT5: greedy and beam search token for token over >= 32 new tokens, batched
padded inputs, decoder_start / forced BOS / forced EOS, min_new_tokens; generation_config.json."""
import numpy as np
import pytest
import torch

from core import AutoModelForSeq2SeqLM
from core.generation import GenerationConfig, Seq2SeqLMModel
from tests import test_t5

TINY = test_t5.TINY


@pytest.fixture(scope="module", params=["t5", "mt5", "umt5"])
def pair(request, tmp_path_factory):
    """Weights ~ N(0, 0.5): logits far from ties, so argmax is meaningful."""
    model_type = request.param
    reference, folder = test_t5.build_reference(model_type, "seq2seq-lm", tmp_path_factory.mktemp(model_type),
                                                seed=1, std=0.5, untie=model_type != "t5",
                                                num_decoder_layers=2)  # transformers sizes its generate cache by num_layers
    return model_type, reference, AutoModelForSeq2SeqLM.from_pretrained(folder)


def prompts(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, TINY["vocab_size"], size=(3, 7))
    mask = np.ones_like(ids)
    mask[0, 4:] = 0
    mask[2, 6:] = 0
    return np.where(mask == 1, ids, TINY["pad_token_id"]), mask


CASES = {
    "greedy": dict(max_new_tokens=34),
    "greedy-options": dict(max_new_tokens=33, repetition_penalty=1.3, min_new_tokens=20, forced_bos_token_id=5,
                           forced_eos_token_id=1),
    "beam": dict(max_new_tokens=32, num_beams=3, length_penalty=1.4, early_stopping=True, num_return_sequences=2),
}


@pytest.mark.parametrize("name", list(CASES))
def test_generate_is_token_identical_to_transformers(pair, name):
    model_type, reference, ours = pair
    kwargs = CASES[name]
    ids, mask = prompts()
    with torch.no_grad():
        expected = reference.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                                      **kwargs).numpy()
    got = ours.generate(ids, attention_mask=mask, do_sample=False, **kwargs)
    assert isinstance(ours, Seq2SeqLMModel)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_array_equal(got, expected)
    assert (got[:, 0] == TINY["decoder_start_token_id"]).all()


@pytest.mark.parametrize("pair", ["t5"], indirect=True)     # the engine is shared: one family is enough
def test_generation_config_file_and_sampling(pair, tmp_path):
    model_type, reference, ours = pair
    ours.generation_config = GenerationConfig(decoder_start_token_id=3, eos_token_id=1, pad_token_id=0,
                                              max_new_tokens=6)
    folder = ours.save_pretrained(tmp_path / "saved")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(folder)
    assert loaded.generation_config.decoder_start_token_id == 3
    ids, mask = prompts()
    out = loaded.generate(ids, attention_mask=mask)
    assert out.shape[1] <= 7 and (out[:, 0] == 3).all()
    a = loaded.generate(ids, attention_mask=mask, do_sample=True, top_k=5, seed=0)
    b = loaded.generate(ids, attention_mask=mask, do_sample=True, top_k=5, seed=0)
    np.testing.assert_array_equal(a, b)
