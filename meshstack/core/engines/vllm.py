"""vLLM's OpenAI-compatible server as an inference engine: its settings, and the command line it is given.

Every flag meshstack renders, and every flag a stack passes in `vllm.extra_args`, is one that
vLLM's own argument parser has at the pinned release (vllm_flags.yaml, with its tag), so a stack
that validates starts a server that does not exit on an unknown argument.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, field_validator

from meshstack.core.validation import SpecModel, field_error

FACTS = Path(__file__).with_name("vllm_flags.yaml")


@dataclass(frozen=True)
class VllmFacts:
    """What the pinned release has: its images, entry point, endpoints, metrics and flags."""

    source: dict[str, str]
    entrypoint: list[str]
    images: dict[str, str]
    port: int
    health_path: str
    metrics_path: str
    metrics: dict[str, str]
    object_storage_load_format: str
    object_storage_schemes: frozenset[str]
    quantization: frozenset[str]
    flags: frozenset[str]


@functools.cache
def facts() -> VllmFacts:
    raw = yaml.safe_load(FACTS.read_text())
    return VllmFacts(
        source={k: str(v) for k, v in raw["source"].items() if not isinstance(v, list)},
        entrypoint=[str(c) for c in raw["entrypoint"]],
        images={k: str(v) for k, v in raw["images"].items()},
        port=int(raw["port"]),
        health_path=str(raw["health_path"]),
        metrics_path=str(raw["metrics_path"]),
        metrics={k: str(v) for k, v in raw["metrics"].items()},
        object_storage_load_format=str(raw["object_storage_load_format"]),
        object_storage_schemes=frozenset(raw["object_storage_schemes"]),
        quantization=frozenset(raw["quantization"]),
        flags=frozenset(raw["flags"]),
    )


VLLM_PORT = facts().port
# Flags meshstack sets from the spec; `extra_args` may not set them a second time.
RENDERED = frozenset(
    {
        "--served-model-name",
        "--tensor-parallel-size",
        "--max-model-len",
        "--max-num-seqs",
        "--gpu-memory-utilization",
        "--quantization",
        "--dtype",
        "--host",
        "--port",
        "--load-format",
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "--disable-prefix-caching",
        "--api-key",
    }
)


class VllmConfig(SpecModel):
    """vLLM's own settings for one inference service."""

    max_model_len: int | None = Field(
        default=None,
        ge=16,
        description="Longest prompt plus completion (--max-model-len); model.max_position_embeddings else.",
    )
    max_num_seqs: int = Field(
        default=64, ge=1, description="Sequences decoded together at most (--max-num-seqs); KEDA's target too."
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=0.98, description="Share of accelerator memory vLLM takes for weights and KV cache."
    )
    quantization: str | None = Field(default=None, description="vLLM's --quantization method (fp8, awq, gptq, ...).")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="Weights and activations (--dtype); auto: the checkpoint's own."
    )
    prefix_caching: bool = Field(default=True, description="Reuse the KV of shared prompt prefixes.")
    extra_args: list[str] = Field(
        default_factory=list,
        description="Further `vllm serve` arguments (`--flag value` or `--flag=value`), checked against vLLM's "
        "own parser at the pinned release.",
    )

    @field_validator("quantization")
    @classmethod
    def _quantization(cls, method: str | None) -> str | None:
        allowed = facts().quantization
        if method is not None and method not in allowed:
            choices = ", ".join(sorted(allowed))
            raise field_error("", f"vLLM {facts().source['tag']} has no quantization '{method}': {choices}")
        return method

    @field_validator("extra_args")
    @classmethod
    def _extra(cls, args: list[str]) -> list[str]:
        known = facts()
        for i, arg in enumerate(args):
            if not arg.startswith("--"):
                continue
            flag = arg.split("=", 1)[0]
            if flag in RENDERED:
                raise field_error(f"[{i}]", f"{flag} is set from the spec; change the field it comes from instead")
            if flag not in known.flags:
                raise field_error(f"[{i}]", f"vLLM {known.source['tag']} has no flag {flag}")
        return args


@dataclass(frozen=True)
class VllmLaunch:
    """One replica's server: `model` is the folder's URI or a Hub name; `devices` its tensor parallelism."""

    served_name: str
    model: str
    from_bucket: bool
    devices: int
    max_model_len: int | None
    port: int


def serve_args(config: VllmConfig, launch: VllmLaunch) -> list[str]:
    """`vllm serve`'s arguments (after the image's entry point): weights in a bucket are streamed by
    vLLM's object-storage loader, with the pod's own cloud identity."""
    args = [
        launch.model,
        "--served-model-name",
        launch.served_name,
        "--host",
        "0.0.0.0",
        "--port",
        str(launch.port),
        "--tensor-parallel-size",
        str(max(launch.devices, 1)),
        "--max-num-seqs",
        str(config.max_num_seqs),
        "--gpu-memory-utilization",
        str(config.gpu_memory_utilization),
        "--dtype",
        config.dtype,
        "--enable-prefix-caching" if config.prefix_caching else "--disable-prefix-caching",
    ]
    if launch.max_model_len is not None:
        args += ["--max-model-len", str(launch.max_model_len)]
    if config.quantization is not None:
        args += ["--quantization", config.quantization]
    if launch.from_bucket:
        args += ["--load-format", facts().object_storage_load_format]
    return [*args, *config.extra_args]
