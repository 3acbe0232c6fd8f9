"""`meshstack serve` on a Hugging Face model folder, asked through OpenAI's own client, answers what
transformers itself generates greedily: completions of the prompt as its tokenizer encodes it, and
chat completions of the model's own chat template rendered as transformers renders it; the stop
token is the model's (generation_config.json's eos_token_id). Requests sent together are decoded
together, and the answers do not change."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hf_models import Served, hf_greedy

pytest.importorskip("transformers")
openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow
PROMPTS = ("def read_config(path):\n    ", "The module provides", "Return the")
MAX_TOKENS = 20


@pytest.fixture(scope="module")
def served(hf_model: Path) -> Iterator[Served]:
    server = Served(hf_model, "--max-new-tokens", "32", "--max-batch-size", "4")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hf_tokenizer_of(hf_model: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(hf_model)


def client(served: Served):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=served.base_url, api_key="none", max_retries=0, timeout=120)


def expected(hf_model: Path, tok, ids: list[int]) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    out = hf_greedy(hf_model, ids, MAX_TOKENS)
    stopped = bool(out) and out[-1] in (tok.eos_token_id,)
    return tok.decode(out, skip_special_tokens=True), "stop" if stopped else "length"


def test_greedy_completions_are_transformers_own(served: Served, hf_model: Path, hf_tokenizer_of) -> None:  # type: ignore[no-untyped-def]
    api = client(served)
    model = api.models.list().data[0].id
    answers: dict[str, object] = {}

    def ask(prompt: str) -> None:
        answers[prompt] = api.completions.create(model=model, prompt=prompt, max_tokens=MAX_TOKENS, temperature=0)

    threads = [threading.Thread(target=ask, args=(p,)) for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for prompt in PROMPTS:
        ids = hf_tokenizer_of(prompt)["input_ids"]
        text, finish = expected(hf_model, hf_tokenizer_of, ids)
        answer = answers[prompt]
        assert answer.choices[0].text == text, prompt  # type: ignore[attr-defined]
        assert answer.choices[0].finish_reason == finish  # type: ignore[attr-defined]
        assert answer.usage.prompt_tokens == len(ids)  # type: ignore[attr-defined]


def test_chat_completions_apply_the_models_own_template(served: Served, hf_model: Path, hf_tokenizer_of) -> None:  # type: ignore[no-untyped-def]
    api = client(served)
    messages = [
        {"role": "system", "content": "You answer in Python."},
        {"role": "user", "content": "Read a file."},
    ]
    ids = hf_tokenizer_of.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    text, finish = expected(hf_model, hf_tokenizer_of, list(ids))
    answer = api.chat.completions.create(
        model=served.event["model"],
        messages=messages,
        max_tokens=MAX_TOKENS,
        temperature=0,  # type: ignore[arg-type]
    )
    assert answer.usage.prompt_tokens == len(ids)
    assert answer.choices[0].message.content == text
    assert answer.choices[0].finish_reason == finish


def test_streamed_text_is_the_same_as_the_whole(served: Served) -> None:
    api = client(served)
    whole = api.completions.create(model=served.event["model"], prompt=PROMPTS[1], max_tokens=MAX_TOKENS, temperature=0)
    stream = api.completions.create(
        model=served.event["model"], prompt=PROMPTS[1], max_tokens=MAX_TOKENS, temperature=0, stream=True
    )
    assert "".join(chunk.choices[0].text for chunk in stream if chunk.choices) == whole.choices[0].text


def test_grouped_query_attention_over_two_devices_and_in_int8(hf_model: Path, tmp_path: Path) -> None:
    """The Hugging Face model's weights and its key/value-head KV cache split over two CPU devices decode
    the tokens one device does (and transformers does); int8 weights decode too, mostly the same."""
    import json
    import os
    import subprocess
    import sys

    from meshstack.core.stack_file import PROJECT_ROOT

    script = tmp_path / "tp.py"
    script.write_text(
        "import jax, json, sys\n"
        "from tests.support.serving import greedy\n"
        "from meshstack.workloads.jax import model_store\n"
        "from meshstack.workloads.jax.engine.core import Engine\n"
        "from meshstack.workloads.jax.quantize import quantize_int8\n"
        "loaded = model_store.load_hf_folder(sys.argv[1])\n"
        "prompt = loaded.tokenizer.encode('def read_config(path):')\n"
        "out = {}\n"
        "runs = (('one', loaded.params, 1), ('two', loaded.params, 2), ('int8', quantize_int8(loaded.params), 1))\n"
        "for name, params, n in runs:\n"
        "    engine = Engine(\n"
        "        params, loaded.cfg, 2, 4, devices=jax.devices()[:n], tokenizer=loaded.tokenizer\n"
        "    )\n"
        "    engine.start()\n"
        "    out[name] = list(greedy(engine, [prompt], 12)[0].token_ids)\n"
        "    if n == 2:\n"
        "        out['cache'] = str(engine.steps.cache[0].sharding.spec)\n"
        "    engine.stop()\n"
        "out['prompt'] = prompt\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), str(hf_model)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["one"] == result["two"] == hf_greedy(hf_model, result["prompt"], 12)[: len(result["one"])]
    assert result["cache"] == "P(None, None, None, 'tensor', None)"
    assert sum(a == b for a, b in zip(result["int8"], result["one"], strict=False)) >= len(result["one"]) // 2
