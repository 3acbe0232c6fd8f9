"""How fast the offline preview is, against two floors nobody here can make faster.

1. End to end: `meshstack preview --stack STACK` as a process, against a process that only imports the
   Pulumi SDK classes of the resource types that stack declares (read from the providers' own module
   tables), which any program declaring them pays. Target: at most 1.5x.
2. Replay: a generated stack of 8 clusters x 8 node pools previewed in process (program, cost, policy),
   against a replay of exactly the resources it recorded (same types, names, parents and inputs,
   registered directly through the provider SDKs' classes, with none of meshstack's components, spec
   or outputs) under the same mock runtime. Target: at most 1.5.
3. Growth: preview time from 1 to 64 clusters (2 node pools each), which should be linear.

Every figure is a median of --repeat runs made in this one run, so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
from pulumi import _types as pulumi_types

from meshstack.core.catalog import load_catalog
from meshstack.core.stack_file import PROJECT_ROOT, spec_from_runtime
from meshstack.cost import estimate, handed_over
from meshstack.preview.policy_runner import evaluate
from meshstack.preview.recorder import Resource, run_program
from meshstack.program.build import build

ACCELERATORS = [
    ("h100", 8, "capacity-block"),
    ("a100", 8, "on-demand"),
    ("l40s", 4, "spot"),
    ("l4", 1, "spot"),
    ("a10g", 4, "spot"),
    ("trainium1", 16, "on-demand"),
    ("trainium2", 16, "on-demand"),
    ("cpu", None, "on-demand"),
]
PROVIDERS = {"aws": "pulumi_aws", "gcp": "pulumi_gcp", "kubernetes": "pulumi_kubernetes"}


def generated_config(clusters: int = 8, pools: int = 8) -> dict[str, Any]:
    def pool(j: int) -> dict[str, Any]:
        accelerator, per_node, market = ACCELERATORS[j % len(ACCELERATORS)]
        spec: dict[str, Any] = {"name": f"pool{j}", "accelerator": accelerator, "max_nodes": 4, "market": market}
        if per_node is None:
            spec["instance_type"] = "m7i.2xlarge"
        else:
            spec["accelerators_per_node"] = per_node
        if market == "capacity-block":  # a block places its instances itself: no placement group
            spec.update(reservation_id="cr-0123456789abcdef0", efa=True, zone="use1-az2")
        elif accelerator == "a100":  # p4d: EFA in a cluster placement group
            spec.update(efa=True, placement_group=True)
        return spec

    return {
        "aws:region": "us-east-1",
        "meshstack:environment": "prod",
        "meshstack:tags": {"team": "bench", "project": "bench", "cost-center": "0"},
        "meshstack:network": {
            "vpc_cidr": "10.0.0.0/16",
            "availability_zones": 3,
            "zones": ["use1-az1", "use1-az2", "use1-az6"],  # where p4d is offered
            "nat_gateways": "per-az",
        },
        "meshstack:clusters": [
            {"name": f"c{i}", "kubernetes_version": "1.35", "node_pools": [pool(j) for j in range(pools)]}
            for i in range(clusters)
        ],
        "meshstack:storage": {
            "buckets": [{"name": f"b{i}"} for i in range(4)],
            "lustre": [{"name": "scratch", "capacity_gib": 2400, "throughput_per_tib": 250, "s3_bucket": "b0"}],
            "efs": [{"name": "home"}],
        },
    }


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def provider_classes() -> dict[str, tuple[str, str]]:
    """type token -> (module, class), from each provider SDK's own resource module table."""
    table: dict[str, tuple[str, str]] = {}
    for package in PROVIDERS.values():
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None
        source = Path(spec.origin).read_text()
        for module in json.loads(source.split('resource_modules="""', 1)[1].split('"""', 1)[0]):
            table.update({token: (module["fqn"], name) for token, name in module["classes"].items()})
    return table


def import_floor_code(types: set[str]) -> str:
    """A program that imports the SDK class of every provider type in `types` and does nothing else."""
    classes = provider_classes()
    lines = ["import importlib"]
    for token in sorted(types):
        package = token.split(":", 1)[0]
        if token.startswith("pulumi:providers:"):
            where = (PROVIDERS[token.rsplit(":", 1)[1]], "Provider")
        elif token in classes:
            where = classes[token]
        elif package == "kubernetes":  # a custom resource (JobSet, NodePool...): the generic class
            where = ("pulumi_kubernetes.apiextensions", "CustomResource")
        else:
            continue  # meshstack's own component types
        lines.append(f"getattr(importlib.import_module({where[0]!r}), {where[1]!r})")
    return "\n".join(lines)


def end_to_end(stack: str, repeat: int) -> None:
    cli = [sys.executable, "-m", "meshstack.cli", "preview", "--stack", stack]
    recorded = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True, check=False).stdout)
    floor = [sys.executable, "-c", import_floor_code({r["type"] for r in recorded["resources"]})]

    def run(command: list[str]) -> None:
        subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, check=True)

    t_preview = median_seconds(functools.partial(run, cli), repeat)
    t_floor = median_seconds(functools.partial(run, floor), repeat)
    print(f"[end to end] meshstack preview --stack {stack}: {t_preview:.2f} s")
    print(f"[end to end] importing the SDK classes of its {len(recorded['resources'])} resources: {t_floor:.2f} s")
    print(f"[end to end] ratio preview/import floor: {t_preview / t_floor:.2f} (target <= 1.5)")


