"""How fast the offline preview is on a big stack, relative to the mock runtime's own floor.

Previews a generated stack of 8 clusters x 8 node pools with its storage, then
registers the same number of bare resources under the same mock runtime, and
prints resources per second and the ratio of the two times, measured in one run.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Any

import pulumi

from meshstack.core.stack_file import spec_from_runtime
from meshstack.preview.recorder import run_program
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


def generated_config(clusters: int = 8, pools: int = 8) -> dict[str, Any]:
    def pool(j: int) -> dict[str, Any]:
        accelerator, per_node, market = ACCELERATORS[j % len(ACCELERATORS)]
        spec: dict[str, Any] = {"name": f"pool{j}", "accelerator": accelerator, "max_nodes": 4, "market": market}
        if per_node is None:
            spec["instance_type"] = "m7i.2xlarge"
        else:
            spec["accelerators_per_node"] = per_node
        if market == "capacity-block":
            spec.update(reservation_id="cr-0123456789abcdef0", efa=True, placement_group=True)
        return spec

    return {
        "aws:region": "us-east-1",
        "meshstack:environment": "prod",
        "meshstack:tags": {"team": "bench", "project": "bench", "cost-center": "0"},
        "meshstack:network": {"vpc_cidr": "10.0.0.0/16", "availability_zones": 3, "nat_gateways": "per-az"},
        "meshstack:clusters": [
            {"name": f"c{i}", "kubernetes_version": "1.33", "node_pools": [pool(j) for j in range(pools)]}
            for i in range(clusters)
        ],
        "meshstack:storage": {
            "buckets": [{"name": f"b{i}"} for i in range(4)],
            "lustre": [{"name": "scratch", "capacity_gib": 2400, "throughput_per_tib": 250, "s3_bucket": "b0"}],
            "efs": [{"name": "home"}],
        },
    }


def meshstack_program() -> None:
    build(spec_from_runtime())


def bare_program(count: int) -> None:
    for i in range(count):
        pulumi.CustomResource("meshstack:bench:Bare", f"r{i}", {"index": i, "tags": {"team": "bench"}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = generated_config()
    full, bare, count = [], [], 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        count = len(run_program(meshstack_program, "meshstack", "bench", config, "us-east-1"))
        full.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_program(functools.partial(bare_program, count), "meshstack", "bench", {}, "us-east-1")
        bare.append(time.perf_counter() - start)
    t_full, t_bare = statistics.median(full), statistics.median(bare)
    print(f"resources: {count} (8 clusters x 8 node pools, 4 buckets, Lustre, EFS)")
    print(f"meshstack preview: {t_full:.2f} s, {count / t_full:.0f} resources/s")
    print(f"bare registration: {t_bare:.2f} s, {count / t_bare:.0f} resources/s")
    print(f"ratio preview/bare: {t_full / t_bare:.2f}")


if __name__ == "__main__":
    main()
