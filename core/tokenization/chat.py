"""Chat templates: `tokenizer.apply_chat_template(messages, ...)` as `transformers` renders them.

The template comes from the tokenizer folder — `chat_template.jinja`, else `tokenizer_config.json`'s
`chat_template` (a string, or a list of `{"name", "template"}`: named templates, `default` and
`tool_use` chosen as `transformers` chooses them) — or from the `chat_template` argument (a
template, or the name of one). It is rendered by jinja2 in an immutable sandbox with the
environment `transformers` builds (trim_blocks, lstrip_blocks, loop controls, `raise_exception`,
a `tojson` that does not escape HTML, `strftime_now`, a safe `dict` and `namespace`; the
`{% generation %}` tag renders its body), with the tokenizer's special tokens and any extra
keyword arguments as variables. `continue_final_message` leaves the last message open as
`transformers` does (a tag appended to it, the rendering cut at the tag).

Not supported (refused with a clear error): tools given as Python callables (pass their JSON
schema), `return_assistant_tokens_mask`, `sanitize_control_tokens`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


def load_chat_template(folder: str, config: Mapping[str, Any]) -> str | dict[str, str] | None:
    """The folder's chat template(s): chat_template.jinja (plus additional_chat_templates/*.jinja)
    wins over tokenizer_config.json's `chat_template`."""
    templates: dict[str, str] = {}
    path = os.path.join(folder, "chat_template.jinja")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            templates["default"] = handle.read()
    extra = os.path.join(folder, "additional_chat_templates")
    if os.path.isdir(extra):
        for name in sorted(os.listdir(extra)):
            if name.endswith(".jinja"):
                with open(os.path.join(extra, name), encoding="utf-8") as handle:
                    templates[name[:-len(".jinja")]] = handle.read()
    if not templates:
        value = config.get("chat_template")
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return {item["name"]: item["template"] for item in value}
        if isinstance(value, dict):
            return dict(value)
        raise ValueError(f"tokenizer_config.json: chat_template must be a string or a list of named templates, "
                         f"got {type(value).__name__}")
    if list(templates) == ["default"]:
        return templates["default"]
    return templates


def select_template(own, chat_template: str | None, tools) -> str:
    """transformers' `get_chat_template`: a name picks a named template; else `tool_use` (with
    tools) or `default`; an explicit template string wins."""
    if isinstance(own, dict):
        if chat_template is not None and chat_template in own:
            return own[chat_template]
        if chat_template is None:
            if tools is not None and "tool_use" in own:
                return own["tool_use"]
            if "default" in own:
                return own["default"]
            raise ValueError("This model has multiple chat templates with no default specified! Please either pass a "
                             "chat template or the name of the template you wish to use to the `chat_template` "
                             f"argument. Available template names are {sorted(own)}.")
        return chat_template
    if chat_template is None:
        if own is None:
            raise ValueError("Cannot use chat template functions because tokenizer.chat_template is not set and no "
                             "template argument was passed!")
        return own
    return chat_template


