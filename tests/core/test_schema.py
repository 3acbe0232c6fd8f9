"""`meshstack schema` describes the stack file as it is written, and every shipped stack file meets it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
import yaml

from meshstack.cli import main
from meshstack.core.stack_file import PROJECT_ROOT
from tests.conftest import SHIPPED_STACKS


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    from meshstack.core.schema import stack_schema

    schema = stack_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def shipped(stack: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return data


def test_the_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    config = schema["properties"]["config"]
    assert {"aws:region", "gcp:project", "gcp:region", "gcp:zone", "meshstack:clusters"} <= set(config["properties"])
    accelerators = schema["$defs"]["NodePool"]["properties"]["accelerator"]["enum"]
    assert {"h100", "trainium2", "tpu-v5p", "tpu-v6e"} <= set(accelerators), "both clouds' accelerators"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_shipped_stack_file_meets_the_schema(stack: str, validator: jsonschema.Draft202012Validator) -> None:
    assert list(validator.iter_errors(shipped(stack))) == []


def edit_pool(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["meshstack:clusters"][0]["node_pools"][0][key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (edit_pool("accelerator", "h900"), "'h900' is not one of"),
        (edit_pool("max_nodes", "4"), "'4' is not of type 'integer'"),
        (lambda c: c.pop("aws:region"), "is not valid under any of the given schemas"),
        (
            # Keys of two clouds: the validator refuses the stack, and no cloud's branch of the schema holds it.
            lambda c: c.update({"gcp:project": "p", "gcp:region": "us-east5", "gcp:zone": "us-east5-a"}),
            "is not valid under any of the given schemas",
        ),
        (lambda c: c.update({"meshstack:workload": []}), "'meshstack:workload' is not valid under any"),
        (lambda c: c.pop("meshstack:environment"), "'meshstack:environment' is a required property"),
        (lambda c: c["meshstack:clusters"][0].update(nodepools=[]), "Additional properties are not allowed"),
    ],
)
def test_the_schema_catches_what_validate_catches(
    edit: Callable[[dict[str, Any]], None], expected: str, validator: jsonschema.Draft202012Validator
) -> None:
    data = shipped("dev")
    edit(data["config"])
    messages = [e.message for e in validator.iter_errors(data)]
    assert any(expected in m for m in messages), messages


def test_other_providers_keys_and_pulumi_keys_are_left_alone(validator: jsonschema.Draft202012Validator) -> None:
    data = shipped("prod-gcp")
    data["config"]["kubernetes:context"] = "mine"
    data["secretsprovider"] = "awskms://alias/pulumi"
    assert list(validator.iter_errors(data)) == []
