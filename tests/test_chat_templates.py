"""Chat templates: Rosetta's `apply_chat_template` against transformers' on the same tokenizer
folder — the same strings and ids for a ChatML template (tokenizer_config.json string), the Llama-2
template (system prompt folding, raise_exception; chat_template.jinja) and a tool-use template
(named templates, tojson, namespace, loop controls, documents), with and without
add_generation_prompt and continue_final_message."""
import json

import jinja2
import pytest
import tokenizers
import transformers

from core.tokenization import AutoTokenizer

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
          " + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
          "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
          "{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
          "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
          "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
          "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
          "{% endfor %}")

TOOLS = """{%- if tools %}
<|im_start|>system
Year {{ strftime_now("%Y") }}. You can call these tools:
{% for tool in tools %}
{{ tool | tojson }}
{% endfor %}
<|im_end|>
{% endif %}
{%- set ns = namespace(calls=0) %}
{% for message in messages %}
    {% if message.role == 'note' %}{% continue %}{% endif %}
<|im_start|>{{ message.role }}
    {% if message.tool_calls is defined %}
        {% for call in message.tool_calls %}
{% set ns.calls = ns.calls + 1 %}
<tool_call>{{ call.function | tojson(indent=1) }}</tool_call>
        {% endfor %}
    {% else %}
{{ message.content }}
    {% endif %}
<|im_end|>
    {% if loop.index > 6 %}{% break %}{% endif %}
{% endfor %}
{% if documents %}{% for d in documents %}[{{ d.title }}] {{ d.text }}
{% endfor %}{% endif %}
calls: {{ ns.calls }}
{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

TOOL_SCHEMA = {"type": "function", "function": {"name": "get_weather", "description": "Weather <now> & \"here\"",
                                                "parameters": {"type": "object", "properties": {
                                                    "city": {"type": "string", "description": "Zürich or 東京"}},
                                                    "required": ["city"]}}}

CHATS = {
    "plain": [{"role": "user", "content": "Hello there!"}, {"role": "assistant", "content": "General Kenobi. "},
              {"role": "user", "content": "  You are a bold one.\n"}],
    "system": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"},
               {"role": "assistant", "content": "Rayleigh scattering, mostly"}],
    "tools": [{"role": "user", "content": "Weather in Zürich?"},
              {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                  "name": "get_weather", "arguments": {"city": "Zürich"}}}]},
              {"role": "note", "content": "skipped"},
              {"role": "tool", "content": "12°C, <cloudy>"}, {"role": "assistant", "content": "It is 12°C"}],
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """One byte-level BPE tokenizer, saved three times with its template stored three ways."""
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<|im_start|>",
                                                                             "<|im_end|>"],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text for chat in CHATS.values() for m in chat for text in [m.get("content", "")]] * 5,
                            trainer)
    base = {"bos_token": "<s>", "eos_token": "</s>", "model_max_length": 512}
    out = {}
    for name in ("chatml", "llama2", "tools"):
        folder = tmp_path_factory.mktemp(name)
        tok.save(str(folder / "tokenizer.json"))
        config = dict(base)
        if name == "chatml":
            config["chat_template"] = CHATML
        elif name == "llama2":
            (folder / "chat_template.jinja").write_text(LLAMA2)
        else:
            config["chat_template"] = [{"name": "default", "template": CHATML}, {"name": "tool_use", "template": TOOLS}]
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
        out[name] = (transformers.AutoTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(folder))
    return out


CASES = [("chatml", "plain", {}), ("chatml", "system", {}), ("chatml", "system", {"continue_final_message": True}),
         ("llama2", "system", {}), ("llama2", "plain", {}), ("llama2", "system", {"continue_final_message": True}),
         ("tools", "tools", {"tools": [TOOL_SCHEMA]}),
         ("tools", "tools", {"tools": [TOOL_SCHEMA], "documents": [{"title": "Doc", "text": "Some <b>text</b>"}]}),
         ("tools", "plain", {}),                                         # no tools: the default template
         ("tools", "plain", {"chat_template": "tool_use", "custom_var": 3})]


@pytest.mark.parametrize("template,chat,options", CASES, ids=[f"{t}-{c}-{'-'.join(o)}" for t, c, o in CASES])
def test_strings_and_ids_equal_transformers(folders, template, chat, options):
    reference, ours = folders[template]
    messages = CHATS[chat]
    prompts = (False,) if options.get("continue_final_message") else (False, True)
    for add_generation_prompt in prompts:
        kwargs = dict(options, add_generation_prompt=add_generation_prompt)
        want = reference.apply_chat_template(messages, tokenize=False, **kwargs)
        got = ours.apply_chat_template(messages, tokenize=False, **kwargs)
        assert got == want
        want_ids = reference.apply_chat_template(messages, tokenize=True, return_dict=False, **kwargs)
        assert ours.apply_chat_template(messages, return_dict=False, **kwargs) == list(want_ids)
        encoded = ours.apply_chat_template(messages, return_tensors="np", **kwargs)
        assert encoded["input_ids"].tolist() == [list(want_ids)]
    # batched chats
    assert ours.apply_chat_template([messages, messages[:2]], tokenize=False, **options) == \
        reference.apply_chat_template([messages, messages[:2]], tokenize=False, **options)


def test_errors_match_transformers(folders):
    reference, ours = folders["llama2"]
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    for tokenizer in (reference, ours):
        with pytest.raises(jinja2.exceptions.TemplateError, match="must alternate"):
            tokenizer.apply_chat_template(bad, tokenize=False)
        with pytest.raises(ValueError, match="not compatible"):
            tokenizer.apply_chat_template(CHATS["plain"], tokenize=False, add_generation_prompt=True,
                                          continue_final_message=True)
    with pytest.raises(jinja2.exceptions.SecurityError):
        ours.apply_chat_template(CHATS["plain"], tokenize=False,
                                 chat_template="{{ messages.__class__.__mro__ }}")
    _, plain = folders["tools"]
    assert plain.apply_chat_template(CHATS["plain"], tokenize=False, chat_template="{{ 'x' }}") == "x"
