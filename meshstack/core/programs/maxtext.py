"""MaxText as a training program: its own train command, with the keys meshstack knows rendered from the spec.

The key names, the module and the config path are MaxText's own at the pinned release
(maxtext_base.yaml, extracted from its base.yml); MaxText refuses a key it does not have, so
meshstack refuses it first, at validation, naming the key.

The storage URIs are not written into the command: they reach it through Kubernetes' `$(VAR)`
expansion of the contract's MESHSTACK_CHECKPOINT_URI and MESHSTACK_DATA_URI, so the command a
reviewer reads in a manifest is the command that runs, and the local runner expands it the same way.
"""

from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshstack.core.contract import CHECKPOINT_URI_ENV, DATA_URI_ENV, MeshConfig, TrainConfig
from meshstack.core.validation import field_error
from meshstack.core.vendors import VENDORS

FACTS = Path(__file__).with_name("maxtext_base.yaml")
# The mesh axes meshstack's spec has, as MaxText names them.
AXES = {"data": "data", "fsdp": "fsdp", "tensor": "tensor"}
# Keys meshstack renders from the spec: set them there (train, mesh, checkpoints, data), not in `maxtext`.
FROM_SPEC = frozenset(
    {
        "run_name",
        "base_output_directory",
        "dataset_path",
        "steps",
        "per_device_batch_size",
        "max_target_length",
        "learning_rate",
        "warmup_steps_fraction",
        "checkpoint_period",
        "enable_checkpointing",
        "hardware",
        *(f"{layer}_{axis}_parallelism" for layer in ("ici", "dcn") for axis in AXES.values()),
    }
)


@dataclass(frozen=True)
class MaxTextFacts:
    source: dict[str, str]
    command: list[str]
    keys: frozenset[str]


@functools.cache
def facts() -> MaxTextFacts:
    raw = yaml.safe_load(FACTS.read_text())
    return MaxTextFacts(
        {k: str(v) for k, v in raw["source"].items()}, [str(c) for c in raw["command"]], frozenset(raw["keys"])
    )


def check_overrides(overrides: dict[str, Any]) -> None:
    """Each key must be one of MaxText's own, and not one the spec already sets."""
    known = facts()
    for key in overrides:
        if key in FROM_SPEC:
            raise field_error(f"maxtext.{key}", f"'{key}' is rendered from the spec (train, mesh, data, checkpoints)")
        if key not in known.keys:
            close = difflib.get_close_matches(key, sorted(known.keys), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise field_error(
                f"maxtext.{key}",
                f"MaxText {known.source['tag']} has no config key '{key}' (src/maxtext/configs/base.yml){hint}",
            )


def split_mesh(mesh: MeshConfig, within: int, across: int) -> tuple[dict[str, int], dict[str, int]]:
    """The mesh as MaxText's ICI axes (inside a host, or a TPU slice) and DCN axes (between them).

    Tensor parallelism stays on the fast interconnect, fsdp fills what remains of it, data
    parallelism goes between hosts first: the layout MaxText's own recipes use.
    """
    ici = {"tensor": mesh.tensor, "fsdp": 1, "data": 1}
    if within % mesh.tensor:
        raise ValueError(f"mesh.tensor {mesh.tensor} does not divide the {within} devices a host or slice holds")
    room = within // mesh.tensor
    ici["fsdp"] = math.gcd(mesh.fsdp, room)
    room //= ici["fsdp"]
    ici["data"] = math.gcd(mesh.data, room)
    room //= ici["data"]
    if room != 1:
        raise ValueError(f"the mesh cannot fill the {within} devices of a host or slice with whole axes")
    dcn = {"tensor": 1, "fsdp": mesh.fsdp // ici["fsdp"], "data": mesh.data // ici["data"]}
    if math.prod(dcn.values()) != across:
        raise ValueError(f"the mesh's axes across hosts multiply to {math.prod(dcn.values())}, not {across}")
    return ici, dcn


def _value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def command(
    run_name: str,
    train: TrainConfig,
    mesh: MeshConfig,
    vendor: str,
    within: int,
    across: int,
    overrides: dict[str, Any],
) -> list[str]:
    """MaxText's train command: `within` devices per host (per slice on TPU), `across` hosts (slices)."""
    ici, dcn = split_mesh(mesh, within, across)
    devices = within * across
    keys: dict[str, object] = {
        "run_name": run_name,
        "base_output_directory": f"$({CHECKPOINT_URI_ENV})",
        "dataset_path": f"$({DATA_URI_ENV})",
        "hardware": VENDORS[vendor].maxtext_hardware,
        "steps": train.steps,
        "per_device_batch_size": train.global_batch / devices,
        "max_target_length": train.seq_len,
        "learning_rate": train.learning_rate,
        "warmup_steps_fraction": round(train.warmup_steps / train.steps, 6),
        "checkpoint_period": train.checkpoint_every,
        "enable_checkpointing": True,
        **{f"ici_{AXES[a]}_parallelism": n for a, n in ici.items()},
        **{f"dcn_{AXES[a]}_parallelism": n for a, n in dcn.items()},
        **VENDORS[vendor].maxtext_keys,
        **overrides,
    }
    return [*facts().command, *(f"{key}={_value(value)}" for key, value in keys.items())]


def environment(vendor: str, coordinator_host: str, coordinator_port: int, processes: int) -> dict[str, str]:
    """What MaxText's GPU start-up reads (max_utils.initialize_jax_for_gpu) beside the JAX contract:
    the coordinator as host and port, the node count; NODE_RANK comes from the pod's index."""
    if not VENDORS[vendor].maxtext_coordinator_env:
        return {}
    return {
        "JAX_COORDINATOR_IP": coordinator_host,
        "JAX_COORDINATOR_PORT": str(coordinator_port),
        "NNODES": str(processes),
    }
