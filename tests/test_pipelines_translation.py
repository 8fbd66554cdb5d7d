"""Translation with language codes (mBART, M2M100): `pipeline("translation")(texts, src_lang=..., tgt_lang=...)`
against the reference model's own `generate` on what the reference tokenizer encodes with the same source
language, the target language's id forced as the first generated token, decoded as v4's pipeline decoded
(transformers v5 has no translation pipeline).

Tokenizers are the sentencepiece ones trained in tests/test_seq2seq_tokenizers.py; the models are tiny random
`transformers` models (weights ~ N(0, 1), so greedy argmax is far from ties).
"""
import warnings

import pytest
import torch
import transformers

from core import pipeline
from core.pipelines import PipelineError
from tests import parity
from tests.test_seq2seq_tokenizers import CORPUS, _spm, build

TEXTS = ["Hello world. The quick brown fox!", "Tokyo is the capital of Japan, isn't it?", "a"]
CASES = {  # kind: (model class, config class, language pairs)
    "mbart": (transformers.MBartForConditionalGeneration, transformers.MBartConfig,
              [("de_DE", "ro_RO"), ("en_XX", "fi_FI")]),
    "m2m100": (transformers.M2M100ForConditionalGeneration, transformers.M2M100Config, [("fr", "de"), ("en", "ja")]),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def translator(request, tmp_path_factory):
    kind = request.param
    tmp = tmp_path_factory.mktemp(f"translation_{kind}")
    (tmp / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    tokenizer, folder = build(kind, {"fairseq": _spm(tmp, "fairseq", model_type="unigram")}, tmp)
    model_class, config_class, pairs = CASES[kind]
    # M2M100's language tokens come after the sentencepiece vocabulary (len(tokenizer) leaves them out)
    vocab_size = max([len(tokenizer), *[i + 1 for i in getattr(tokenizer, "lang_token_to_id", {}).values()]])
    config = config_class(
        vocab_size=vocab_size, d_model=16, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=20, max_position_embeddings=64, dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, pad_token_id=tokenizer.pad_token_id, bos_token_id=0,
        eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None)
    torch.manual_seed(7)
    reference = parity.randomize_(model_class._from_config(config, attn_implementation="eager").eval(), 7, std=1.0)
    reference.save_pretrained(folder)
    return kind, folder, reference, pairs


def reference_translation(kind, folder, model, texts, src, tgt, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, src_lang=src, tgt_lang=tgt)
    forced = tokenizer.get_lang_id(tgt) if kind == "m2m100" else tokenizer.convert_tokens_to_ids(tgt)
    out = []
    for text in texts:
        with torch.no_grad():
            ids = model.generate(**tokenizer(text, return_tensors="pt"), forced_bos_token_id=forced, **kwargs)
        out.append({"translation_text": tokenizer.decode(ids[0], skip_special_tokens=True,
                                                         clean_up_tokenization_spaces=False)})
    return out


def test_translation_with_language_codes_matches_reference_generate(translator):
    kind, folder, reference, pairs = translator
    translate = pipeline("translation", model=folder, batch_size=2)
    for src, tgt in pairs:
        want = reference_translation(kind, folder, reference, TEXTS, src, tgt, max_new_tokens=7)
        assert translate(TEXTS, src_lang=src, tgt_lang=tgt, max_new_tokens=7) == want, (kind, src, tgt)
    src, tgt = pairs[0]
    beams = reference_translation(kind, folder, reference, TEXTS[:1], src, tgt, max_new_tokens=5, num_beams=2)
    assert translate(TEXTS[0], src_lang=src, tgt_lang=tgt, max_new_tokens=5, num_beams=2) == beams
    # a task name translation_XX_to_YY picks the same languages; as in v4, only codes without "_" parse
    named = pipeline(f"translation_{src}_to_{tgt}", model=translate.model, tokenizer=translate.tokenizer)
    if "_" in src:
        with pytest.raises(PipelineError, match="requires a `src_lang` and a `tgt_lang`"):
            named(TEXTS[:2], max_new_tokens=7)
    else:
        assert named(TEXTS[:2], max_new_tokens=7) == reference_translation(kind, folder, reference, TEXTS[:2], src,
                                                                             tgt, max_new_tokens=7)


def test_translation_language_errors_name_the_fix(translator):
    kind, folder, _, pairs = translator
    translate = pipeline("translation", model=folder)
    with pytest.raises(PipelineError, match="requires a `src_lang` and a `tgt_lang`"):
        translate(TEXTS[0])
    with pytest.raises(PipelineError, match="language code"):
        translate(TEXTS[0], src_lang=pairs[0][0], tgt_lang="xx_NOPE")
