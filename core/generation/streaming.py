"""Streaming: hand each generated token to a streamer while the loop runs, as `transformers` does.

A streamer is any object with `put(token_ids)` and `end()` (`transformers`' `TextStreamer` and
`TextIteratorStreamer` qualify, and so does `TextStreamer` below). `generate(..., streamer=s)`
calls `s.put(prompt ids (batch, length))` first (for encoder-decoders: the decoder start ids),
then `s.put(tokens (batch,))` once per generated step, then `s.end()` — the calls `transformers`
makes (it streams greedy and sampling only, not beam search; its text streamers take batch 1).

Inside the jitted JAX loop the step's tokens leave the device through an *ordered*
`jax.debug.callback` (`emit`): the loop does not wait for the host, and the order of the calls is
the order of the steps. The compiled loop is the same for every streamer: the callback receives
a traced `stream_id` and looks the streamer up in a registry (`register`), so a new streamer
reuses the compiled program. `generate` waits for the last callback (`jax.effects_barrier`)
before it calls `end()`. The host loop (`core.generation.host`, used by the torch / TF ports)
calls the streamer directly.

Cost (measured by tests/test_generation_features.py::test_streaming_overhead, 2-layer GPT-2 with
hidden 24, CPU, a shared 2-core machine): about 1.2 ms per generated step, against about 0.1 ms
per step for the whole loop without a streamer — an ordered callback makes the loop wait for a
host round trip every step. Negligible for real models (a step costs milliseconds or more), but
it is why streaming is opt-in: without `streamer=` the callback is not compiled in at all
(`Plan.stream` is static).

Imports JAX only inside `emit`.
"""
from __future__ import annotations

import itertools
import sys
import threading

import numpy as np

_STREAMERS: dict[int, object] = {}
_IDS = itertools.count(1)
_LOCK = threading.Lock()


def check_streamer(streamer) -> None:
    if not (callable(getattr(streamer, "put", None)) and callable(getattr(streamer, "end", None))):
        raise TypeError(f"streamer: expected an object with put(token_ids) and end(), got {type(streamer).__name__}")


def register(streamer) -> int:
    """A new id for `streamer` (remove it with `unregister` once the loop is done)."""
    check_streamer(streamer)
    with _LOCK:
        stream_id = next(_IDS) % (2 ** 31 - 1)
        _STREAMERS[stream_id] = streamer
    return stream_id


def unregister(stream_id: int) -> None:
    with _LOCK:
        _STREAMERS.pop(int(stream_id), None)


def _deliver(stream_id, tokens) -> None:
    streamer = _STREAMERS.get(int(stream_id))
    if streamer is not None:
        streamer.put(np.asarray(tokens, np.int64))


def emit(stream_id, tokens) -> None:
    """Inside jit: send this step's tokens (rows,) to the streamer registered as `stream_id`."""
    import jax
    jax.debug.callback(_deliver, stream_id, tokens, ordered=True)


def finish(stream_id: int) -> None:
    """After the loop: wait for every pending callback, then `end()` the streamer."""
    import jax
    jax.effects_barrier()
    streamer = _STREAMERS.get(int(stream_id))
    unregister(stream_id)
    if streamer is not None:
        streamer.end()


class TextStreamer:
    """Prints the text as it is generated, a word at a time (as `transformers.TextStreamer`):
    text is flushed up to the last space (or newline, or CJK character); `end()` flushes the
    rest and a newline. `skip_prompt=True` leaves out the prompt's text. Batch 1 only.

        model.generate(ids, streamer=TextStreamer(tokenizer), max_new_tokens=50)
    """

    def __init__(self, tokenizer, skip_prompt: bool = False, file=None, **decode_kwargs):
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self.decode_kwargs = decode_kwargs
        self.file = file
        self.token_cache: list[int] = []
        self.print_len = 0
        self.next_tokens_are_prompt = True

    def put(self, value) -> None:
        value = np.asarray(value)
        if value.ndim > 1 and value.shape[0] > 1:
            raise ValueError("TextStreamer only supports batch size 1")
        if value.ndim > 1:
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.token_cache.extend(int(v) for v in np.reshape(value, (-1,)))
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        if text.endswith("\n"):
            printable = text[self.print_len:]
            self.token_cache = []
            self.print_len = 0
        elif len(text) > 0 and _is_chinese_char(ord(text[-1])):
            printable = text[self.print_len:]
            self.print_len += len(printable)
        else:
            printable = text[self.print_len:text.rfind(" ") + 1]
            self.print_len += len(printable)
        self.on_finalized_text(printable)

    def end(self) -> None:
        if self.token_cache:
            text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
            printable = text[self.print_len:]
            self.token_cache = []
            self.print_len = 0
        else:
            printable = ""
        self.next_tokens_are_prompt = True
        self.on_finalized_text(printable, stream_end=True)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        """Prints `text` (override to send it elsewhere)."""
        print(text, flush=True, end="" if not stream_end else None, file=self.file or sys.stdout)


def _is_chinese_char(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)
