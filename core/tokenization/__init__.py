"""Tokenizers for Hugging Face model folders, with transformers' calling conventions.

Importable without JAX: this package needs only `tokenizers`, `sentencepiece` and numpy.

    from core.tokenization import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained("path/to/model")
    batch = tokenizer(["a text", "another"], padding=True, return_tensors="np")
"""
from .auto import AutoTokenizer
from .base import BatchEncoding, EncodedSequence, PreTrainedTokenizer
from .sentencepiece_backend import SentencePieceTokenizer
from .seq2seq import (
    GPTSw3Tokenizer,
    M2M100Tokenizer,
    MarianTokenizer,
    MBartTokenizer,
    PLBartTokenizer,
    SlowSentencePieceTokenizer,
    T5SentencePieceTokenizer,
)
from .settings import TokenizerSettings, load_tokenizer_settings
from .tokenizers_backend import TokenizersTokenizer, WordPieceTokenizer

__all__ = [
    "AutoTokenizer",
    "BatchEncoding",
    "EncodedSequence",
    "GPTSw3Tokenizer",
    "M2M100Tokenizer",
    "MBartTokenizer",
    "MarianTokenizer",
    "PLBartTokenizer",
    "PreTrainedTokenizer",
    "SentencePieceTokenizer",
    "SlowSentencePieceTokenizer",
    "T5SentencePieceTokenizer",
    "TokenizerSettings",
    "TokenizersTokenizer",
    "WordPieceTokenizer",
    "load_tokenizer_settings",
]
