"""Chat templates render as transformers renders them: the same text for the same messages (loop
controls, trim_blocks and lstrip_blocks, the special tokens), and a template's own refusal is an error
the server answers with 400, as is a model without one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from meshstack.workloads.jax.tokenization import ChatTemplateError, load_hf_tokenizer, render_chat

pytest.importorskip("transformers")

# Loop controls, whitespace control and raise_exception, as real models' templates use them.
STRICT = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% continue %}{% endif %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 1) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}\n"
    "    {{ bos_token + '[' + message['role'] + '] ' + message['content'] | trim + eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
)
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": " Read a file. "},
    {"role": "assistant", "content": "open(path)"},
    {"role": "user", "content": "And write one?"},
]


@pytest.mark.parametrize("template", ["own", "strict"])
def test_the_same_prompt_as_apply_chat_template(hf_model: Path, template: str) -> None:
    from transformers import AutoTokenizer

    theirs = AutoTokenizer.from_pretrained(hf_model)
    ours = load_hf_tokenizer(hf_model)
    if template == "strict":
        theirs.chat_template = STRICT
        ours = replace(ours, chat_template=STRICT)
    expected = theirs.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert render_chat(ours, MESSAGES) == expected


def test_a_templates_refusal_and_a_missing_template_are_errors(hf_model: Path) -> None:
    ours = replace(load_hf_tokenizer(hf_model), chat_template=STRICT)
    with pytest.raises(ChatTemplateError, match="Conversation roles must alternate"):
        render_chat(ours, [{"role": "user", "content": "a user first, where the template wants a system turn"}])
    with pytest.raises(ChatTemplateError, match="this model has no chat template"):
        render_chat(replace(ours, chat_template=""), MESSAGES)
    with pytest.raises(ChatTemplateError, match="not valid Jinja"):
        render_chat(replace(ours, chat_template="{% for %}"), MESSAGES)
