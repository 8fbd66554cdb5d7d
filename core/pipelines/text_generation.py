"""text-generation: continue prompts (or chats) with a causal LM, answering like transformers v5's
TextGenerationPipeline.

    gen = pipeline("text-generation", model="path/to/gpt2-folder", batch_size=4)
    gen("Once upon a time", max_new_tokens=20, do_sample=False)   # [{"generated_text": "Once upon a time..."}]
    gen([[{"role": "user", "content": "Hi"}]], max_new_tokens=8)    # [[{"generated_text": [..., assistant]}]]

Prompts are tokenized one by one (no special tokens unless `add_special_tokens=True`; chats through
the tokenizer's chat template), batched `batch_size` at a time, left-padded to a bucketed length
(powers of two from `min_length_bucket`) and a bucketed row count, then `CausalLMModel.generate`.
A tokenizer without a pad token pads with eos (masked out; generate pads finished rows with eos).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .base import Pipeline, PipelineError, check_batch_size, check_text, describe, load_model, load_tokenizer

# transformers' TextGenerationPipeline._default_generation_config, applied to what neither the call
# nor the model's generation config sets (the sampling ones only when sampling).
DEFAULTS = {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}
SAMPLING = ("temperature", "top_k", "top_p", "min_p")


def is_chat(item) -> bool:
    return isinstance(item, (list, tuple)) and len(item) > 0 and all(isinstance(m, dict) for m in item)


class GenerationPipelineMixin:
    """Generation-default handling and shape bookkeeping shared by the generation pipelines."""

    default_generation: dict = {}

    def _init_generation(self, model, tokenizer, batch_size, min_length_bucket):
        if not isinstance(tokenizer, _tokenizer_type()):
            raise TypeError(f"{self.task}: tokenizer must be a Rosetta tokenizer (core.AutoTokenizer), "
                            f"got {describe(tokenizer)}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = check_batch_size(batch_size)
        self.min_length_bucket = int(min_length_bucket)
        self.max_positions = model.max_length
        self._shapes: set = set()

    @property
    def compile_count(self) -> int:
        """How many distinct padded (rows, length, generation options) the model has generated for:
        each is one compilation of the decode loop."""
        return len(self._shapes)

    def _generate_kwargs(self, kwargs: dict) -> dict:
        """The call's generation options plus the pipeline's defaults for what neither it nor the
        model's generation config sets (transformers' `_prepare_generate_kwargs`)."""
        set_params = {**self.model.generation_config.to_dict(), **kwargs}
        added = {k: v for k, v in self.default_generation.items()
                 if k not in set_params and not (k == "max_new_tokens" and "max_length" in set_params)}
        pad = self.tokenizer.pad_token_id
        if pad is not None and "pad_token_id" not in set_params:
            added["pad_token_id"] = pad
        if not {**set_params, **added}.get("do_sample"):
            added = {k: v for k, v in added.items() if k not in SAMPLING}
        return {**kwargs, **added}

    def _note_shape(self, rows: int, length: int, kwargs: dict) -> None:
        options = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
        self._shapes.add((rows, length, options))


def _tokenizer_type():
    from core.tokenization import PreTrainedTokenizer
    return PreTrainedTokenizer


class TextGenerationPipeline(GenerationPipelineMixin, Pipeline):
    """`pipe("a prompt")` → `[{"generated_text": prompt + continuation}]`; a list of prompts → one such
    list each; a chat (list of {"role", "content"}) → `[{"generated_text": messages + [assistant reply]}]`
    (or the last assistant message continued, `continue_final_message`); a list of chats → one list each.
    Options: return_full_text (default True), return_tensors, return_text, clean_up_tokenization_spaces,
    skip_special_tokens, prefix, stop_sequence, add_special_tokens, truncation, max_length,
    continue_final_message, tokenizer_encode_kwargs, batch_size, seed / prng_key (sampling), and
    every `generate` option (max_new_tokens, do_sample, num_beams, num_return_sequences, ...).
    Defaults as transformers: max_new_tokens=256, do_sample=True, temperature=0.7 unless the model's
    generation config sets them."""

    task = "text-generation"
    head = "causal-lm"
    default_generation = DEFAULTS

    def __init__(self, model, tokenizer, batch_size: int = 1, min_length_bucket: int = 8):
        self._init_generation(model, tokenizer, batch_size, min_length_bucket)
        self.prefix = getattr(model.config, "prefix", None) or dict(getattr(model.config, "extra", {})).get("prefix")

    # -- inputs ---------------------------------------------------------------------------------------
    def _items(self, inputs):
        if isinstance(inputs, str):
            check_text(inputs, self.task, "inputs")
            return [inputs], True
        if is_chat(inputs):
            self._check_chat(inputs, "inputs")
            return [inputs], True
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise PipelineError(f"{self.task}: inputs is an empty list; pass a prompt, a chat or a non-empty list")
            items = list(inputs)
            for i, item in enumerate(items):
                if is_chat(item):
                    self._check_chat(item, f"inputs[{i}]")
                elif isinstance(item, (list, tuple)):
                    raise PipelineError(f"{self.task}: inputs[{i}] is an empty chat or not a list of messages")
                else:
                    check_text(item, self.task, f"inputs[{i}]")
            return items, False
        raise TypeError(f"{self.task}: inputs must be a string, a chat (list of {{'role', 'content'}} dicts) or a list "
                        f"of those, got {describe(inputs)}")

    def _check_chat(self, chat, where):
        for i, message in enumerate(chat):
            if "role" not in message or "content" not in message:
                raise PipelineError(f"{self.task}: {where}[{i}] must be a message with 'role' and 'content' keys, "
                                    f"got keys {sorted(message)}")

    def _encode_one(self, item, prefix, continue_final_message, add_special_tokens, truncation, max_length,
                    tokenizer_encode_kwargs, tools, documents) -> list[int]:
        kwargs = {"add_special_tokens": add_special_tokens, "truncation": truncation, "max_length": max_length}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs.update(tokenizer_encode_kwargs or {})
        if isinstance(item, str):
            kwargs.setdefault("add_special_tokens", False)
            ids = self.tokenizer(prefix + item, **kwargs)["input_ids"]
        else:
            kwargs.pop("add_special_tokens", None)
            final = continue_final_message
            if final is None:
                final = item[-1]["role"] == "assistant"
            if self.tokenizer.chat_template is None:
                raise PipelineError(f"{self.task}: chat input needs a chat template, and this tokenizer has none; "
                                    "pass plain text prompts or a tokenizer with a chat_template")
            extra = {k: v for k, v in (("tools", tools), ("documents", documents)) if v is not None}
            ids = self.tokenizer.apply_chat_template(list(item), add_generation_prompt=not final,
                                                     continue_final_message=final, tokenize=True, return_dict=True,
                                                     **extra, **kwargs)["input_ids"]
        if not ids:
            raise PipelineError(f"{self.task}: the prompt {describe(item)} tokenizes to no tokens; generation needs "
                                "at least one")
        return list(ids)

    # -- the call ---------------------------------------------------------------------------------------
    def __call__(self, inputs, *, return_full_text=None, return_tensors=None, return_text=None, return_type=None,
                 clean_up_tokenization_spaces=None, prefix=None, stop_sequence=None, truncation=None,
                 max_length=None, continue_final_message=None, skip_special_tokens=None, add_special_tokens=None,
                 tokenizer_encode_kwargs=None, tools=None, documents=None, batch_size: Optional[int] = None,
                 handle_long_generation=None, **generate_kwargs) -> Any:
        if handle_long_generation is not None:
            raise NotImplementedError("handle_long_generation is not implemented in Rosetta's text-generation")
        if return_full_text is not None and return_type is None:
            if return_text is not None:
                raise ValueError("`return_text` is mutually exclusive with `return_full_text`")
            if return_tensors is not None:
                raise ValueError("`return_full_text` is mutually exclusive with `return_tensors`")
            return_type = "full" if return_full_text else "new"
        if return_tensors and return_type is None:
            if return_text is not None:
                raise ValueError("`return_text` is mutually exclusive with `return_tensors`")
            return_type = "tensors"
        return_type = return_type or "full"
        if max_length is not None:
            generate_kwargs["max_length"] = max_length
        if prefix is None:
            prefix = self.prefix
        prefix = prefix or ""
        if prefix:
            prefix_length = len(self.tokenizer(prefix, add_special_tokens=bool(add_special_tokens))["input_ids"])
            set_params = {**self.model.generation_config.to_dict(), **generate_kwargs}
            for length, new in (("max_length", "max_new_tokens"), ("min_length", "min_new_tokens")):
                if length in generate_kwargs and new not in set_params:
                    generate_kwargs[length] = generate_kwargs[length] + prefix_length
        if stop_sequence is not None:
            generate_kwargs["stop_strings"] = [stop_sequence] if isinstance(stop_sequence, str) else stop_sequence
        seed, prng_key = generate_kwargs.pop("seed", None), generate_kwargs.pop("prng_key", None)
        gen_kwargs = self._generate_kwargs(generate_kwargs)
        items, single = self._items(inputs)
        encoded = [self._encode_one(item, prefix, continue_final_message, add_special_tokens, truncation,
                                    max_length, tokenizer_encode_kwargs, tools, documents) for item in items]
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        results = []
        for start in range(0, len(items), batch_size):
            chunk = encoded[start:start + batch_size]
            longest = max(len(ids) for ids in chunk)
            length = self._prompt_bucket(longest, gen_kwargs)
            rows = self.batch_bucket(len(chunk), batch_size)
            ids = np.full((rows, length), pad, np.int64)
            mask = np.zeros((rows, length), np.int64)
            for row, prompt in enumerate(chunk):
                ids[row, length - len(prompt):] = prompt
                mask[row, length - len(prompt):] = 1
            ids[len(chunk):, -1] = chunk[0][-1]      # filler rows: one visible token
            mask[len(chunk):, -1] = 1
            kwargs = dict(gen_kwargs)
            if "max_length" in kwargs and "max_new_tokens" not in kwargs:
                # a total length counts the prompt: keep it relative to the unpadded batch, as transformers.
                kwargs["max_length"] = kwargs["max_length"] + (length - longest)
            if "min_length" in kwargs and "min_new_tokens" not in kwargs:
                kwargs["min_length"] = kwargs["min_length"] + (length - longest)
            self._note_shape(rows, length, kwargs)
            try:
                out = self.model.generate(ids, attention_mask=mask, seed=seed, prng_key=prng_key,
                                          tokenizer=self.tokenizer if "stop_strings" in kwargs else None, **kwargs)
            except ValueError as error:
                raise PipelineError(f"{self.task}: {error}") from error
            per_row = out.shape[0] // rows
            for row in range(len(chunk)):
                sequences = out[row * per_row:(row + 1) * per_row]
                # transformers' prompt is the batch padded to its longest prompt: drop the extra padding.
                sequences = sequences[:, length - longest:]
                results.append(self.postprocess(items[start + row], sequences, longest, return_type,
                                                clean_up_tokenization_spaces, continue_final_message,
                                                skip_special_tokens))
        return results[0] if single else results

    def _prompt_bucket(self, longest: int, kwargs: dict) -> int:
        bucket = max(self.min_length_bucket, 1 << max(longest - 1, 0).bit_length())
        limit = self.max_positions
        if limit is not None:
            new = kwargs.get("max_new_tokens")
            room = limit - new if new is not None else limit - 1
            if longest > room:
                raise PipelineError(f"{self.task}: a prompt of {longest} tokens plus {new} new tokens exceeds the "
                                    f"model's maximum of {limit} positions; shorten the prompt or generate fewer "
                                    "tokens")
            bucket = min(bucket, room)
        return max(bucket, longest)

    def postprocess(self, item, sequences, prompt_length, return_type, clean_up_tokenization_spaces,
                    continue_final_message, skip_special_tokens):
        skip = True if skip_special_tokens is None else skip_special_tokens
        records = []
        for sequence in sequences.tolist():
            if return_type == "tensors":
                records.append({"generated_token_ids": sequence})
                continue
            text = self.tokenizer.decode(sequence[prompt_length:], skip_special_tokens=skip,
                                         clean_up_tokenization_spaces=clean_up_tokenization_spaces)
            if return_type == "full":
                if isinstance(item, str):
                    text = item + text
                else:
                    final = continue_final_message
                    if final is None:
                        final = item[-1]["role"] == "assistant"
                    if final:
                        text = list(item)[:-1] + [{"role": item[-1]["role"], "content": item[-1]["content"] + text}]
                    else:
                        text = list(item) + [{"role": "assistant", "content": text}]
            records.append({"generated_text": text})
        return records

    @classmethod
    def create(cls, task, model, tokenizer, batch_size, dtype, min_length_bucket, model_kwargs, backend=None):
        loaded = load_model(task, cls.head, model, dtype=dtype, model_kwargs=model_kwargs, backend=backend)
        return cls(loaded, load_tokenizer(task, tokenizer, model), batch_size=batch_size,
                   min_length_bucket=min_length_bucket)