def meshstack_program() -> None:
    build(spec_from_runtime())


@functools.cache
def resource_class(token: str) -> tuple[type[pulumi.CustomResource], dict[str, str]] | None:
    """The provider SDK's class for a type token, and its wire names -> Python argument names."""
    if token.startswith("pulumi:providers:"):
        module, name = PROVIDERS[token.rsplit(":", 1)[1]], "Provider"
    elif token in provider_classes():
        module, name = provider_classes()[token]
    elif token.startswith("kubernetes:"):
        module, name = "pulumi_kubernetes.apiextensions", "CustomResource"
    else:
        return None
    namespace = importlib.import_module(module)
    cls = getattr(namespace, name)
    args = getattr(namespace, f"{name}Args", None) or getattr(namespace, f"{name}InitArgs", None)
    wire = {pulumi_name: py for py, pulumi_name, _ in pulumi_types._py_properties(args)} if args else {}
    return cls, wire


def replay_program(records: list[Resource], typed: bool) -> None:
    """The recorded resources again, with the same types, names, parents and inputs and none of meshstack's
    code: as plain resources (the issue's floor), or through the provider SDKs' own classes (`typed`)."""
    made: dict[str, pulumi.Resource] = {}
    for r in records:
        opts = pulumi.ResourceOptions(parent=made.get(r.parent))
        sdk = resource_class(r.type) if typed and r.custom else None
        if sdk is not None:
            cls, wire = sdk
            kwargs = {wire.get(k, re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower()): v for k, v in r.inputs.items()}
            made[r.urn] = cls(r.name, opts=opts, **kwargs)
        elif r.custom:
            made[r.urn] = pulumi.CustomResource(r.type, r.name, dict(r.inputs), opts)
        else:
            made[r.urn] = pulumi.ComponentResource(r.type, r.name, dict(r.inputs), opts)


def whole_preview(config: dict[str, Any]) -> list[Resource]:
    """What `meshstack preview` does after reading the stack file: the program, the estimate, the pack."""
    records = run_program(meshstack_program, "meshstack", "bench", config, "us-east-1")
    cost = estimate((r.view() for r in records), load_catalog(cloud="aws"))
    with handed_over(cost):
        evaluate(records)
    return records


def replay(config: dict[str, Any], repeat: int) -> None:
    records = whole_preview(config)
    custom = sum(r.custom for r in records)
    runs: dict[str, Callable[[], object]] = {
        "preview": functools.partial(whole_preview, config),
        "program": functools.partial(run_program, meshstack_program, "meshstack", "bench", config, "us-east-1"),
        "plain": functools.partial(
            run_program, functools.partial(replay_program, records, False), "meshstack", "bench", {}, "us-east-1"
        ),
        "typed": functools.partial(
            run_program, functools.partial(replay_program, records, True), "meshstack", "bench", {}, "us-east-1"
        ),
    }
    # Interleaved rounds, so a drift in the machine's speed during the run falls on every figure alike.
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            seconds[name].append(median_seconds(run, 1))
    t_preview, t_program, plain, typed_classes = (statistics.median(seconds[n]) for n in runs)
    print(f"[replay] {len(records)} resources ({custom} custom): 8 clusters x 8 node pools, buckets, Lustre, EFS")
    print(f"[replay] preview (program, cost, policy): {t_preview:.2f} s; the program alone: {t_program:.2f} s")
    print(f"[replay] replay as plain resources: {plain:.2f} s; through the SDK classes: {typed_classes:.2f} s")
    print(f"[replay] ratio program/plain replay: {t_program / plain:.2f} (target <= 1.5)")
    print(f"[replay] ratio preview/plain replay: {t_preview / plain:.2f}")
    print(f"[replay] ratio program/SDK-class replay: {t_program / typed_classes:.2f}")


def growth(repeat: int) -> None:
    print("[growth] clusters  resources  seconds  ms/resource")
    per_resource = []
    for clusters in (1, 2, 4, 8, 16, 32, 64):
        config = generated_config(clusters=clusters, pools=2)
        count = len(whole_preview(config))
        seconds = median_seconds(functools.partial(whole_preview, config), repeat)
        per_resource.append(seconds / count)
        print(f"[growth] {clusters:8d}  {count:9d}  {seconds:7.2f}  {1000 * seconds / count:11.2f}")
    print(
        f"[growth] ms/resource at 64 clusters / at 8 clusters: {per_resource[-1] / per_resource[3]:.2f} (1.0 is linear)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-growth", action="store_true", help="the growth series takes a few minutes")
    args = parser.parse_args()
    end_to_end(args.stack, args.repeat)
    gc.disable()  # as the CLI runs a preview
    replay(generated_config(), args.repeat)
    if not args.skip_growth:
        growth(1)


if __name__ == "__main__":
    main()
