"""Google Cloud: TPU validation, the GKE resources under mocks, the TPU JobSet, policy and pricing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pytest
import yaml

from meshstack.core.catalog import load_catalog
from meshstack.core.errors import SpecError
from meshstack.core.stack_file import find_project, spec_from_config
from meshstack.preview.plan import Preview, preview_stack
from meshstack.preview.policy_runner import evaluate
from meshstack.preview.recorder import run_program
from tests.conftest import of_type, one, stack_config

Previewer = Callable[[str], Preview]
MakeProject = Callable[[str, dict[str, Any]], Path]
JOBSET = "kubernetes:jobset.x-k8s.io/v1alpha2:JobSet"


def problem(change: Callable[[dict[str, Any]], None]) -> tuple[str, str]:
    config = stack_config("prod-gcp")
    change(config)
    with pytest.raises(SpecError) as info:
        spec_from_config("prod-gcp", config)
    [found] = info.value.problems
    return found


def pool(config: dict[str, Any], index: int) -> dict[str, Any]:
    return config["meshstack:clusters"][0]["node_pools"][index]


def test_prod_gcp_resolves_its_tpu_pools() -> None:
    spec = spec_from_config("prod-gcp", stack_config("prod-gcp"))
    assert spec.cloud == "gcp" and spec.settings["project"] == "meshstack-prod-ml"
    v5p = spec.clusters[0].node_pools[1]
    assert (v5p.instance_type, v5p.accelerators_per_node, v5p.slices) == ("ct5p-hightpu-4t", 4, 2)


@pytest.mark.parametrize(
    ("change", "path", "text"),
    [
        (
            lambda c: pool(c, 1).update(topology="4x4x3"),
            "clusters[0].node_pools[1].topology",
            "tpu-v5p has no topology '4x4x3': one of 2x2x1, 2x2x2",
        ),
        (lambda c: pool(c, 1).pop("topology"), "clusters[0].node_pools[1].topology", "tpu-v5p needs a topology"),
        (
            lambda c: pool(c, 1).update(max_nodes=8),
            "clusters[0].node_pools[1].max_nodes",
            "a 4x4x4 tpu-v5p slice has 16 hosts: set max_nodes to 16",
        ),
        (
            lambda c: pool(c, 1).update(min_nodes=4),
            "clusters[0].node_pools[1].min_nodes",
            "scales between 0 and 16 hosts",
        ),
        (
            lambda c: pool(c, 1).update(market="capacity-block"),
            "clusters[0].node_pools[1].market",
            "GCP does not offer 'capacity-block'",
        ),
        (
            lambda c: pool(c, 1).update(reservation_id="V5P_Reservation"),
            "clusters[0].node_pools[1].reservation_id",
            "is not a GCP reservation id",
        ),
        (
            lambda c: pool(c, 0).update(topology="2x2"),
            "clusters[0].node_pools[0].topology",
            "apply to TPU accelerators, not cpu",
        ),
        (
            lambda c: pool(c, 0).update(accelerator="trainium1", instance_type=None),
            "clusters[0].node_pools[0].accelerator",
            "unknown accelerator 'trainium1'",
        ),
        (
            lambda c: c["meshstack:workloads"][0].update(mesh={"data": 1, "fsdp": 64}),
            "workloads[0].mesh",
            "must equal the slices' chips: 2 x 64 = 128",
        ),
        (
            lambda c: c["meshstack:workloads"][0].update(processes=16),
            "workloads[0].processes",
            "is 2 x 4x4x4 slice(s) with 32 hosts: run 32 processes",
        ),
        (lambda c: c["meshstack:workloads"][0].update(use_jobset=False), "workloads[0].use_jobset", "needs JobSet"),
        (lambda c: c["meshstack:tags"].update(team="ML Platform"), "tags.team", "GCP labels hold only lowercase"),
        (lambda c: c.pop("gcp:zone"), "gcp:zone", "must be a zone of us-east5"),
        (lambda c: c.update({"gcp:project": "x"}), "gcp:project", "must name the project"),
        (
            lambda c: c["meshstack:storage"].update(
                lustre=[{"name": "l", "capacity_gib": 1200, "throughput_per_tib": 125}]
            ),
            "storage.lustre",
            "lustre is not offered on GCP",
        ),
    ],
)
def test_tpu_and_gcp_rules(change: Callable[[dict[str, Any]], None], path: str, text: str) -> None:
    found_path, message = problem(change)
    assert found_path == path
    assert text in message, message


def test_spot_where_the_catalog_says_the_capacity_has_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = tmp_path / "gcp.yaml"
    override.write_text(yaml.safe_dump({"cloud": "gcp", "tpus": {"tpu-v6e": {"spot": False}}}))
    monkeypatch.setenv("MESHSTACK_CATALOG", str(override))
    path, message = problem(lambda c: pool(c, 2).update(market="spot"))
    assert path == "clusters[0].node_pools[2].market"
    assert "tpu-v6e cannot be had as spot capacity" in message


def test_gke_cluster_is_private_with_workload_identity_and_kms(preview: Previewer) -> None:
    result = preview("prod-gcp")
    cluster = one(result, "gcp:container/cluster:Cluster", "prod-gcp-tpu").inputs
    assert cluster["privateClusterConfig"]["enablePrivateNodes"] is True
    assert cluster["masterAuthorizedNetworksConfig"]["cidrBlocks"][0]["cidrBlock"] == "203.0.113.0/24"
    assert cluster["workloadIdentityConfig"] == {"workloadPool": "meshstack-prod-ml.svc.id.goog"}
    assert cluster["enableShieldedNodes"] is True and cluster["releaseChannel"] == {"channel": "REGULAR"}
    assert set(cluster["loggingConfig"]["enableComponents"]) == {"SYSTEM_COMPONENTS", "WORKLOADS"}
    key = one(result, "gcp:kms/cryptoKey:CryptoKey", "prod-gcp-tpu-secrets")
    assert cluster["databaseEncryption"] == {"state": "ENCRYPTED", "keyName": key.outputs["id"]}
    assert cluster["resourceLabels"]["cost-center"] == "4711"
    agent = one(result, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "prod-gcp-tpu-gke-agent").inputs
    assert agent["member"].endswith("@container-engine-robot.iam.gserviceaccount.com")


def test_the_node_service_account_has_gkes_least_privilege_node_role(preview: Previewer) -> None:
    """GKE's node service account guide: "At a minimum, these node service accounts must have the
    Kubernetes Engine Default Node Service Account (roles/container.defaultNodeServiceAccount) role";
    without it the console flags the cluster and the autoscaler's metrics are not written (review P2-9).
    Image pulls from Artifact Registry are a separate role."""
    result = preview("prod-gcp")
    nodes = one(result, "gcp:serviceaccount/account:Account", "prod-gcp-tpu-id-nodes").outputs["member"]
    roles = {
        r.inputs["role"] for r in of_type(result, "gcp:projects/iAMMember:IAMMember") if r.inputs["member"] == nodes
    }
    assert {"roles/container.defaultNodeServiceAccount", "roles/artifactregistry.reader"} <= roles
    assert not any(r in roles for r in ("roles/editor", "roles/owner", "roles/container.admin"))


def documented_monitoring_components() -> set[str]:
    """The values pulumi_gcp's docstring allows in a cluster's monitoring_config.enable_components."""
    from pulumi_gcp.container._inputs import ClusterMonitoringConfigArgs

    doc = ClusterMonitoringConfigArgs.enable_components.__doc__ or ""
    return set(re.findall(r"`([A-Z_]+)`", doc.split("Supported values include:")[1].split(".")[0]))


def test_gke_rules_have_the_series_they_read(preview: Previewer) -> None:
    """On GKE the rules run in Managed Prometheus (review P2-1). GKE's own kube state metrics packages
    (on by default on new clusters, off once enable_components is set without them) cover workloads,
    storage and JobSets, not nodes; the node alert reads kube_node_status_condition and kube_node_labels,
    so a kube-state-metrics with the node collector is installed and scraped through a PodMonitoring."""
    result = preview("prod-gcp")
    config = one(result, "gcp:container/cluster:Cluster", "prod-gcp-tpu").inputs["monitoringConfig"]
    components = set(config["enableComponents"])
    assert components <= documented_monitoring_components()
    assert {"SYSTEM_COMPONENTS", "POD", "DEPLOYMENT", "STATEFULSET", "DAEMONSET", "HPA", "STORAGE", "JOBSET"} <= (
        components
    )
    assert config["managedPrometheus"] == {"enabled": True}
    rules = one(result, "kubernetes:monitoring.googleapis.com/v1:ClusterRules", "prod-gcp-tpu-addons-alerts").inputs
    node_alert = next(r for g in rules["spec"]["groups"] for r in g["rules"] if r["alert"] == "TrainingNodeNotReady")
    assert "kube_node_status_condition" in node_alert["expr"] and "label_meshstack_io_node_pool" in node_alert["expr"]
    ksm = one(result, "kubernetes:helm.sh/v3:Release", "prod-gcp-tpu-addons-kube-state-metrics").inputs
    assert "nodes" in ksm["values"]["collectors"]
    assert ksm["values"]["metricLabelsAllowlist"] == ["nodes=[meshstack.io/node-pool]"]
    scrape = one(
        result, "kubernetes:monitoring.googleapis.com/v1:PodMonitoring", "prod-gcp-tpu-addons-kube-state-metrics"
    ).inputs
    assert scrape["metadata"]["namespace"] == ksm["namespace"]
    # The chart's pods and port (prometheus-community kube-state-metrics 6.4.1: templates/_helpers.tpl
    # app.kubernetes.io/name, templates/deployment.yaml containerPort name http).
    assert scrape["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "kube-state-metrics"}}
    assert [e["port"] for e in scrape["spec"]["endpoints"]] == ["http"]


def test_tpu_slices_get_a_node_pool_each_with_compact_placement(preview: Previewer) -> None:
    result = preview("prod-gcp")
    slices = [r for r in of_type(result, "gcp:container/nodePool:NodePool") if "-v5p-s" in r.name]
    assert [r.name for r in sorted(slices, key=lambda r: r.name)] == ["prod-gcp-tpu-v5p-s0", "prod-gcp-tpu-v5p-s1"]
    for node_pool in slices:
        inputs = node_pool.inputs
        assert inputs["placementPolicy"] == {"type": "COMPACT", "tpuTopology": "4x4x4"}
        assert inputs["autoscaling"] == {"minNodeCount": 0, "maxNodeCount": 16}
        assert inputs["nodeLocations"] == ["us-east5-a"]
        config = inputs["nodeConfig"]
        assert config["machineType"] == "ct5p-hightpu-4t"
        assert config["reservationAffinity"]["values"] == ["v5p-foundation"]
        assert config["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
        assert config["shieldedInstanceConfig"]["enableSecureBoot"] is True
        assert config["gvnic"] == {"enabled": True}
        assert config["labels"]["meshstack.io/accelerator"] == "tpu-v5p"
        assert config["serviceAccount"].startswith("prod-gcp-tpu-id-nodes@")
    serve = one(result, "gcp:container/nodePool:NodePool", "prod-gcp-tpu-serve").inputs
    assert "placementPolicy" not in serve, "a single-host slice needs no placement policy"


def test_prod_gcp_serves_on_one_v6e_chip_a_replica(preview: Previewer) -> None:
    """The stack sizes the chat model (fp32 weights and cache) for one 32 GiB v6e chip: its pool is
    1x1 (ct6e-standard-1t) and each replica asks for one chip, where a 2x4 pool gave each 8 (P2-12)."""
    result = preview("prod-gcp")
    serve = one(result, "gcp:container/nodePool:NodePool", "prod-gcp-tpu-serve").inputs["nodeConfig"]
    assert serve["machineType"] == "ct6e-standard-1t"
    deployment = one(result, "kubernetes:apps/v1:Deployment", "prod-gcp-chat").inputs
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["google.com/tpu"] in (1, "1")
    selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
    assert selector["cloud.google.com/gke-tpu-topology"] == "1x1"


def test_gpu_pools_install_drivers(project_copy: MakeProject) -> None:
    config = stack_config("prod-gcp")
    config["meshstack:clusters"][0]["node_pools"].append(
        {"name": "h100", "accelerator": "h100", "accelerators_per_node": 8, "max_nodes": 2, "market": "spot"}
    )
    config["meshstack:budget"]["max_hourly_usd"] = 1000
    config["meshstack:budget"]["max_accelerators"] = 200
    result = preview_stack("prod-gcp", find_project(project_copy("prod-gcp", config)))
    node_config = one(result, "gcp:container/nodePool:NodePool", "prod-gcp-tpu-h100").inputs["nodeConfig"]
    assert node_config["machineType"] == "a3-highgpu-8g" and node_config["spot"] is True
    assert node_config["guestAccelerators"] == [
        {"type": "nvidia-h100-80gb", "count": 8, "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"}}
    ]
    assert result.violations == []


@pytest.mark.parametrize(
    ("machine_type", "gpu_type"),
    [
        ("a3-highgpu-8g", "nvidia-h100-80gb"),
        ("a3-megagpu-8g", "nvidia-h100-mega-80gb"),
        ("a2-highgpu-8g", "nvidia-tesla-a100"),
        ("g2-standard-48", "nvidia-l4"),
        ("a3-ultragpu-8g", "nvidia-h200-141gb"),
    ],
)
def test_every_gpu_machine_type_names_the_gpu_gke_expects(
    project_copy: MakeProject, machine_type: str, gpu_type: str
) -> None:
    """GKE refuses a node pool whose accelerator type does not match its machine type; a3-mega's H100s
    are 'nvidia-h100-mega-80gb', not the a3-high's (GKE GPU docs, read 2026-11-25)."""
    config = stack_config("prod-gcp")
    catalog = load_catalog(cloud="gcp")
    accelerator = catalog.instance_types[machine_type].accelerator
    # us-central1 offers every GPU machine type of the catalog (us-east5 has no A100 or L4).
    zone = (catalog.zones(machine_type, "us-central1") or [])[0]
    config.update({"gcp:region": "us-central1", "gcp:zone": zone, "meshstack:workloads": []})
    config["meshstack:clusters"][0]["node_pools"][1:] = [
        {"name": "gpu", "accelerator": accelerator, "instance_type": machine_type, "max_nodes": 1}
    ]
    config["meshstack:budget"].update(max_hourly_usd=2000, max_accelerators=200)
    result = preview_stack("prod-gcp", find_project(project_copy("prod-gcp", config)))
    node_config = one(result, "gcp:container/nodePool:NodePool", "prod-gcp-tpu-gpu").inputs["nodeConfig"]
    assert node_config["guestAccelerators"][0]["type"] == gpu_type


