"""meshstack's server on a cluster starts beside the training job that writes its checkpoint: it must
stay alive and unready until the checkpoint exists, then load it and serve, without a restart."""

from __future__ import annotations

import http.client
import json
import shutil
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from meshstack.core.contract import SERVER_COMMAND
from meshstack.workloads.local.processes import ProcessGroup, process_env, python_module
from tests.support.serving import MODEL, serve_job


def get(port: int, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def until_listening(port: int, deadline_s: float = 120) -> tuple[int, Any]:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return get(port, "/healthz")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.slow
def test_the_server_waits_alive_and_unready_for_its_checkpoint(checkpoint: str, tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    job = serve_job(target.as_uri()).model_copy(update={"wait_for_checkpoint": True, "checkpoint_poll_s": 0.2})
    port = job.serve.port
    group = ProcessGroup(python_module(SERVER_COMMAND), [process_env(job.model_dump_json(), 1)], tmp_path, "srv")
    try:
        assert until_listening(port)[0] == 200, "alive: the kubelet's liveness and startup probes pass"
        events = []
        while not any(e.get("event") == "waiting" for e in events):
            events.append(group.events.get(timeout=120))
        status, body = get(port, "/readyz")
        assert status == 503 and "waiting for the checkpoint" in body["error"]["message"]
        status, body = get(port, "/v1/models")
        assert status == 503 and set(body["error"]) == {"message", "type", "param", "code"}
        time.sleep(1)
        assert group.returncodes() == [None], "no checkpoint yet is not a reason to exit"
        # The training job's first save, appearing whole as orbax commits a step (a rename into place): a
        # copy made in place would show the server a step half written, which no trainer leaves.
        shutil.copytree(Path(checkpoint.removeprefix("file://")), tmp_path / "ckpt.writing")
        (tmp_path / "ckpt.writing").rename(target)
        while True:
            event = group.events.get(timeout=180)
            assert event is not None, "the server exited instead of loading the checkpoint"
            if event.get("event") == "serving":
                break
        assert get(port, "/readyz")[0] == 200
        api = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        answer = api.completions.create(model=MODEL, prompt="The module", max_tokens=4, temperature=0)
        assert answer.choices[0].text
    finally:
        group.stop()


def test_without_waiting_a_missing_checkpoint_still_exits_at_once(tmp_path: Path) -> None:
    job = serve_job((tmp_path / "none").as_uri())
    group = ProcessGroup(python_module(SERVER_COMMAND), [process_env(job.model_dump_json(), 1)], tmp_path, "srv")
    try:
        group.procs[0].wait(timeout=120)
    finally:
        group.stop()
    assert group.returncodes() == [2]
    assert "no checkpoint at" in group.logs[0].read_text()
