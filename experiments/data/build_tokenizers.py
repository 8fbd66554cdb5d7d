"""Rebuild the small tokenizers that ship with the embedded corpus (run from the repo root):

    python -m experiments.data.build_tokenizers

Writes `wordpiece/` (a lower-cased BERT WordPiece vocab.txt, for the masked-LM and classifier
configs) and `bpe/` (a byte-level BPE tokenizer.json with `<|endoftext|>`, GPT-2 style, for the
causal-LM config), both trained with the `tokenizers` library on `corpus.txt` and the sentiment
texts. The outputs are committed; this script documents how they were made. The BPE output is
reproducible; the WordPiece trainer orders equally frequent pieces differently from run to run
(Rust hash order), so a rebuilt vocab.txt differs from the committed one and changes results.
"""
from __future__ import annotations

import json
import pathlib

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = pathlib.Path(__file__).resolve().parent
WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def texts() -> list[str]:
    docs = [d.strip() for d in (HERE / "corpus.txt").read_text().split("\n\n") if d.strip()]
    for name in ("sentiment_train.jsonl", "sentiment_eval.jsonl"):
        docs += [json.loads(line)["text"] for line in (HERE / name).read_text().splitlines() if line.strip()]
    return docs


def build_wordpiece(vocab_size: int = 2048) -> pathlib.Path:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=WORDPIECE_SPECIALS,
                                        min_frequency=1, show_progress=False)
    tok.train_from_iterator(texts(), trainer)
    out = HERE / "wordpiece"
    out.mkdir(exist_ok=True)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (out / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
        "mask_token": "[MASK]"}, indent=2) + "\n")
    return out


def build_bpe(vocab_size: int = 1024) -> pathlib.Path:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts(), trainer)
    out = HERE / "bpe"
    out.mkdir(exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "model_max_length": 1024, "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "add_prefix_space": False}, indent=2) + "\n")
    return out


if __name__ == "__main__":
    for path in (build_wordpiece(), build_bpe()):
        print("wrote", path)