def test_buckets_and_workload_identity(preview: Previewer) -> None:
    result = preview("prod-gcp")
    for bucket in of_type(result, "gcp:storage/bucket:Bucket"):
        inputs = bucket.inputs
        assert inputs["uniformBucketLevelAccess"] is True and inputs["publicAccessPrevention"] == "enforced"
        assert inputs["versioning"] == {"enabled": True}
        assert {r["action"]["type"] for r in inputs["lifecycleRules"]} == {"AbortIncompleteMultipartUpload", "Delete"}
        assert inputs["encryption"]["defaultKmsKeyName"].endswith(
            "/cryptoKeys/" + one(result, "gcp:kms/cryptoKey:CryptoKey", "prod-gcp-storage-key").outputs["name"]
        )
    account = one(result, "gcp:serviceaccount/account:Account", "prod-gcp-tpu-id-wl-pretrain").outputs
    binding = one(result, "gcp:serviceaccount/iAMMember:IAMMember", "prod-gcp-tpu-id-wl-pretrain").inputs
    assert binding["role"] == "roles/iam.workloadIdentityUser"
    assert binding["member"] == "serviceAccount:meshstack-prod-ml.svc.id.goog[ml/pretrain]"
    grants = [
        r.inputs
        for r in of_type(result, "gcp:storage/bucketIAMMember:BucketIAMMember")
        if r.inputs["member"] == account["member"]
    ]
    buckets = {
        one(result, "gcp:storage/bucket:Bucket", f"prod-gcp-storage-{b}").outputs["name"]
        for b in ("datasets", "checkpoints")
    }
    assert {g["bucket"] for g in grants} == buckets and {g["role"] for g in grants} == {"roles/storage.objectUser"}
    names = {
        one(result, "gcp:storage/bucket:Bucket", f"prod-gcp-storage-{b}").outputs["name"]: b
        for b in ("datasets", "checkpoints")
    }
    expressions = {names[g["bucket"]]: g["condition"]["expression"] for g in grants}
    prefixes = {"datasets": "tokens", "checkpoints": "pretrain"}
    for short, expression in expressions.items():
        bucket = next(n for n, b in names.items() if b == short)
        assert expression == (
            'resource.type == "storage.googleapis.com/Bucket" || '
            f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{prefixes[short]}/")'
        ), "objects under the workload's prefix only"
    chat = one(result, "gcp:serviceaccount/account:Account", "prod-gcp-tpu-id-wl-chat").outputs
    chat_roles = {
        r.inputs["role"]
        for r in of_type(result, "gcp:storage/bucketIAMMember:BucketIAMMember")
        if r.inputs["member"] == chat["member"]
    }
    assert chat_roles == {"roles/storage.objectViewer"}
    ksa = one(result, "kubernetes:core/v1:ServiceAccount", "prod-gcp-pretrain").inputs["metadata"]
    assert ksa["annotations"] == {"iam.gke.io/gcp-service-account": account["email"]}


