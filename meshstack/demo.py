"""`meshstack demo`: everything meshstack does, for real, on one machine with no cloud account.

Validate and preview the dev stack offline (resources, policy, cost), train its
model as several local processes under the multi-host contract, serve the
checkpoint and ask it questions, then write a report. Whatever fails says which
step and what to do, and nothing is left running.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from meshstack.core import observability as names
from meshstack.core.errors import MeshstackError
from meshstack.core.observability import SERVING_PANELS, TRAINING_PANELS
from meshstack.core.stack_file import Project, find_project
from meshstack.core.workspace import claim, clear
from meshstack.preview.plan import Preview, preview_stack
from meshstack.preview.render import energy_line, markdown, policy_line, usd
from meshstack.report import charts
from meshstack.report.page import Answer, render
from meshstack.workloads.local import LocalServer, TrainResult, free_port, run_stack

PROMPTS = ("The module", "A list of", "Return the", "This function")
TEMPERATURE = 0.7  # greedy decoding from a small model repeats itself
JSON = {"Content-Type": "application/json"}
T = TypeVar("T")


class DemoError(MeshstackError):
    """A demo step failed; the message names the step and what to do."""


@dataclass
class DemoResult:
    preview: Preview
    training: list[TrainResult]
    answers: list[Answer]
    serving: dict[str, list[tuple[float, float]]]  # what the server's /metrics said while it answered
    files: dict[str, Path]
    elapsed_s: float


def _step(number: int, title: str, hint: str, action: Callable[[], T], out: TextIO) -> T:
    out.write(f"\n== {number}. {title}\n")
    out.flush()
    try:
        return action()
    except MeshstackError as exc:
        raise DemoError(f"step {number} ({title}) failed: {exc}. {hint}") from exc
    except OSError as exc:
        raise DemoError(f"step {number} ({title}) failed: {exc}. {hint}") from exc


def _summary(preview: Preview, out: TextIO) -> None:
    by_component: Counter[str] = Counter()
    urns = {r.urn: r for r in preview.resources}
    for r in preview.custom_resources:
        parent = urns.get(r.parent)
        by_component[f"{parent.type} {parent.name}" if parent else "(stack)"] += 1
    for component, count in sorted(by_component.items()):
        out.write(f"  {count:3d}  {component}\n")
    cost = preview.cost
    out.write(
        f"  {len(preview.custom_resources)} resources; cost running its workloads {usd(cost.running_hourly_usd)}/hour "
        f"({usd(cost.running_monthly_usd)}/month, each training run once), idle {usd(cost.idle_hourly_usd)}/hour, "
        f"as declared {usd(cost.hourly_usd)}/hour, at max size {usd(cost.peak_hourly_usd)}/hour\n"
        f"  energy: {energy_line(cost.energy)}\n"
    )
    out.write(f"  policy: {policy_line(preview)}\n")


def ask(server: LocalServer, prompts: tuple[str, ...], max_new_tokens: int) -> list[Answer]:
    """Send every prompt at once, streamed, as an OpenAI client would: the engine decodes them
    together, and each answer's first token shows when it came."""
    answers: list[Answer | None] = [None] * len(prompts)
    failures: list[str] = []

    def one(i: int, prompt: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        try:
            began = time.perf_counter()
            payload = {
                "model": server.model,
                "prompt": prompt,
                "max_tokens": max_new_tokens,
                "temperature": TEMPERATURE,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            conn.request("POST", "/v1/completions", body=json.dumps(payload), headers=JSON)
            response = conn.getresponse()
            if response.status != 200:
                error = json.loads(response.read()).get("error", {})
                failures.append(f"'{prompt}': HTTP {response.status} {error.get('message')}")
                return
            text, first, tokens = "", None, 0
            for line in response:
                if not line.startswith(b"data: {"):
                    continue
                chunk: dict[str, Any] = json.loads(line[6:])
                if chunk["choices"]:
                    first = first if first is not None else time.perf_counter() - began
                    text += chunk["choices"][0]["text"]
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
            elapsed = time.perf_counter() - began
            answers[i] = Answer(prompt, text, elapsed * 1000, (first or elapsed) * 1000, tokens)
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            failures.append(f"'{prompt}': {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(prompts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise MeshstackError("the server did not answer: " + "; ".join(failures))
    return [a for a in answers if a is not None]


class MetricsSampler:
    """Reads the server's /metrics, with Prometheus' own parser, while the demo's requests run: the
    serving panels' gauges and rates over those moments (a scrape every `interval_s`, not every
    15 s as a Prometheus would: the requests last a fraction of a second)."""

    def __init__(self, port: int, interval_s: float = 0.01) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval_s = interval_s
        self.series: dict[str, list[tuple[float, float]]] = {}
        self._began = 0.0  # when the requests begin: on entering
        self._last: tuple[float, dict[str, float]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-sampler", daemon=True)

    def __enter__(self) -> MetricsSampler:
        self._began = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # the state once every answer is in

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return  # a missed scrape is a gap in the chart, as in Prometheus
        now = time.perf_counter() - self._began
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value

        def add(field: str, value: float) -> None:
            self.series.setdefault(field, []).append((now, value))

        add("running", values.get(names.SERVE_RUNNING, 0.0))
        add("waiting", values.get(names.SERVE_QUEUE, 0.0))
        add("kv_usage", values.get(names.SERVE_KV_USAGE, 0.0))
        add("prefix_hit_ratio", values.get(names.SERVE_PREFIX_HIT_RATIO, 0.0))
        if self._last is not None:
            then, before = self._last

            def grew(name: str) -> float:
                return values.get(name, 0.0) - before.get(name, 0.0)

            add("tokens_per_s", grew(f"{names.SERVE_GENERATED_TOKENS}_total") / max(now - then, 1e-9))
            steps = grew(f"{names.SERVE_BATCH}_count")
            if steps:
                add("batch", grew(f"{names.SERVE_BATCH}_sum") / steps)
        self._last = (now, values)


def run_demo(
    out_dir: Path,
    stack: str = "dev",
    steps: int | None = None,
    processes: int = 2,
    prompts: tuple[str, ...] = PROMPTS,
    out: TextIO = sys.stdout,
    project: Project | None = None,
) -> DemoResult:
    began = time.perf_counter()
    claim(out_dir, "--out")
    work = clear(out_dir / "work", "--out")
    project = project or find_project()

    preview = _step(
        1,
        f"Validate and preview stack '{stack}' offline",
        "Fix the stack file at the field named.",
        lambda: preview_stack(stack, project),
        out,
    )
    _summary(preview, out)
    server: LocalServer | None = None
    try:
        results, server = _step(
            2,
            "Train its workloads on this machine, then start its inference service",
            f"Each process's log is in {work / 'logs'}.",
            lambda: run_stack(preview.spec, work, processes, steps, free_port(), out),
            out,
        )
        if server is None:
            raise DemoError(f"stack '{stack}' has no inference workload to serve")
        max_new = min(32, next(w.serve.max_new_tokens for w in preview.spec.workloads if w.kind == "inference"))
        with MetricsSampler(server.port) as sampler:
            answers = _step(
                3,
                "Ask the served model, all prompts at once",
                f"The server's log is in {work / 'logs'}.",
                lambda: ask(server, prompts, max_new),
                out,
            )
        for a in answers:
            timing = f"{a.tokens} tokens in {a.latency_ms:.0f} ms, first {a.ttft_ms:.0f} ms"
            out.write(f"  {a.prompt!r} -> {a.text!r}  ({timing})\n")
    finally:
        if server is not None:
            server.stop()

    def report() -> dict[str, Path]:
        steps = [e for e in results[0].events if e.get("event") == "step"] if results else []
        curve = [(e["step"], e["loss"]) for e in steps]
        training = {
            field: [(e["step"], e[field]) for e in steps if e.get(field) is not None]
            for field in {p.local_field for p in TRAINING_PANELS if p.local_field}
        }
        serving: dict[str, list[tuple[float, float]]] = {
            "latency_s": [(i + 1.0, a.latency_ms / 1000) for i, a in enumerate(answers)],
            "ttft_s": [(i + 1.0, a.ttft_ms / 1000) for i, a in enumerate(answers)],
            **sampler.series,
        }
        files = {
            "json": out_dir / "preview.json",
            "markdown": out_dir / "preview.md",
            "topology": charts.topology(preview.spec, out_dir / "topology.png"),
            "cost": charts.cost_breakdown(preview.cost, out_dir / "cost.png"),
            "training": charts.panels(
                "Training: the dashboard's panels, from the local run",
                TRAINING_PANELS,
                training,
                "step",
                out_dir / "training.png",
                {"mfu": "MFU needs the accelerator's catalog peak: none for this CPU"},
            ),
            "serving": charts.panels(
                "Serving: the dashboard's panels, from the demo's requests",
                SERVING_PANELS,
                serving,
                "seconds into the requests",
                out_dir / "serving.png",
                x_labels={"latency_s": "request", "ttft_s": "request"},
            ),
        }
        files["json"].write_text(json.dumps(preview.to_json(), indent=2, sort_keys=True))
        files["markdown"].write_text(markdown(preview))
        files["html"] = out_dir / "report.html"
        files["html"].write_text(render(preview, files, curve, answers, time.perf_counter() - began))
        return files

    files = _step(4, f"Write the report to {out_dir}", "Check that the directory is writable.", report, out)
    for kind, path in files.items():
        out.write(f"  {kind:9s} {path}\n")
    elapsed = time.perf_counter() - began
    out.write(f"\nDone in {elapsed:.0f} s; nothing is left running. Open {files['html']}\n")
    return DemoResult(preview, results, answers, sampler.series, files, elapsed)
