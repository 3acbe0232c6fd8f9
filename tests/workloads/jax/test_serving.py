"""The inference server on loopback, driven with OpenAI's official Python client as its users would:
completions and chat, streamed and not, at once from many threads; the continuous-batching
engine's tokens against the model's own forward pass; bad requests, back-pressure, a client that
leaves mid-stream, and a drain on SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshstack.core.contract import SERVE_TOKEN_ENV
from meshstack.core.model_config import ModelConfig
from meshstack.core.observability import SERVE_IN_FLIGHT, SERVE_KV_USAGE, SERVE_PREFIX_HIT_RATIO, SERVE_TTFT
from meshstack.core.stack_file import PROJECT_ROOT
from meshstack.demo import MetricsSampler
from meshstack.workloads.jax import tokenizer
from meshstack.workloads.jax.data import held_out_text
from meshstack.workloads.jax.engine.core import Engine
from meshstack.workloads.jax.engine.loading import load_params
from meshstack.workloads.jax.engine.request import EngineDrainingError, EngineFullError, Request, Sampling
from meshstack.workloads.jax.model import forward, init_params
from meshstack.workloads.jax.quantize import perplexity, quantize_int8, weight_bytes
from meshstack.workloads.jax.serving.launcher import Running, start
from meshstack.workloads.jax.serving.protocol import chat_prompt
from meshstack.workloads.local import LocalRunError, LocalServer
from tests.support.serving import MODEL, client, greedy, serve_job


@pytest.fixture(scope="module")
def server(checkpoint: str) -> Iterator[Running]:
    srv = start(serve_job(checkpoint, read_timeout_s=2), host="127.0.0.1")
    yield srv
    srv.drain()


def raw(server: Running, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read().decode()
    conn.close()
    return response.status, dict(response.getheaders()), (json.loads(data) if data.startswith("{") else data)


def metrics_of(server: Running) -> dict[str, float]:
    _, _, text = raw(server, "GET", "/metrics")
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


# --- the API, through the official client ---------------------------------------------------------


def test_models_lists_the_served_model(server: Running) -> None:
    assert [m.id for m in client(server).models.list()] == [MODEL]


def test_completion_answers_with_usage_and_finish_reason(server: Running) -> None:
    answer = client(server).completions.create(model=MODEL, prompt="The module", max_tokens=6, temperature=0)
    [choice] = answer.choices
    assert choice.finish_reason == "length" and choice.text
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (len("The module") + 1, 6)
    assert answer.object == "text_completion" and answer.model == MODEL and answer.id.startswith("cmpl-")


def test_chat_uses_the_template_and_answers_as_the_assistant(server: Running) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a module."}]
    answer = client(server).chat.completions.create(model=MODEL, messages=messages, max_tokens=5, temperature=0)
    assert answer.choices[0].message.role == "assistant"
    expected = len(chat_prompt([type("M", (), m)() for m in messages])) + 1  # type: ignore[misc]
    assert answer.usage is not None and answer.usage.prompt_tokens == expected
    assert answer.object == "chat.completion"


def test_streaming_gives_the_same_text_in_chunks_then_done(server: Running) -> None:
    api = client(server)
    whole = api.completions.create(model=MODEL, prompt="The list", max_tokens=12, temperature=0).choices[0].text
    chunks = list(
        api.completions.create(
            model=MODEL,
            prompt="The list",
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole and len([c for c in chunks if c.choices]) > 2
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12
    chat = list(
        api.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4, temperature=0, stream=True
        )
    )
    assert chat[0].choices[0].delta.role == "assistant"
    assert chat[-1].choices[0].finish_reason == "length"


def test_a_seed_makes_sampling_repeatable_and_top_p_narrows_it(server: Running) -> None:
    api = client(server)

    def sample(**kw: Any) -> str:
        return api.completions.create(model=MODEL, prompt="A", max_tokens=12, **kw).choices[0].text

    assert sample(temperature=1.5, seed=7) == sample(temperature=1.5, seed=7)
    assert len({sample(temperature=1.5, seed=s) for s in range(6)}) > 1
    assert sample(temperature=1.5, top_p=1e-6, seed=3) == sample(temperature=0)


def test_a_stop_string_ends_the_answer_before_it(server: Running) -> None:
    api = client(server)
    same = {"model": MODEL, "prompt": "The", "max_tokens": 16, "temperature": 1.0, "seed": 11}
    whole = api.completions.create(**same).choices[0].text
    stop = next(whole[i : i + 2] for i in range(2, len(whole) - 2) if whole[i : i + 2].strip())
    cut = api.completions.create(**same, stop=[stop]).choices[0]
    assert cut.finish_reason == "stop" and cut.text == whole[: whole.index(stop)]
    streamed = api.completions.create(**same, stop=stop, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == cut.text


def test_concurrent_requests_are_decoded_together(server: Running) -> None:
    api = client(server)
    before = metrics_of(server).get("meshstack_batch_size_sum", 0)
    answers: list[str] = []

    def ask(i: int) -> None:
        answers.append(
            api.completions.create(model=MODEL, prompt=f"Item {i}", max_tokens=16, temperature=0).choices[0].text
        )

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8
    after = metrics_of(server)
    steps = after["meshstack_batch_size_count"]
    assert after["meshstack_batch_size_sum"] - before > 0 and steps > 0
    assert after["meshstack_batch_size_sum"] / steps > 1, "several requests shared decode steps"


def test_the_demo_charts_what_the_server_reports_while_it_answers(server: Running) -> None:
    """The demo's serving panels come from the server's own /metrics, scraped while it answers."""
    api = client(server)
    answers: list[str] = []

    def ask(i: int) -> None:
        answer = api.completions.create(model=MODEL, prompt=f"Entry {i}", max_tokens=16, temperature=0)
        answers.append(answer.choices[0].text)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(24)]
    with MetricsSampler(server.port, interval_s=0.002) as sampler:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(answers) == 24
    series = sampler.series
    assert len(series["running"]) >= 3, "scraped several times while the requests ran"
    assert max(v for _, v in series["running"]) >= 2, "requests were seen running together"
    assert series["running"][-1][1] == 0, "and none once every answer was in"
    assert max(v for _, v in series["kv_usage"]) > 0
    assert max(v for _, v in series["tokens_per_s"]) > 0
    assert max(v for _, v in series["batch"]) > 1, "decode steps carried several requests"
    times = [t for t, _ in series["running"]]
    assert times == sorted(times)


def test_shared_prefixes_are_reused_and_counted(server: Running) -> None:
    api = client(server)
    system = "You answer questions about the Python standard library, briefly and exactly."
    first = api.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": system}, {"role": "user", "content": "os?"}], max_tokens=2
    )
    second = api.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": system}, {"role": "user", "content": "sys?"}], max_tokens=2
    )
    assert first.usage is not None and second.usage is not None and second.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details.cached_tokens >= len(system)
    metrics = metrics_of(server)
    assert metrics[SERVE_PREFIX_HIT_RATIO] > 0 and metrics["meshstack_prefix_cache_hits_total"] >= 1
    assert metrics[f"{SERVE_TTFT}_count"] >= 2 and SERVE_KV_USAGE in metrics and SERVE_IN_FLIGHT in metrics


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "param", "code"),
    [
        ({"prompt": ""}, openai.BadRequestError, "prompt", None),
        ({"prompt": "x", "max_tokens": 17}, openai.BadRequestError, "max_tokens", None),
        ({"prompt": "x", "max_tokens": 0}, openai.BadRequestError, "max_tokens", None),
        ({"prompt": "x", "temperature": 3}, openai.BadRequestError, "temperature", None),
        ({"prompt": "x", "n": 2}, openai.BadRequestError, "n", None),
        ({"prompt": "x", "logprobs": 2}, openai.BadRequestError, "logprobs", None),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, openai.BadRequestError, "stop", None),
        ({"prompt": "x" * 120, "max_tokens": 16}, openai.BadRequestError, "max_tokens", "context_length_exceeded"),
        ({"prompt": "x" * 200}, openai.BadRequestError, "prompt", "context_length_exceeded"),
        ({"prompt": "x" * 5000}, openai.APIStatusError, "prompt", None),
        ({"prompt": "x", "model": "gpt-4"}, openai.NotFoundError, "model", "model_not_found"),
    ],
)
def test_bad_requests_get_an_openai_error_and_the_server_keeps_serving(
    server: Running, kwargs: dict[str, Any], error: type[Exception], param: str, code: str | None
) -> None:
    api = client(server)
    with pytest.raises(error) as info:
        api.completions.create(**{"model": MODEL, **kwargs})
    body = info.value.body  # type: ignore[attr-defined]
    assert body["param"] == param and body["code"] == code and body["type"] == "invalid_request_error"
    assert api.completions.create(model=MODEL, prompt="ok", max_tokens=1, temperature=0).choices[0].text is not None


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"model": "chat", "prompt": 5}', 400, "prompt"),
        (b'{"model": "chat", "prompt": "x", "max_tokens": "3"}', 400, "max_tokens"),
        (b'{"model": "chat", "prompt": "x", "temperature": true}', 400, "temperature"),
        (b'{"model": "chat", "prompt": "x", "best_of": 2}', 400, "unsupported field"),
        (b'{"model": "chat", "prompt": "\\ud800"}', 400, "lone surrogate"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, 400, "nests deeper"),
        (b'{"model": "chat", "messages": []}', 400, "messages"),
    ],
)
def test_malformed_bodies_get_a_clear_4xx(server: Running, body: bytes, status: int, text: str) -> None:
    path = "/v1/chat/completions" if b"messages" in body else "/v1/completions"
    code, _, answer = raw(server, "POST", path, body, {"Content-Type": "application/json"})
    assert code == status and text in answer["error"]["message"]
    assert raw(server, "GET", "/healthz")[0] == 200


def test_unknown_paths_and_methods_get_json(server: Running) -> None:
    assert raw(server, "GET", "/v1/generate")[2]["error"]["code"] == "not_found"
    status, _, body = raw(server, "GET", "/v1/completions")
    assert status == 405 and "GET is not supported" in body["error"]["message"]


@pytest.mark.slow
def test_a_client_gone_mid_stream_frees_its_row(checkpoint: str) -> None:
    long = start(serve_job(checkpoint, max_new_tokens=100), host="127.0.0.1")
    try:
        conn = socket.create_connection(("127.0.0.1", long.port))
        body = json.dumps({"model": MODEL, "prompt": "Long", "max_tokens": 100, "stream": True}).encode()
        head = (
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        conn.sendall(head.encode() + body)
        seen = b""
        while b"data: " not in seen:
            seen += conn.recv(4096)
        conn.close()
        engine = long.state.engine
        deadline = time.monotonic() + 10
        while (engine.load().running or long.state.active) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.load().running == 0 and long.state.active == 0
        assert engine.stats.generated_tokens < 100, "generation stopped when the client left, not at max_tokens"
        assert client(long).completions.create(model=MODEL, prompt="again", max_tokens=2).choices[0].text is not None
    finally:
        long.drain()


@pytest.mark.slow
def test_a_full_cache_and_line_refuse_with_429_and_retry_after(checkpoint: str) -> None:
    tight = start(serve_job(checkpoint, max_batch_size=1, max_queue=1), host="127.0.0.1")
    try:
        statuses: list[tuple[int, dict[str, str]]] = []
        barrier = threading.Barrier(12)
        body = json.dumps({"model": MODEL, "prompt": "Busy", "max_tokens": 16}).encode()

        def ask() -> None:
            barrier.wait()
            status, headers, _ = raw(tight, "POST", "/v1/completions", body, {"Content-Type": "application/json"})
            statuses.append((status, headers))

        threads = [threading.Thread(target=ask) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(s for s, _ in statuses)
        assert 200 in codes and 429 in codes, codes
        assert all(h.get("retry-after") == "1" for s, h in statuses if s == 429)
    finally:
        tight.drain()


def test_the_engine_refuses_past_its_rows_and_line_and_while_draining() -> None:
    cfg = ModelConfig()
    engine = Engine(init_params(cfg, jax.random.key(0)), cfg, max_batch=1, max_waiting=1)
    quiet = Sampling(2, 0.0)
    engine.submit(Request([tokenizer.BOS, 65], quiet, lambda o: None))
    engine.submit(Request([tokenizer.BOS, 66], quiet, lambda o: None))
    with pytest.raises(EngineFullError):
        engine.submit(Request([tokenizer.BOS, 67], quiet, lambda o: None))
    engine.drain()
    with pytest.raises(EngineDrainingError):
        engine.submit(Request([tokenizer.BOS, 67], quiet, lambda o: None))


def test_the_engine_sizes_its_cache_from_the_budget_and_refuses_one_that_holds_no_request() -> None:
    cfg = ModelConfig()
    params = init_params(cfg, jax.random.key(0))
    row_gib = 2 * cfg.num_hidden_layers * cfg.max_position_embeddings * cfg.hidden_size * 4 / 2**30  # K, V in fp32
    assert Engine(params, cfg, max_batch=8, max_waiting=1, kv_cache_gib=2.5 * row_gib).slots == 2
    assert Engine(params, cfg, max_batch=8, max_waiting=1, kv_cache_gib=100 * row_gib).slots == 8
    with pytest.raises(ValueError, match=r"serve.kv_cache_gib .*: holds no request: one needs"):
        Engine(params, cfg, max_batch=8, max_waiting=1, kv_cache_gib=0.5 * row_gib)


@pytest.mark.slow
def test_a_token_guards_the_api_but_not_the_probes(checkpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVE_TOKEN_ENV, "s3cret")
    guarded = start(serve_job(checkpoint), host="127.0.0.1")
    try:
        with pytest.raises(openai.AuthenticationError):
            client(guarded, api_key="nope").completions.create(model=MODEL, prompt="hi", max_tokens=1)
        assert client(guarded, api_key="s3cret").completions.create(model=MODEL, prompt="hi", max_tokens=1).choices
        assert raw(guarded, "GET", "/readyz")[0] == 200 and raw(guarded, "GET", "/metrics")[0] == 200
    finally:
        guarded.drain()


# --- int8 -----------------------------------------------------------------------------------------

INT8_PERPLEXITY_BOUND = 1.01  # int8 may cost at most 1% perplexity on held-out text


def test_int8_weights_cost_little_perplexity(checkpoint: str) -> None:
    job = serve_job(checkpoint)
    params = load_params(job)
    quantized = quantize_int8(params)
    tokens = np.asarray(tokenizer.encode(held_out_text()), np.int32)
    full = perplexity(params, job.model, tokens, 64, np.float32)
    small = perplexity(quantized, job.model, tokens, 64, np.float32)
    assert full < 40, "the checkpoint learned something (a byte-level model that knows nothing scores ~260)"
    assert small / full < INT8_PERPLEXITY_BOUND, (full, small)
    matmuls = sum(weight_bytes(params["layers"][k]) for k in ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"))
    assert weight_bytes(quantized) < weight_bytes(params) - 0.7 * matmuls, "int8 matmul weights are a quarter of fp32"


@pytest.mark.slow
def test_the_server_answers_from_int8_weights(checkpoint: str) -> None:
    small = start(serve_job(checkpoint, quantization="int8"), host="127.0.0.1")
    try:
        answer = client(small).completions.create(model=MODEL, prompt="The module", max_tokens=6, temperature=0)
        assert answer.choices[0].finish_reason == "length" and answer.usage and answer.usage.completion_tokens == 6
        assert "int8" in small.state.engine.weight_dtypes
    finally:
        small.drain()


# --- drain ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_lets_streams_finish_refuses_new_work_and_exits(checkpoint: str, tmp_path: Path) -> None:
    local = LocalServer(serve_job(checkpoint, max_new_tokens=64, drain_timeout_s=20), tmp_path)
    api = openai.OpenAI(base_url=f"{local.url}/v1", api_key="x", max_retries=0)
    try:
        stream = api.completions.create(model=MODEL, prompt="Stream", max_tokens=64, temperature=0, stream=True)
        first = next(iter(stream))
        os.kill(local.group.procs[0].pid, signal.SIGTERM)
        time.sleep(0.2)
        with pytest.raises((openai.InternalServerError, openai.APIConnectionError)) as refused:
            api.completions.create(model=MODEL, prompt="late", max_tokens=2)
        if isinstance(refused.value, openai.InternalServerError):
            assert refused.value.status_code == 503
        rest = list(stream)
        assert rest[-1].choices[0].finish_reason == "length", "the stream in flight ran to its end"
        assert first.choices[0].text is not None
        local.group.procs[0].wait(timeout=30)
        assert local.group.returncodes() == [0]
    finally:
        local.stop()


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalRunError, match="no checkpoint at"):
        LocalServer(serve_job((tmp_path / "none").as_uri()), tmp_path)


# --- the engine against the model -----------------------------------------------------------------


def reference(params: Any, cfg: ModelConfig, prompt: list[int], n: int) -> list[int]:
    tokens = list(prompt)
    for _ in range(n):
        logits = forward(params, np.array([tokens]), np.arange(len(tokens))[None], cfg)
        row = np.array(logits[0, -1])
        row[tokenizer.PAD] = row[tokenizer.VOCAB_SIZE :] = -1e9
        tokens.append(int(row.argmax()))
    return tokens[len(prompt) :]


def test_continuous_batching_decodes_exactly_what_the_model_would() -> None:
    """Chunked prefill (16 tokens a chunk), requests joining a running batch, and a prefix reused from
    another request's row all give the tokens of the plain forward pass."""
    cfg = ModelConfig(max_position_embeddings=128)
    params = init_params(cfg, jax.random.key(1))
    engine = Engine(params, cfg, max_batch=4, max_waiting=8, prefill_chunk=16)
    engine.warm_up()
    engine.start()
    try:
        long = [int(t) for t in tokenizer.encode("The module provides functions for paths; it also says", bos=True)]
        prompts = [long, [int(t) for t in tokenizer.encode("A list", bos=True)], long[:40] + [ord(c) for c in " other"]]
        outputs = greedy(engine, prompts, 10, gap_s=0.2)
        for prompt, out in zip(prompts, outputs, strict=True):
            assert list(out.token_ids) == reference(params, cfg, prompt, len(out.token_ids))
        assert outputs[2].cached_tokens == 40, "the third prompt reused the first one's 40-token prefix"
    finally:
        engine.stop()