def test_network_admits_only_the_cluster_subnet(preview: Previewer) -> None:
    result = preview("prod-gcp")
    subnet = one(result, "gcp:compute/subnetwork:Subnetwork", "prod-gcp-net-nodes").inputs
    assert subnet["privateIpGoogleAccess"] is True
    assert {r["rangeName"] for r in subnet["secondaryIpRanges"]} == {"pods", "services"}
    firewall = one(result, "gcp:compute/firewall:Firewall", "prod-gcp-net-internal")
    assert firewall.inputs["sourceRanges"] == [subnet["ipCidrRange"], "172.16.0.0/14"]
    others = {f.name for f in of_type(result, "gcp:compute/firewall:Firewall")} - {firewall.name}
    assert others == {"prod-gcp-tpu-webhooks"}, "the only other rule is the control plane's, to the webhooks"
    assert (
        one(result, "gcp:compute/routerNat:RouterNat", "prod-gcp-net-nat").inputs["natIpAllocateOption"] == "AUTO_ONLY"
    )


def test_tpu_jobset_matches_the_slices(preview: Previewer) -> None:
    jobset = one(preview("prod-gcp"), JOBSET, "prod-gcp-pretrain").inputs
    assert jobset["metadata"]["annotations"] == {
        "alpha.jobset.sigs.k8s.io/exclusive-topology": "cloud.google.com/gke-nodepool"
    }
    [replicated] = jobset["spec"]["replicatedJobs"]
    assert replicated["replicas"] == 2
    job = replicated["template"]["spec"]
    assert (job["parallelism"], job["completions"]) == (16, 16)
    pod = job["template"]["spec"]
    assert pod["nodeSelector"] == {
        "meshstack.io/node-pool": "v5p",
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5p-slice",
        "cloud.google.com/gke-tpu-topology": "4x4x4",
    }
    container = pod["containers"][0]
    assert container["resources"]["limits"]["google.com/tpu"] == "4"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert "JAX_COORDINATOR_ADDRESS" not in env, "TPU hosts use a bare jax.distributed.initialize()"
    assert env["MEGASCALE_NUM_SLICES"] == "2"
    assert env["MEGASCALE_COORDINATOR_ADDRESS"] == "pretrain-workers-0-0.pretrain"
    assert env["MEGASCALE_SLICE_ID"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['jobset.sigs.k8s.io/job-index']"}
    }
    assert json.loads(env["MESHSTACK_JOB_CONFIG"])["data_uri"].startswith("gs://")
    assert {"key": "google.com/tpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]


def test_preview_prices_the_slices(preview: Previewer) -> None:
    cost = preview("prod-gcp").cost
    slice0 = next(i for i in cost.items if i.name == "prod-gcp-tpu-v5p-s0")
    per_host = 4 * 4.20 + 200 * 0.10 / 730
    assert slice0.hourly_usd == 0 and slice0.peak_hourly_usd == pytest.approx(16 * per_host)
    assert slice0.description == (
        "0 x ct5p-hightpu-4t (reservation, 4 tpu-v5p chips each), 16 with its workloads running, up to 16"
    )
    assert slice0.running_hourly_usd == pytest.approx(16 * per_host), "the training job takes every host of a slice"
    serve = next(i for i in cost.items if i.name == "prod-gcp-tpu-serve")
    assert serve.hourly_usd == pytest.approx(1 * 2.70 + 200 * 0.10 / 730)
    assert cost.region == "us-east5"


def insecure_gcp() -> None:
    bucket = gcp.storage.Bucket("open", location="US", labels={"team": "t", "project": "p", "cost-center": "c"})
    gcp.compute.Firewall(
        "ssh", network="default", source_ranges=["0.0.0.0/0"], allows=[{"protocol": "tcp", "ports": ["22"]}]
    )
    cluster = gcp.container.Cluster(
        "bare",
        location="us-central1",
        initial_node_count=1,
        node_config={"service_account": "default"},
        resource_labels={"team": "t", "project": "p", "cost-center": "c"},
    )
    gcp.container.NodePool(
        "pool",
        cluster=cluster.id,
        node_config={
            "service_account": "123-compute@developer.gserviceaccount.com",
            "workload_metadata_config": {"mode": "GCE_METADATA"},
        },
    )
    pulumi.export("bucket", bucket.name)


def test_insecure_gcp_resources_fail_with_exactly_the_expected_violations() -> None:
    violations = evaluate(run_program(insecure_gcp, "meshstack", "test", {}, "us-central1"))
    found = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in violations}
    assert found == {
        ("gcs-public-access-prevented", "open"),
        ("gcs-encrypted-with-kms", "open"),
        ("gcp-firewall-no-public-ingress", "ssh"),
        ("gke-private-cluster", "bare"),
        ("gke-workload-identity", "bare"),
        ("gke-workload-identity", "pool"),
        ("gke-node-service-account", "bare"),
        ("gke-node-service-account", "pool"),
        ("gke-secrets-encrypted", "bare"),
        ("required-tags", "pool"),  # a node pool labels its VMs through node_config.resource_labels
    }
    messages = {v.message for v in violations}
    assert "firewall 'ssh' admits 0.0.0.0/0 on tcp ['22']" in messages
    assert "bucket 'open' does not enforce public access prevention" in messages


