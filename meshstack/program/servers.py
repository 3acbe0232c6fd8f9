"""What an inference pod runs: meshstack's server, vLLM's OpenAI server, or the user's own server.

Each engine is one function from the workload to the container the InferenceService renders:
its command, variables, port, probes, metrics and the gauges KEDA scales on. Adding an engine is
one function here, its settings in meshstack/core/engines/, and its name in the spec's `engine`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi

from meshstack.core import sizing
from meshstack.core.contract import JOB_CONFIG_ENV, SERVE_TOKEN_ENV, SERVER_COMMAND, ServeJobConfig
from meshstack.core.engines import ENGINE_START_S, startup_seconds, vllm
from meshstack.core.observability import SERVE_IN_FLIGHT
from meshstack.core.spec import InferenceWorkload
from meshstack.workloads.k8s.inference_service import ServerContainer
from meshstack.workloads.k8s.pod import Placement

HF_TOKEN_ENV = "HF_TOKEN"
VLLM_API_KEY_ENV = "VLLM_API_KEY"
# vLLM, torch and Triton write caches under $HOME; the root file system is read-only and /tmp is not.
WRITABLE_HOME = {"HOME": "/tmp", "HF_HOME": "/tmp/huggingface", "XDG_CACHE_HOME": "/tmp/.cache"}


@dataclass(frozen=True)
class ServingContext:
    workload: InferenceWorkload
    placement: Placement
    weights_uri: pulumi.Output[str] | None  # the checkpoint or model folder in the stack's storage
    trained_here: bool  # the weights come from a training job of this same stack


def secret_env(name: str, secret: str | None) -> list[dict[str, Any]]:
    if secret is None:
        return []
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}}]


def user_env(workload: InferenceWorkload, extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [{"name": k, "value": v} for k, v in {**(extra or {}), **workload.env}.items()]


def weights_gib(workload: InferenceWorkload, precision: str = "bf16") -> float:
    """The stack's figure, else the model's shape at the precision it is served in."""
    if workload.weights_gib is not None:
        return workload.weights_gib
    return sizing.weights_bytes(sizing.of_model(workload.model), precision) / sizing.GIB


def _serve_config(workload: InferenceWorkload, wait: bool, checkpoint_uri: str) -> str:
    return ServeJobConfig(
        name=workload.name,
        model=workload.model,
        serve=workload.serve,
        checkpoint_uri=checkpoint_uri,
        wait_for_checkpoint=wait,
    ).model_dump_json()


def meshstack_server(ctx: ServingContext) -> ServerContainer:
    """meshstack's server answers /healthz while it waits for its checkpoint and loads it, and turns
    ready only then: a training job of the same stack writes that checkpoint hours into the `up`."""
    w = ctx.workload
    assert ctx.weights_uri is not None
    config = ctx.weights_uri.apply(functools.partial(_serve_config, w, ctx.trained_here))
    precision = "int8" if w.serve.quantization == "int8" else "bf16"
    return ServerContainer(
        command=list(SERVER_COMMAND),
        env=[{"name": JOB_CONFIG_ENV, "value": config}, *secret_env(SERVE_TOKEN_ENV, w.token_secret), *user_env(w)],
        port=w.serve.port,
        in_flight_metrics=[SERVE_IN_FLIGHT],
        startup_seconds=startup_seconds(weights_gib(w, precision), "bucket"),
        await_ready=not ctx.trained_here,
    )


def vllm_server(ctx: ServingContext) -> ServerContainer:
    w = ctx.workload
    known = vllm.facts()
    limit = w.vllm.max_model_len or (w.model.max_position_embeddings if w.model_given else None)
    port = w.server_port
    launch = functools.partial(
        vllm.VllmLaunch,
        w.name,
        from_bucket=ctx.weights_uri is not None,
        devices=ctx.placement.devices,
        max_model_len=limit,
        port=port,
    )
    args: pulumi.Input[list[str]]
    if ctx.weights_uri is not None:
        args = ctx.weights_uri.apply(lambda uri: vllm.serve_args(w.vllm, launch(model=uri)))
    else:
        args = vllm.serve_args(w.vllm, launch(model=str(w.hf_model)))
    source = "bucket" if ctx.weights_uri is not None else "hub"
    return ServerContainer(
        command=list(known.entrypoint),
        args=args,
        env=[
            *secret_env(VLLM_API_KEY_ENV, w.token_secret),
            *secret_env(HF_TOKEN_ENV, w.hf_token_secret),
            *user_env(w, WRITABLE_HOME),
        ],
        port=port,
        health_path=known.health_path,
        ready_path=known.health_path,
        metrics_path=known.metrics_path,
        in_flight_metrics=[known.metrics["running"], known.metrics["waiting"]],
        startup_seconds=startup_seconds(weights_gib(w), source),
    )


def custom_server(ctx: ServingContext) -> ServerContainer:
    w = ctx.workload
    path = str(w.health_path)
    size = weights_gib(w) if (w.weights_gib is not None or w.model_given) else 0.0
    return ServerContainer(
        command=list(w.command or ()),
        args=list(w.args),
        env=[*secret_env(SERVE_TOKEN_ENV, w.token_secret), *user_env(w)],
        port=w.server_port,
        health_path=path,
        ready_path=path,
        metrics_path=w.metrics_path,
        in_flight_metrics=[w.in_flight_metric] if w.in_flight_metric else [],
        startup_seconds=startup_seconds(size, "image") if size else 2 * ENGINE_START_S,
    )


ENGINES: dict[str, Callable[[ServingContext], ServerContainer]] = {
    "meshstack": meshstack_server,
    "vllm": vllm_server,
    "custom": custom_server,
}


def server_container(ctx: ServingContext) -> ServerContainer:
    return ENGINES[ctx.workload.engine](ctx)


def server_image(ctx: ServingContext) -> str:
    """The stack's image, else vLLM's pinned GPU image (validation requires one for the other engines
    and for vLLM on TPUs, which the pinned release publishes no image for)."""
    if ctx.workload.image is not None:
        return ctx.workload.image
    return vllm.facts().images["gpu"]
