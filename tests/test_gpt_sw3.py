"""GPT-Sw3: `transformers` has no modeling of its own for it — AI Sweden's checkpoints are
`model_type: gpt2` (GPT2LMHeadModel) with `tokenizer_class: GPTSw3Tokenizer` (sentencepiece).
So it is a config, not a family: a GPT-Sw3-shaped config.json loads as Rosetta's GPT-2, with
parity, cached decoding, generation and the round trip of its extra keys. (The tokenizer is
tested with the tokenizers.)"""
import json

import numpy as np
import pytest
import torch

from core import AutoConfig, AutoModelForCausalLM
from core.models.gpt2.config import GPT2Config
from tests import parity
from tests import test_gpt2 as gpt2

# The shape of AI-Sweden-Models/gpt-sw3-*'s config.json, shrunk: exact gelu (not gelu_new),
# its special token ids (pad 0, unk 1, bos 2, eos 3), the sentencepiece tokenizer class.
SW3 = dict(activation_function="gelu", bos_token_id=2, eos_token_id=3, pad_token_id=0, unk_token_id=1,
           tokenizer_class="GPTSw3Tokenizer", initializer_range=0.023, n_inner=None, n_embd=24, n_head=4)


@pytest.fixture(scope="module")
def sw3(tmp_path_factory):
    reference, folder = gpt2.build_reference("causal-lm", tmp_path_factory.mktemp("sw3"), **SW3)
    return reference, folder


def test_loads_as_gpt2_with_parity(sw3, record_property):
    reference, folder = sw3
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["tokenizer_class"] == "GPTSw3Tokenizer"
    ours = AutoModelForCausalLM.from_pretrained(folder)
    assert isinstance(ours.config, GPT2Config) and ours.config.activation_function == "gelu"
    for padding in ("right", "left"):
        inputs, labels = gpt2.task_inputs("causal-lm", {**gpt2.TINY, **SW3}, padding)
        with torch.no_grad():
            expected = reference(**parity.to_torch({**inputs, **labels}), output_hidden_states=True,
                                 output_attentions=True)
        got = ours(**inputs, **labels, output_hidden_states=True, output_attentions=True)
        comparison = parity.compare_outputs(got, expected, ("loss", "logits", "hidden_states", "attentions"))
        parity.assert_close(comparison, record=record_property, label="gpt-sw3 (gpt2) vs transformers")
        # And decoding through the KV cache: prefill 5, then single tokens.
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        out = ours(input_ids=ids[:, :5], attention_mask=mask, cache=ours.init_cache(3, 9), cache_index=0)
        steps = [np.asarray(out.logits)]
        for t in range(5, 9):
            out = ours(input_ids=ids[:, t:t + 1], attention_mask=mask, cache=out.cache, cache_index=t)
            steps.append(np.asarray(out.logits))
        real = mask == 1
        diff = parity.max_abs(np.concatenate(steps, axis=1)[real], expected.logits.numpy()[real])
        record_property("parity:gpt-sw3 (gpt2) vs transformers", diff)
        assert diff <= parity.TOL


def test_generate_with_sw3_token_ids_is_token_identical(sw3):
    """Greedy, with GPT-Sw3's eos (3) and pad (0) from its generation config."""
    reference, folder = sw3
    ours = AutoModelForCausalLM.from_pretrained(folder)
    ids, mask = gpt2.generation_prompts()
    ids = np.where(mask == 1, ids, SW3["pad_token_id"])
    with torch.no_grad():
        expected = reference.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                                      max_new_tokens=12).numpy()
    np.testing.assert_array_equal(ours.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=12),
                                  expected)


def test_config_round_trip_keeps_the_sw3_keys(sw3, tmp_path):
    _, folder = sw3
    original = json.loads((folder / "config.json").read_text())
    config = AutoConfig.from_pretrained(folder)
    assert config.to_dict() == original and list(config.to_dict()) == list(original)
    assert config.extra["tokenizer_class"] == "GPTSw3Tokenizer" and config.extra["unk_token_id"] == 1
    ours = AutoModelForCausalLM.from_pretrained(folder)
    ours.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text()) == original