def test_public_control_plane_copy_of_prod_gcp_fails(project_copy: MakeProject) -> None:
    config = stack_config("prod-gcp")
    config["meshstack:clusters"][0]["public_access_cidrs"] = ["0.0.0.0/0"]
    # The workloads fit the cap (128 + 2 x 1 = 130); the pools could grow past it (128 + 4 x 1 = 132).
    config["meshstack:workloads"][1]["max_replicas"] = 2
    config["meshstack:budget"]["max_accelerators"] = 130
    result = preview_stack("prod-gcp", find_project(project_copy("prod-gcp", config)))
    assert {(v.policy, v.level) for v in result.violations} == {
        ("gke-private-cluster", "mandatory"),
        ("accelerator-cap", "mandatory"),
    }
    cap = next(v for v in result.violations if v.policy == "accelerator-cap")
    assert "can scale to 132 accelerators" in cap.message


def test_gke_gets_jobset_kueue_and_keda_but_brings_its_own_device_plugins_autoscaler_and_prometheus(
    preview: Previewer,
) -> None:
    releases = {r.inputs["name"] for r in of_type(preview("prod-gcp"), "kubernetes:helm.sh/v3:Release")}
    # kube-state-metrics with the node collector only: GKE's managed packages have no node state.
    assert releases == {"jobset", "kueue", "keda", "kube-state-metrics"}