@functools.lru_cache(maxsize=16)
def compile_template(template: str):
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}` renders its body (assistant masks are not tracked)."""
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    class TemplateDict:
        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check_name(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"Chat templates cannot store underscore-prefixed attributes on a namespace, but got {name!r}.")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env.from_string(template)


def _plain(value: Any) -> Any:
    """Plain JSON types only reach the sandbox (as transformers' `_plain_template_data`)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return _plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _normalize(conversation) -> list[dict]:
    messages = getattr(conversation, "messages", conversation)
    out = []
    for message in messages:
        if dataclasses.is_dataclass(message) and not isinstance(message, type):
            message = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
        elif callable(getattr(message, "model_dump", None)):
            message = message.model_dump()
        if not isinstance(message, dict):
            raise TypeError(f"Chat messages should be dicts, dataclasses or pydantic models, but got {message!r}.")
        out.append({k: v for k, v in message.items() if v is not None})
    return out


def _alias_reasoning(chat: list) -> list:
    aliased = []
    for message in chat:
        if isinstance(message, dict):
            reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
            if reasoning is not None:
                message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        aliased.append(message)
    return aliased


def render(conversations: list, template: str, tools=None, documents=None, continue_final_message=False,
           add_generation_prompt: bool = False, **kwargs) -> list[str]:
    """Each conversation rendered by `template` (transformers' `render_jinja_template`)."""
    compiled = compile_template(template)
    if tools is not None:
        for tool in tools:
            if not isinstance(tool, dict):
                raise ValueError("tools: Rosetta takes JSON schemas (dicts) only; convert Python functions with "
                                 "transformers.utils.get_json_schema")
    if documents is not None:
        for document in documents:
            if not isinstance(document, dict):
                raise TypeError("Documents should be a list of dicts with 'title' and 'text' keys!")
    tools, documents, kwargs = _plain(tools), _plain(documents), _plain(kwargs)
    rendered = []
    for chat in conversations:
        chat = _alias_reasoning(_plain(chat))
        final_message = None
        if continue_final_message:
            if not chat:
                raise ValueError("continue_final_message is set but the conversation is empty!")
            field = continue_final_message if isinstance(continue_final_message, str) else "content"
            final_message = chat[-1].get(field)
            if final_message is None:
                raise ValueError(f'continue_final_message is set but the final message has no "{field}" to continue!')
            fields = [field]
            if field in _REASONING_FIELDS:
                fields = [f for f in _REASONING_FIELDS if chat[-1].get(f) == final_message]
            if not any(f in template for f in fields):
                raise ValueError(f'continue_final_message is set to "{field}" but this is not an accepted field in '
                                 "the chat_template")
            if isinstance(final_message, (list, tuple)):
                for block in reversed(final_message):
                    if "text" in block:
                        final_message = block["text"]
                        block["text"] = block["text"] + _CONTINUE_TAG
                        break
                else:
                    raise ValueError("continue_final_message is set but we could not find any text to continue in "
                                     "the final message!")
            else:
                for f in fields:
                    chat[-1][f] = chat[-1][f] + _CONTINUE_TAG
        text = compiled.render(messages=chat, tools=tools, documents=documents,
                               add_generation_prompt=add_generation_prompt, **kwargs)
        if continue_final_message:
            if final_message.strip() not in text or _CONTINUE_TAG.strip() not in text:
                raise ValueError("continue_final_message is set but the final message does not appear in the chat "
                                 "after applying the chat template! This can happen if the chat template deletes "
                                 f"portions of the final message.\nFinal message to continue: "
                                 f"{final_message.strip()}\nRendered chat:\n{text}")
            at = text.rindex(_CONTINUE_TAG.strip())
            text = text[:at] if text[at:at + len(_CONTINUE_TAG)] == _CONTINUE_TAG else text[:at].rstrip()
        rendered.append(text)
    return rendered


def apply_chat_template(tokenizer, conversation, tools=None, documents=None, chat_template=None,
                        add_generation_prompt: bool = False, continue_final_message: bool | str = False,
                        tokenize: bool = True, padding=False, truncation: bool = False, max_length=None,
                        return_tensors=None, return_dict: bool = True, return_assistant_tokens_mask: bool = False,
                        sanitize_control_tokens: bool = False, tokenizer_kwargs=None, **kwargs):
    """See `PreTrainedTokenizer.apply_chat_template`."""
    if return_assistant_tokens_mask:
        raise NotImplementedError("return_assistant_tokens_mask is not implemented in Rosetta's chat templates")
    if sanitize_control_tokens:
        raise NotImplementedError("sanitize_control_tokens is not implemented in Rosetta's chat templates")
    if not tokenize:
        return_dict = False
    template = select_template(tokenizer.chat_template, chat_template, tools)
    if isinstance(conversation, (list, tuple)) and len(conversation) == 0:
        raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
    if isinstance(conversation, (list, tuple)) and (
            isinstance(conversation[0], (list, tuple)) or hasattr(conversation[0], "messages")):
        conversations, batched = list(conversation), True
    else:
        conversations, batched = [conversation], False
    conversations = [_normalize(c) for c in conversations]
    if continue_final_message and add_generation_prompt:
        raise ValueError("continue_final_message and add_generation_prompt are not compatible. Use "
                         "continue_final_message when you want the model to continue the final message, and "
                         "add_generation_prompt when you want to add a header that will prompt it to start a new "
                         "assistant message instead.")
    variables = {**tokenizer.special_tokens_map, **kwargs}
    rendered = render(conversations, template, tools=tools, documents=documents,
                      continue_final_message=continue_final_message, add_generation_prompt=add_generation_prompt,
                      **variables)
    if not batched:
        rendered = rendered[0]
    if not tokenize:
        return rendered
    out = tokenizer(rendered, padding=padding, truncation=truncation, max_length=max_length, add_special_tokens=False,
                    return_tensors=return_tensors, **(tokenizer_kwargs or {}))
    return out if return_dict else out["input_ids"]
