"""A stack on clusters that already exist: what only a new cluster takes is refused at validation, one
line naming the field; the preview, run through the CLI from a project `meshstack init` made, creates no
cluster, node group or network and keeps every add-on, queue, monitor, workload and workload identity;
its objects validate against kubernetes-validate and the published CRD schemas."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from meshstack.core.errors import SpecError
from meshstack.core.kubernetes import SUPPORTED_VERSIONS
from meshstack.core.stack_file import spec_from_config
from meshstack.preview.plan import Preview
from tests.conftest import stack_config
from tests.support.cli_project import init, meshstack, write_config
from tests.support.existing_clusters import existing_aws, existing_gcp
from tests.support.schemas import crd_schema

# What meshstack builds for a cluster, which an existing one has already.
CLUSTER_TYPES = (
    "aws:eks/cluster:Cluster",
    "aws:eks/nodeGroup:NodeGroup",
    "aws:eks/addon:Addon",
    "aws:eks/accessEntry:AccessEntry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/natGateway:NatGateway",
    "gcp:container/cluster:Cluster",
    "gcp:container/nodePool:NodePool",
    "gcp:compute/network:Network",
    "gcp:compute/subnetwork:Subnetwork",
    "gcp:compute/firewall:Firewall",
    "gcp:compute/router:Router",
)


def problem(config: dict[str, Any], stack: str = "prod-aws") -> tuple[str, str]:
    with pytest.raises(SpecError) as info:
        spec_from_config(stack, config)
    [found] = info.value.problems
    assert "\n" not in found[1]
    return found


def _cluster(config: dict[str, Any]) -> dict[str, Any]:
    cluster: dict[str, Any] = config["meshstack:clusters"][0]
    return cluster


AWS_MISTAKES: list[tuple[Callable[[dict[str, Any]], Any], str, str]] = [
    (lambda c: _cluster(c).update(kubernetes_version="1.35"), "clusters[0].kubernetes_version", "keeps its own"),
    (lambda c: _cluster(c).update(support_type="EXTENDED"), "clusters[0].support_type", "keeps its own"),
    (lambda c: _cluster(c).update(deployer_cidrs=["10.8.0.0/16"]), "clusters[0].deployer_cidrs", "keeps its own"),
    (lambda c: _cluster(c).update(log_types=["api"]), "clusters[0].log_types", "keeps its own"),
    (
        lambda c: _cluster(c).update(admin_principal_arns=["arn:aws:iam::123456789012:role/a"]),
        "clusters[0].admin_principal_arns",
        "keeps its own",
    ),
    (lambda c: _cluster(c)["node_pools"][0].update(labels={"a": "b"}), "clusters[0].node_pools[0].labels", "has"),
    # Karpenter and market fallbacks launch nodes: an existing cluster's scaling stays its owners'.
    (lambda c: _cluster(c).update(autoscaler="karpenter"), "clusters[0].autoscaler", "keeps its own"),
    (
        lambda c: _cluster(c)["node_pools"][0].update(fallback=["spot"]),
        "clusters[0].node_pools[0].fallback",
        "describes nodes it has",
    ),
    (
        lambda c: _cluster(c)["node_pools"][0].update(desired_nodes=2),
        "clusters[0].node_pools[0].desired_nodes",
        "describes nodes it has",
    ),
    (
        lambda c: _cluster(c)["node_pools"][1].update(root_volume_gib=500),
        "clusters[0].node_pools[1].root_volume_gib",
        "describes nodes it has",
    ),
    (lambda c: _cluster(c)["existing"].update(name="-ml"), "clusters[0].existing.name", "not an EKS cluster name"),
    (lambda c: _cluster(c)["existing"].update(name="m" * 101), "clusters[0].existing.name", "not an EKS"),
    (lambda c: _cluster(c)["existing"].update(location="us-east-1"), "clusters[0].existing.location", "region"),
    (lambda c: _cluster(c)["existing"].update(context="my context"), "clusters[0].existing.context", "pattern"),
    (lambda c: _cluster(c)["existing"].update(installed=["kueue"]), "clusters[0].existing.installed[0]", "own"),
    (
        lambda c: _cluster(c)["existing"].update(installed=["metrics-server", "metrics-server"]),
        "clusters[0].existing.installed[1]",
        "twice",
    ),
    (lambda c: _cluster(c)["existing"].update(version="1.35"), "clusters[0].existing.version", "unknown key"),
    (lambda c: c["meshstack:network"].update(vpc_cidr="10.9.0.0/16"), "network.vpc_cidr", "their own network"),
    (lambda c: c["meshstack:network"].pop("zones"), "network.zones", "mount targets"),
    (
        lambda c: c["meshstack:clusters"].append({**stack_config("dev")["meshstack:clusters"][0], "name": "extra"}),
        "clusters[1].existing",
        "all existing or all new",
    ),
    (lambda c: _cluster(c).pop("existing"), "clusters[0].kubernetes_version", "needs its version"),
]


@pytest.mark.parametrize(("edit", "field", "says"), AWS_MISTAKES)
def test_what_only_a_new_eks_cluster_takes_is_refused_by_field(
    edit: Callable[[dict[str, Any]], Any], field: str, says: str
) -> None:
    config = existing_aws()
    edit(config)
    path, message = problem(config)
    assert path == field and says in message, (path, message)


@pytest.mark.parametrize(
    ("edit", "field", "says"),
    [
        (lambda c: _cluster(c)["existing"].update(name="ML_prod"), "clusters[0].existing.name", "GKE cluster name"),
        (lambda c: _cluster(c)["existing"].update(name="ml-"), "clusters[0].existing.name", "GKE cluster name"),
        (lambda c: _cluster(c)["existing"].update(location="us-west1"), "clusters[0].existing.location", "us-east5"),
        (lambda c: _cluster(c).update(maintenance={"days": ["SA", "SU"]}), "clusters[0].maintenance", "keeps its own"),
        (lambda c: _cluster(c).update(public_access_cidrs=["203.0.113.0/24"]), "clusters[0].public_access_cidrs", ""),
    ],
)
def test_what_only_a_new_gke_cluster_takes_is_refused_by_field(
    edit: Callable[[dict[str, Any]], Any], field: str, says: str
) -> None:
    config = existing_gcp()
    edit(config)
    path, message = problem(config, "prod-gcp")
    assert path == field and says in message, (path, message)


def test_a_bad_existing_cluster_is_one_line_from_the_cli(tmp_path: Path) -> None:
    project = init(tmp_path / "proj")
    config = existing_aws()
    _cluster(config)["kubernetes_version"] = "1.35"
    write_config(project, config, "prod-aws")
    done = meshstack("preview", "--stack", "prod-aws", cwd=project)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "clusters[0].kubernetes_version" in line and "ml-prod" in line


def _cli_preview(tmp_path: Path, cloud: str, stack: str, config: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    project = init(tmp_path / "proj", cloud)
    write_config(project, config, stack)
    out = tmp_path / "manifests"
    done = meshstack("preview", "--stack", stack, "--json", "--manifests", str(out), cwd=project)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), out


def _kinds(resources: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The resources, not the components (meshstack:* and the stack itself)."""
    return {(r["type"], r["name"]) for r in resources if not r["type"].startswith(("meshstack:", "pulumi:pulumi:"))}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cloud", "stack", "config"), [("aws", "prod-aws", existing_aws), ("gcp", "prod-gcp", existing_gcp)]
)
def test_a_stack_on_an_existing_cluster_creates_no_cluster_and_everything_else(
    tmp_path: Path,
    preview: Callable[[str], Preview],
    cloud: str,
    stack: str,
    config: Callable[[], dict[str, Any]],
) -> None:
    result, manifests = _cli_preview(tmp_path, cloud, stack, config())
    existing = _kinds(result["resources"])
    built = {(r.type, r.name) for r in preview(stack).resources if r.custom}
    assert not {t for t, _ in existing} & set(CLUSTER_TYPES), "nothing that exists is created"
    assert not [n for _, n in existing if n.startswith(f"{stack}-net")], "nor any of its network"
    # Add-ons, queues, monitoring, workloads, storage and workload identities: as on the cluster meshstack builds.
    kept = {
        (t, n)
        for t, n in built
        if t.startswith(
            ("kubernetes:", "pulumi:providers:", "random:", "gcp:storage/", "gcp:serviceaccount/", "gcp:monitoring/")
        )
        or "-sa-" in n
        or "-storage" in n
        or n.endswith("-keda-metrics")
    }
    # Its owners scale its nodes and run them under their own identity.
    kept -= {(t, n) for t, n in kept if n.endswith(("-cluster-autoscaler", "-id-nodes"))}
    assert existing == kept, (sorted(existing - kept), sorted(kept - existing))
    # Every workload identity trusts the existing cluster's own identity provider.
    if cloud == "aws":
        roles = [r for r in result["resources"] if r["type"] == "aws:iam/role:Role" and "-sa-" in r["name"]]
        assert len(roles) == 2
        for role in roles:
            [statement] = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
            assert statement["Principal"]["Federated"].startswith("arn:aws:iam::123456789012:oidc-provider/oidc.eks.")
    else:
        members = [r for r in result["resources"] if r["type"] == "gcp:serviceaccount/iAMMember:IAMMember"]
        assert members and all(".svc.id.goog[ml/" in r["inputs"]["member"] for r in members)
    [line] = result["policy"]["outside_stack"]
    assert "'ml-prod'" in line and "not checked by the policy pack" in line
    _validate(manifests)


def _validate(out: Path) -> None:
    version = f"{SUPPORTED_VERSIONS[-1]}.0"  # what the offline look-up reports the cluster runs
    objects = [yaml.safe_load(p.read_text()) for p in sorted(out.rglob("*.yaml"))]
    assert len(objects) >= 10
    for body in objects:
        group = body["apiVersion"].split("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            schema = crd_schema(body["apiVersion"], body["kind"])
            errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(body))
            assert not errors, f"{body['kind']} {body['metadata']['name']}: {[e.message for e in errors]}"
        else:
            kubernetes_validate.validate(body, version, strict=True)


@pytest.mark.slow
def test_the_text_preview_says_the_cluster_was_not_checked(tmp_path: Path) -> None:
    project = init(tmp_path / "proj")
    write_config(project, existing_aws(), "prod-aws")
    done = meshstack("preview", "--stack", "prod-aws", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "not checked: cluster 'train' is existing AWS cluster 'ml-prod'" in done.stdout
    assert "[aws:eks/cluster:Cluster]" not in done.stdout