def test_firewall_rule_config_allows_listed_ports() -> None:
    from meshstack.core.resources import ResourceView
    from meshstack.policies.pack import RULES_BY_NAME

    rule = RULES_BY_NAME["gcp-firewall-no-public-ingress"]
    https = ResourceView(
        "urn",
        "gcp:compute/firewall:Firewall",
        "web",
        "",
        {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": ["443"]}]},
    )
    assert list(rule.check(https, rule.settings({}))) != []  # type: ignore[arg-type]
    assert list(rule.check(https, rule.settings({"allowed_ports": [443]}))) == []  # type: ignore[arg-type]


def test_filestore_is_mounted_through_its_csi_driver(project_copy: MakeProject) -> None:
    config = stack_config("prod-gcp")
    config["meshstack:storage"]["filestore"] = [{"name": "home", "capacity_gib": 1024}]
    config["meshstack:workloads"][0]["mounts"] = [{"filestore": "home", "path": "/home/shared"}]
    result = preview_stack("prod-gcp", find_project(project_copy("prod-gcp", config)))
    instance = one(result, "gcp:filestore/instance:Instance", "prod-gcp-storage-home")
    assert instance.inputs["location"] == "us-east5-a" and instance.inputs["fileShares"]["capacityGb"] == 1024
    volume = one(result, "kubernetes:core/v1:PersistentVolume", "pretrain-home").inputs["spec"]["csi"]
    assert volume["driver"] == "filestore.csi.storage.gke.io"
    assert volume["volumeHandle"] == f"modeInstance/us-east5-a/{instance.outputs['name']}/share"
    assert volume["volumeAttributes"] == {"ip": instance.outputs["networks"][0]["ipAddresses"][0], "volume": "share"}
    assert any(i.description == "Filestore 1024 GiB BASIC_HDD" for i in result.cost.items)
    assert result.violations == []


def test_the_control_plane_reaches_the_add_ons_webhooks(preview: Previewer) -> None:
    """A private GKE control plane reaches nodes on 443 and 10250 only; JobSet's, Kueue's and KEDA's
    webhooks (9443), KEDA's metrics API (6443) and Kueue's visibility API (8082) need their own rule,
    from the control plane alone."""
    result = preview("prod-gcp")
    cluster = one(result, "gcp:container/cluster:Cluster", "prod-gcp-tpu")
    rule = one(result, "gcp:compute/firewall:Firewall", "prod-gcp-tpu-webhooks").inputs
    assert rule["sourceRanges"] == [cluster.inputs["privateClusterConfig"]["masterIpv4CidrBlock"]]
    assert rule["allows"] == [{"protocol": "tcp", "ports": ["6443", "8082", "9443"]}]
    assert rule["direction"] == "INGRESS"
    nodes = one(result, "gcp:serviceaccount/account:Account", "prod-gcp-tpu-id-nodes")
    assert rule["targetServiceAccounts"] == [nodes.outputs["email"]]
    addons = one(result, "meshstack:k8s:ClusterAddons", "prod-gcp-tpu-addons")
    assert rule_urn(result, "prod-gcp-tpu-webhooks") in addons.dependencies, "in place before any webhook is called"


def test_the_control_plane_reaches_kueues_visibility_api(preview: Previewer) -> None:
    """Kueue 0.12.3 always installs the APIService v1beta1.visibility.kueue.x-k8s.io, served on the
    manager's port 8082 (charts.yaml cites the chart's templates): closed, the APIService is never
    Available and deleting a namespace hangs on discovery (review P1-3)."""
    rule = one(preview("prod-gcp"), "gcp:compute/firewall:Firewall", "prod-gcp-tpu-webhooks").inputs
    [allowed] = rule["allows"]
    assert "8082" in allowed["ports"]


def rule_urn(result: Any, name: str) -> str:
    return one(result, "gcp:compute/firewall:Firewall", name).urn


def test_service_account_ids_are_valid_and_scoped_to_the_stack(project_copy: MakeProject) -> None:
    """Two stacks in one project must not both claim `wl-chat`: ids carry the stack and cluster, and a
    long name keeps a digest of the whole rather than colliding when cut to 30 characters."""
    from meshstack.components.gcp.iam import account_id

    ids = {}
    for stack in ("prod-gcp", "prod-gcp-canary"):
        result = preview_stack(stack, find_project(project_copy(stack, stack_config("prod-gcp"))))
        ids[stack] = {a.inputs["accountId"] for a in of_type(result, "gcp:serviceaccount/account:Account")}
        for value in ids[stack]:
            assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", value), value
    assert not ids["prod-gcp"] & ids["prod-gcp-canary"]
    long = "prod-gcp-research-cluster-id-"
    assert account_id(long + "chat") != account_id(long + "chat-v2")
    assert len(account_id(long + "chat")) == 30


def test_a_private_gke_endpoint_admits_the_deployers_network(project_copy: MakeProject) -> None:
    config = stack_config("prod-gcp")
    cluster_spec = config["meshstack:clusters"][0]
    cluster_spec["public_access_cidrs"] = []
    cluster_spec["deployer_cidrs"] = ["10.8.0.0/16"]
    result = preview_stack("prod-gcp", find_project(project_copy("prod-gcp", config)))
    cluster = one(result, "gcp:container/cluster:Cluster", "prod-gcp-tpu").inputs
    assert cluster["privateClusterConfig"]["enablePrivateEndpoint"] is True
    assert cluster["masterAuthorizedNetworksConfig"]["cidrBlocks"] == [
        {"cidrBlock": "10.8.0.0/16", "displayName": "deployer-0"}
    ]