@pytest.mark.slow
def test_tensor_parallel_over_four_devices_matches_one(tmp_path: Path) -> None:
    """The weights and the KV cache sharded over four CPU devices' `tensor` axis decode the same tokens."""
    script = tmp_path / "tp.py"
    script.write_text(
        "import jax, json\n"
        "from meshstack.core.model_config import ModelConfig\n"
        "from meshstack.workloads.jax.model import init_params\n"
        "from tests.support.serving import greedy\n"
        "from meshstack.workloads.jax.engine.core import Engine\n"
        "from meshstack.workloads.jax import tokenizer\n"
        "cfg = ModelConfig(num_attention_heads=4)\n"
        "params = init_params(cfg, jax.random.key(3))\n"
        "out = {}\n"
        "for n in (1, 4):\n"
        "    engine = Engine(params, cfg, max_batch=2, max_waiting=4, devices=jax.devices()[:n])\n"
        "    engine.start()\n"
        "    prompts = [[int(t) for t in tokenizer.encode(p, bos=True)] for p in ('Sharded', 'over heads')]\n"
        "    out[n] = [o.token_ids for o in greedy(engine, prompts, 12)]\n"
        "    spec = engine.steps.params['layers']['wq'].sharding.spec\n"
        "    engine.stop()\n"
        "print(json.dumps({'same': out[1] == out[4], 'spec': str(spec), 'devices': len(jax.devices())}))\n"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"same": True, "spec": "P(None, None, 'tensor')", "devices": 4}
