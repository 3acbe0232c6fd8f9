"""The benchmarks' generated inputs stay valid as validation grows: a bench that fails on its own
stack measures nothing (bench/preview_scale.py's did once a capacity block had to name its zone)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from meshstack.core.stack_file import spec_from_config

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("clusters", "pools"), [(8, 8), (1, 2), (64, 2)])
def test_the_preview_bench_stacks_validate(clusters: int, pools: int) -> None:
    config = bench_module("preview_scale").generated_config(clusters=clusters, pools=pools)
    spec = spec_from_config("bench", config, "Pulumi.bench.yaml")
    assert len(spec.clusters) == clusters
    assert {p.market for p in spec.clusters[0].node_pools} >= ({"capacity-block"} if pools == 8 else set())
