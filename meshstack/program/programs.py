"""What a training pod runs: meshstack's own trainer, MaxText's train command, or the user's command.

Every program gets the same environment contract from the TrainingJob; this module decides only
the command line, the program's own variables and (for meshstack's trainer) its job config.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import pulumi

from meshstack.core.contract import TRAINER_COMMAND, JobConfig
from meshstack.core.programs import maxtext
from meshstack.core.spec import TrainingWorkload
from meshstack.workloads.k8s.pod import Placement
from meshstack.workloads.k8s.training_job import coordinator_host


@dataclass(frozen=True)
class TrainingProgram:
    command: list[str]
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    job_config: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class ProgramContext:
    """Where the program runs: its placement, hosts and storage URIs."""

    workload: TrainingWorkload
    placement: Placement
    data_uri: pulumi.Output[str] | None
    checkpoint_uri: pulumi.Output[str] | None
    peak_tflops: float | None
    metrics_port: int | None
    init_from_uri: pulumi.Output[str] | None = None


def _job_config(ctx: ProgramContext, uris: list[str]) -> str:
    w = ctx.workload
    return JobConfig(
        name=w.name,
        model=w.model,
        mesh=w.mesh,
        train=w.train,
        data_uri=uris[0],
        checkpoint_uri=uris[1],
        init_from_uri=uris[2],
        peak_tflops_per_device=ctx.peak_tflops,
        metrics_port=ctx.metrics_port,
    ).model_dump_json()


def meshstack_trainer(ctx: ProgramContext) -> TrainingProgram:
    config = pulumi.Output.all(ctx.data_uri, ctx.checkpoint_uri, ctx.init_from_uri).apply(
        functools.partial(_job_config, ctx)
    )
    return TrainingProgram(list(TRAINER_COMMAND), env=dict(ctx.workload.env), job_config=config)


def maxtext_trainer(ctx: ProgramContext) -> TrainingProgram:
    w, pool = ctx.workload, ctx.placement.pool
    tpu = pool.tpu
    vendor = pool.accelerator.vendor
    # ICI inside a host (a TPU slice), DCN between hosts (slices)
    if tpu is not None:
        within, across = tpu.hosts * pool.accelerators_per_node, tpu.slices
    else:
        within, across = max(ctx.placement.devices, 1), w.processes
    argv = maxtext.command(w.name, w.train, w.mesh, vendor, within, across, w.maxtext)
    host = coordinator_host(w.name, w.use_jobset)
    env = {**maxtext.environment(vendor, host, w.coordinator_port, w.processes), **w.env}
    return TrainingProgram(argv, env=env)


def custom_program(ctx: ProgramContext) -> TrainingProgram:
    w = ctx.workload
    return TrainingProgram(list(w.command or ()), list(w.args), dict(w.env))


PROGRAMS: dict[str, Callable[[ProgramContext], TrainingProgram]] = {
    "meshstack": meshstack_trainer,
    "maxtext": maxtext_trainer,
    "custom": custom_program,
}


def training_program(ctx: ProgramContext) -> TrainingProgram:
    return PROGRAMS["custom" if ctx.workload.custom else ctx.workload.program](ctx)
