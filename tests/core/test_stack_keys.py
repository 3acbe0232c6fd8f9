"""Stack files are as strict as the README says: the spec's internal fields (its name, cloud and location)
are no stack-file keys, regions are the catalog's, and the schema `meshstack schema` prints and the
validator agree on every key, checked by generating stack files from each and judging them with the other."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from meshstack.core.catalog import known_clouds, load_catalog
from meshstack.core.errors import SpecError
from meshstack.core.spec import StackSpec
from meshstack.core.stack_file import spec_from_config
from tests.support.cli_project import init, meshstack, read_config, write_config


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    return {cloud: init(root / f"infra-{cloud}", cloud) for cloud in known_clouds()}


@pytest.fixture(scope="module")
def schema(projects: dict[str, Path]) -> dict[str, Any]:
    done = meshstack("schema", cwd=projects["aws"])
    assert done.returncode == 0, done.stderr
    printed: dict[str, Any] = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(printed)
    return printed


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("meshstack:region", "us-west-2"),
        ("meshstack:cloud", "gcp"),
        ("meshstack:name", "prod"),
        ("meshstack:project", "my-project"),
        ("meshstack:zone", "use1-az1"),
    ],
)
def test_the_specs_internal_fields_are_no_stack_file_keys(projects: dict[str, Path], key: str, value: str) -> None:
    project = projects["aws"]
    config = read_config(project)
    write_config(project, {**config, key: value}, stack="internal")
    done = meshstack("validate", "-s", "internal", "--json", cwd=project)
    assert done.returncode == 2, done.stdout
    [problem] = json.loads(done.stdout)["problems"]
    assert problem["field"] == key
    assert "not a key" in problem["message"] or "not a stack-file key" in problem["message"]
    preview = meshstack("preview", "-s", "internal", cwd=project)
    assert preview.returncode == 2, "refused before anything is declared, never an internal error (70)"
    assert preview.stderr.count("\n") == 1 and key in preview.stderr


@pytest.mark.parametrize(("cloud", "region"), [("aws", "us-west-9"), ("gcp", "europe-west99")])
def test_a_region_the_catalog_does_not_list_is_refused_even_on_a_cpu_only_stack(
    projects: dict[str, Path], cloud: str, region: str
) -> None:
    project = projects[cloud]
    config = read_config(project)
    key = load_catalog(cloud=cloud).facts.config_keys["region"]
    config[key] = region
    for cluster in config["meshstack:clusters"]:
        cluster["node_pools"] = [p for p in cluster["node_pools"] if p["accelerator"] == "cpu"]
    config.pop("meshstack:budget")
    if cloud == "gcp":
        config["gcp:zone"] = f"{region}-a"
    write_config(project, config, stack="nowhere")
    done = meshstack("validate", "-s", "nowhere", cwd=project)
    assert done.returncode == 2
    assert f"{key}: '{region}' is not one of the catalog's {cloud.upper()} regions" in done.stderr


# A valid value for each key a generated file sets, where the project's first stack does not set it.
SAMPLES: dict[str, Any] = {
    "meshstack:alerts": {},
    "meshstack:workloads": [],
    "meshstack:network": {},
    "meshstack:storage": {},
    "meshstack:budget": {},
    "meshstack:region": "us-east-1",
    "meshstack:cloud": "aws",
    "meshstack:name": "dev",
    "meshstack:project": "my-gcp-project",
    "meshstack:zone": "us-central1-a",
    "meshstack:bogus": {},
    "aws:region": "us-east-1",
    "gcp:project": "my-gcp-project",
    "gcp:region": "us-central1",
    "gcp:zone": "us-central1-a",
}


def candidate_keys(schema: dict[str, Any]) -> set[str]:
    """Every key either side might read: the schema's, each spec field as meshstack:<field>, a typo, and
    every cloud's provider keys."""
    fields = {f"meshstack:{name}" for name in StackSpec.model_fields}
    providers = {key for cloud in known_clouds() for key in load_catalog(cloud=cloud).facts.config_keys.values()}
    return set(schema["properties"]["config"]["properties"]) | fields | providers | {"meshstack:bogus"}


def validator_accepts(config: dict[str, Any]) -> bool:
    try:
        spec_from_config("generated", config, "Pulumi.generated.yaml")
    except SpecError:
        return False
    return True


@pytest.mark.parametrize("cloud", known_clouds())
def test_the_schema_and_the_validator_agree_on_every_key(
    projects: dict[str, Path], schema: dict[str, Any], cloud: str
) -> None:
    base = read_config(projects[cloud])
    judge = jsonschema.Draft202012Validator(schema)
    schema_keys = set(schema["properties"]["config"]["properties"])
    verdicts = {}
    for key in sorted(candidate_keys(schema)):
        config = copy.deepcopy(base)
        config.setdefault(key, SAMPLES.get(key))
        by_schema = judge.is_valid({"config": config})
        by_validator = validator_accepts(config)
        verdicts[key] = (by_schema, by_validator)
    disagree = {key: v for key, v in verdicts.items() if v[0] != v[1]}
    assert disagree == {}, "(schema, validator) verdicts that differ"
    accepted = {key for key, (ok, _) in verdicts.items() if ok}
    own = set(load_catalog(cloud=cloud).facts.config_keys.values())
    # Generated from the schema's keys: each of this cloud's is accepted; from the validator's accepted keys:
    # each is one the schema names.
    assert accepted <= schema_keys
    assert {k for k in schema_keys if k.startswith("meshstack:")} | own <= accepted
    assert not {"meshstack:region", "meshstack:cloud", "meshstack:bogus"} & accepted
