"""Stack configs as the tests edit them, and the validation problems an edit draws: shared by every test
that checks a rule names the field to change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from meshstack.core.errors import SpecError
from meshstack.core.stack_file import spec_from_config
from tests.conftest import stack_config


def problems_of(config: dict[str, Any], stack: str = "dev") -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        spec_from_config(stack, config)
    return info.value.problems


def pools(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["meshstack:clusters"][0]["node_pools"]


def problem(change: Callable[[dict[str, Any]], None], stack: str = "prod-aws") -> tuple[str, str]:
    config = stack_config(stack)
    change(config)
    with pytest.raises(SpecError) as info:
        spec_from_config(stack, config)
    [found] = info.value.problems
    return found


def training(config: dict[str, Any]) -> dict[str, Any]:
    return config["meshstack:workloads"][0]


def inference(config: dict[str, Any]) -> dict[str, Any]:
    return config["meshstack:workloads"][1]
