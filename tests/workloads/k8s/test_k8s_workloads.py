"""Under mocks, the Kubernetes objects carry the environment contract, placement, resources,
security context and mounts, and every manifest validates against the cluster version's schema."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from meshstack.components.k8s.addons import CHARTS
from meshstack.core.catalog import load_catalog
from meshstack.core.contract import EXIT_CONTRACT, EXIT_PREEMPTED, EXIT_STALLED, EXIT_UNTRUSTED
from meshstack.core.model_config import ModelConfig
from meshstack.core.nodes import node_labels
from meshstack.core.stack_file import find_project
from meshstack.preview.manifests import kubernetes_objects
from meshstack.preview.plan import Preview, preview_stack
from meshstack.program.pools import stack_pools
from tests.conftest import SHIPPED_STACKS, of_type, one, scannable, stack_config

Previewer = Callable[[str], Preview]
MakeProject = Callable[[str, dict[str, Any]], Path]
EXIT_CODES_COUNTED = (1, EXIT_UNTRUSTED, EXIT_STALLED)  # the program's own failures: they spend maxRestarts
JOBSET = "kubernetes:jobset.x-k8s.io/v1alpha2:JobSet"


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def jobset(preview: Preview) -> dict[str, Any]:
    return one(preview, JOBSET, "prod-aws-pretrain").inputs


def pod_of_jobset(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]


def pod_labels_of_jobset(spec: dict[str, Any]) -> dict[str, str]:
    return spec["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["metadata"]["labels"]


def test_jobset_carries_the_jax_environment_contract(preview: Previewer) -> None:
    spec = jobset(preview("prod-aws"))
    job = spec["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert (job["parallelism"], job["completions"], job["completionMode"]) == (4, 4, "Indexed")
    env = env_of(pod_of_jobset(spec)["containers"][0])
    assert env["JAX_COORDINATOR_ADDRESS"] == "pretrain-workers-0-0.pretrain:1234"
    assert env["JAX_NUM_PROCESSES"] == "4"
    assert env["JAX_PROCESS_ID"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    config = json.loads(env["MESHSTACK_JOB_CONFIG"])
    assert config["mesh"] == {"data": 4, "fsdp": 8, "tensor": 1}
    datasets = one(preview("prod-aws"), "aws:s3/bucket:Bucket", "prod-aws-storage-datasets").outputs["bucket"]
    assert config["data_uri"] == f"s3://{datasets}/tokens"
    assert config["peak_tflops_per_device"] == 989
    assert env["FI_PROVIDER"] == "efa"


def test_jobset_restarts_as_a_whole_with_deadline_and_ttl(preview: Previewer) -> None:
    result = preview("prod-aws")
    resource = one(result, JOBSET, "prod-aws-pretrain")
    spec = resource.inputs["spec"]
    assert spec["failurePolicy"]["maxRestarts"] == 10
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert spec["network"] == {"enableDNSHostnames": True}
    job = spec["replicatedJobs"][0]["template"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] == 604800
    assert pod_of_jobset(resource.inputs)["restartPolicy"] == "Never"
    jobset_release = one(result, "kubernetes:helm.sh/v3:Release", "prod-aws-train-addons-jobset")
    assert jobset_release.urn in resource.dependencies, "the JobSet waits for its CRD"


def test_preemption_restarts_the_group_uncounted_and_a_contract_error_ends_it(preview: Previewer) -> None:
    """The Job's podFailurePolicy names why a pod failed; the JobSet's rules act on the rule's index,
    which the Job writes into its failure message ("... matching FailJob rule at index N")."""
    spec = one(preview("prod-aws"), JOBSET, "prod-aws-pretrain").inputs["spec"]
    job = spec["replicatedJobs"][0]["template"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["onExitCodes"] == {"containerName": "train", "operator": "In", "values": [EXIT_PREEMPTED]}
    assert rules[2]["onExitCodes"]["values"] == [EXIT_CONTRACT]
    preempted, misconfigured = spec["failurePolicy"]["rules"]
    assert preempted["action"] == "RestartJobSetAndIgnoreMaxRestarts"
    assert misconfigured["action"] == "FailJobSet"
    for rule in (preempted, misconfigured):
        assert rule["onJobFailureReasons"] == ["PodFailurePolicy"]

    def matches(rule: dict[str, Any], message: str) -> bool:
        return any(re.search(p, message) for p in rule["onJobFailureMessagePatterns"])

    drained = "Pod ml/pretrain-workers-0-1-x has condition DisruptionTarget matching FailJob rule at index 0"
    sigterm = (
        "Container train for pod ml/pretrain-workers-0-2-x failed with exit code 143 matching FailJob rule at index 1"
    )
    broken = (
        "Container train for pod ml/pretrain-workers-0-0-x failed with exit code 2 matching FailJob rule at index 2"
    )
    assert matches(preempted, drained) and matches(preempted, sigterm) and not matches(preempted, broken)
    assert matches(misconfigured, broken) and not matches(misconfigured, sigterm)
    assert set(EXIT_CODES_COUNTED).isdisjoint(
        v for r in rules if "onExitCodes" in r for v in r["onExitCodes"]["values"]
    )


def test_the_grace_period_covers_two_steps_and_a_save(preview: Previewer, project_copy: MakeProject) -> None:
    pod = pod_of_jobset(jobset(preview("prod-aws")))
    assert pod["terminationGracePeriodSeconds"] == 60, "a 1.2B model's save fits the minimum"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["MESHSTACK_GRACE_SECONDS"]["value"] == "60"
    assert env["MESHSTACK_RESTART_ATTEMPT"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['jobset.sigs.k8s.io/restart-attempt']"}
    }
    config = stack_config("prod-aws")
    big = {"d_model": 4096, "n_layers": 32, "n_heads": 32, "d_ff": 16384, "max_seq_len": 2048}
    config["meshstack:workloads"][0]["model"] = big
    config["meshstack:workloads"][0]["mesh"] = {"fsdp": 32}
    config["meshstack:workloads"] = config["meshstack:workloads"][:1]
    root = project_copy("prod-aws", config)
    grace = pod_of_jobset(jobset(preview_stack("prod-aws", find_project(root))))["terminationGracePeriodSeconds"]
    params = ModelConfig(**big).param_count()
    save = params * 12 / 4 / 200e6
    assert grace >= 1 + save + 30 and grace > 90, "a 7B model's state takes over a minute to write from each host"


def test_training_pods_serve_metrics_the_cluster_scrapes(preview: Previewer) -> None:
    result = preview("prod-aws")
    pod = pod_of_jobset(jobset(result))
    assert {"name": "metrics", "containerPort": 9404} in pod["containers"][0]["ports"]
    assert (
        json.loads(next(e["value"] for e in pod["containers"][0]["env"] if e["name"] == "MESHSTACK_JOB_CONFIG"))[
            "metrics_port"
        ]
        == 9404
    )
    monitor = one(result, "kubernetes:monitoring.coreos.com/v1:PodMonitor", "prod-aws-pretrain-metrics").inputs
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"] == pod_labels_of_jobset(jobset(result))
    gke = one(preview("prod-gcp"), "kubernetes:monitoring.googleapis.com/v1:PodMonitoring", "prod-gcp-pretrain-metrics")
    assert gke.inputs["spec"]["endpoints"][0]["port"] == "metrics"


def test_training_pods_sit_on_their_pool_with_accelerators_and_efa(preview: Previewer) -> None:
    pod = pod_of_jobset(jobset(preview("prod-aws")))
    assert pod["nodeSelector"] == {"meshstack.io/node-pool": "h100"}
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert {"key": "meshstack.io/dedicated", "operator": "Equal", "value": "training", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "8"
    assert resources["limits"]["vpc.amazonaws.com/efa"] == "32"
    assert resources["requests"] == resources["limits"]
    assert resources["limits"]["cpu"] == "190"


def test_training_pods_meet_restricted_even_on_efa(preview: Previewer) -> None:
    container = pod_of_jobset(jobset(preview("prod-aws")))["containers"][0]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 1000
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_lustre_is_mounted_through_a_static_volume(preview: Previewer) -> None:
    result = preview("prod-aws")
    pod = pod_of_jobset(jobset(result))
    [claim] = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claim["persistentVolumeClaim"]["claimName"] == "pretrain-scratch"
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/datasets"] == claim["name"] and "/tmp" in mounts and "/dev/shm" in mounts
    volume = one(result, "kubernetes:core/v1:PersistentVolume", "pretrain-scratch").inputs["spec"]
    fs = one(result, "aws:fsx/lustreFileSystem:LustreFileSystem", "prod-aws-storage-scratch").outputs
    assert volume["csi"] == {
        "driver": "fsx.csi.aws.com",
        "volumeHandle": fs["id"],
        "volumeAttributes": {"dnsname": fs["dnsName"], "mountname": fs["mountName"]},
    }


def test_workloads_reach_s3_through_irsa_roles_scoped_to_their_buckets(preview: Previewer) -> None:
    result = preview("prod-aws")
    account = one(result, "kubernetes:core/v1:ServiceAccount", "prod-aws-pretrain").inputs
    role = one(result, "aws:iam/role:Role", "prod-aws-train-iam-sa-pretrain")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role.outputs["arn"]}
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:ml:pretrain" in trust.values()
    policy = json.loads(one(result, "aws:iam/rolePolicy:RolePolicy", "prod-aws-train-iam-sa-pretrain").inputs["policy"])
    buckets = {
        one(result, "aws:s3/bucket:Bucket", f"prod-aws-storage-{b}").outputs["arn"] for b in ("datasets", "checkpoints")
    }
    listed = {s["Resource"][0] for s in policy["Statement"] if s["Sid"].startswith("List")}
    assert listed == buckets
    objects = next(s for s in policy["Statement"] if s["Sid"] == "ObjectAccess")["Resource"]
    arn = {
        b: one(result, "aws:s3/bucket:Bucket", f"prod-aws-storage-{b}").outputs["arn"]
        for b in ("datasets", "checkpoints")
    }
    assert set(objects) == {
        f"{arn['datasets']}/tokens",
        f"{arn['datasets']}/tokens/*",
        f"{arn['checkpoints']}/pretrain",
        f"{arn['checkpoints']}/pretrain/*",
    }, "only under the prefixes the workload names"
    chat = json.loads(one(result, "aws:iam/rolePolicy:RolePolicy", "prod-aws-train-iam-sa-chat").inputs["policy"])
    chat_objects = next(s for s in chat["Statement"] if s["Sid"] == "ObjectAccess")
    assert chat_objects["Action"] == ["s3:GetObject"], "serving only reads checkpoints"
    assert chat_objects["Resource"] == [f"{arn['checkpoints']}/pretrain", f"{arn['checkpoints']}/pretrain/*"]


def test_inference_service_objects(preview: Previewer) -> None:
    result = preview("prod-aws")
    deployment = one(result, "kubernetes:apps/v1:Deployment", "prod-aws-chat").inputs["spec"]
    container = deployment["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert json.loads(env_of(container)["MESHSTACK_JOB_CONFIG"])["serve"]["max_batch_size"] == 16
    assert deployment["template"]["spec"]["nodeSelector"] == {"meshstack.io/node-pool": "serve"}
    assert "replicas" not in deployment, "KEDA owns the replica count; an `up` must not reset it"
    assert container["readinessProbe"]["failureThreshold"] >= 2, "one slow probe must not take a replica out"
    assert not of_type(result, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"), "KEDA makes its own HPA"
    scaled = one(result, "kubernetes:keda.sh/v1alpha1:ScaledObject", "prod-aws-chat").inputs["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 4)
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat"}
    trigger = scaled["triggers"][0]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert trigger["metadata"] == {
        "serverAddress": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "query": 'sum(meshstack_requests_in_flight{namespace="ml",pod=~"chat-[a-z0-9]+-[a-z0-9]+"})',
        "threshold": "16",
    }, "scaled on the server's own gauge, one full batch per replica"
    monitor = one(result, "kubernetes:monitoring.coreos.com/v1:PodMonitor", "prod-aws-chat").inputs["spec"]
    assert monitor["selector"]["matchLabels"] == deployment["selector"]["matchLabels"]
    assert monitor["podMetricsEndpoints"][0]["port"] == "http"
    pdb = one(result, "kubernetes:policy/v1:PodDisruptionBudget", "prod-aws-chat").inputs["spec"]
    # One replica (min_replicas 1): minAvailable 1 would refuse every eviction and fail node-group updates
    # with PodEvictionFailure; the budget lets the one replica move.
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": deployment["selector"]["matchLabels"]}}
    service = one(result, "kubernetes:core/v1:Service", "prod-aws-chat").inputs["spec"]
    assert service["type"] == "ClusterIP" and service["ports"][0]["targetPort"] == "http"


def test_cluster_installs_the_add_ons_its_pools_and_storage_need(preview: Previewer) -> None:
    releases = {r.inputs["name"] for r in of_type(preview("prod-aws"), "kubernetes:helm.sh/v3:Release")}
    scaling = {"cluster-autoscaler", "metrics-server", "keda", "kube-prometheus-stack", "dcgm-exporter"}
    assert releases == {"nvidia-device-plugin", "efa-device-plugin", "jobset", "kueue", "fsx-csi-driver", *scaling}
    dev = {r.inputs["name"] for r in of_type(preview("dev"), "kubernetes:helm.sh/v3:Release")}
    assert dev == {"nvidia-device-plugin", "jobset", "kueue", *scaling}
    provider = one(preview("dev"), "pulumi:providers:kubernetes", "dev-dev-k8s")
    for release in of_type(preview("dev"), "kubernetes:helm.sh/v3:Release"):
        assert release.provider.startswith(provider.urn)


def test_the_efa_device_plugin_runs_on_the_efa_pools_alone(preview: Previewer) -> None:
    """The EFA chart at v0.5.6 reads no `affinity` (review P2-7): its node affinity is one term per
    supportedInstanceLabels key, `key In values`. Every value given is one the chart reads, and the
    terms it renders select the EFA pool's nodes and not the L40S serving pool's."""
    result = preview("prod-aws")
    values = one(result, "kubernetes:helm.sh/v3:Release", "prod-aws-train-addons-efa-device-plugin").inputs["values"]
    assert set(values) <= set(CHARTS["efa-device-plugin"]["values_read"])
    selector = values["supportedInstanceLabels"]

    def scheduled(labels: dict[str, str]) -> bool:
        return any(labels.get(key) in selector["values"] for key in selector["keys"])

    pools = {p.name: node_labels(p) for p in stack_pools(result.spec, load_catalog(cloud="aws")).values()}
    assert scheduled(pools["h100"]) and not scheduled(pools["serve"]) and not scheduled(pools["system"])
    assert values["tolerations"] == [{"operator": "Exists"}], "the h100 pool is tainted for training"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_manifest_validates_against_the_cluster_version(preview: Previewer, stack: str) -> None:
    result = preview(stack)
    version = result.spec.clusters[0].kubernetes_version + ".0"
    rendered = scannable(result.resources)
    assert len(rendered) >= 8
    for manifest in rendered:
        if "." in manifest["apiVersion"].split("/")[0]:
            continue  # custom resources: their CRD schemas, in test_manifests.py
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{manifest['kind']} {manifest['metadata']['name']}: {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_a_changed_training_job_is_replaced_not_updated(preview: Previewer, stack: str) -> None:
    """JobSet and Job specs are immutable (JobSet's webhook: ValidateImmutableField on replicatedJobs;
    failurePolicy, network, successPolicy `self == oldSelf`; a Job's pod template): an update of the
    image or config is refused with "field is immutable". The engine replaces instead, deleting the
    old object first since the new one takes its name. Kueue's own flip of spec.suspend stays ignored."""
    for job in of_type(preview(stack), JOBSET):
        assert job.replace_on_changes == ["spec"] and job.delete_before_replace is True
        assert job.ignore_changes == ["spec.suspend"]


def test_the_indexed_job_is_replaced_not_updated(project_copy: MakeProject) -> None:
    config = stack_config("dev")
    config["meshstack:workloads"][0]["use_jobset"] = False
    job = one(preview_stack("dev", find_project(project_copy("dev", config))), "kubernetes:batch/v1:Job", "dev-tiny")
    assert job.replace_on_changes == ["spec"] and job.delete_before_replace is True


def test_indexed_job_fallback_without_jobset(project_copy: Callable[[str, dict[str, Any]], Path]) -> None:
    config = stack_config("dev")
    config["meshstack:workloads"][0]["use_jobset"] = False
    result = preview_stack("dev", find_project(project_copy("dev", config)))
    job = one(result, "kubernetes:batch/v1:Job", "dev-tiny").inputs["spec"]
    assert job["completionMode"] == "Indexed" and job["parallelism"] == 2
    pod = job["template"]["spec"]
    assert pod["subdomain"] == "tiny"
    assert env_of(pod["containers"][0])["JAX_COORDINATOR_ADDRESS"] == "tiny-0.tiny:1234"
    service = one(result, "kubernetes:core/v1:Service", "dev-tiny-headless").inputs["spec"]
    assert service["clusterIP"] == "None" and service["selector"] == {"batch.kubernetes.io/job-name": "tiny"}
    for manifest in scannable(result.resources):
        if "." not in manifest["apiVersion"].split("/")[0]:
            kubernetes_validate.validate(manifest, "1.33.0", strict=True)
    assert result.violations == []


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_training_jobs_go_to_a_local_queue_suspended(preview: Previewer, stack: str) -> None:
    """Kueue starts a job it admitted by unsuspending it; a job created running would bypass the quota."""
    result = preview(stack)
    objects = [body for _, body in kubernetes_objects(result.resources)]
    local_queues = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "LocalQueue"}
    cluster_queues = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterQueue"}
    jobsets = [o for o in objects if o["kind"] == "JobSet"]
    assert jobsets
    for jobset in jobsets:
        queue = jobset["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
        assert (jobset["metadata"]["namespace"], queue) in local_queues
        assert jobset["spec"]["suspend"] is True
    for local in (o for o in objects if o["kind"] == "LocalQueue"):
        assert local["spec"]["clusterQueue"] in cluster_queues
    pools = {p.name for c in result.spec.clusters for p in c.node_pools}
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "ResourceFlavor"} == pools


def test_queues_priorities_and_flavors_follow_the_spec(preview: Previewer) -> None:
    result = preview("prod-aws")
    objects = {(body["kind"], body["metadata"]["name"]): body for _, body in kubernetes_objects(result.resources)}
    h100 = objects[("ResourceFlavor", "h100")]["spec"]
    assert h100["nodeLabels"] == {"meshstack.io/node-pool": "h100"}
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in h100["nodeTaints"]
    assert {"key": "meshstack.io/dedicated", "value": "training", "effect": "NoSchedule"} in h100["nodeTaints"]
    pretraining = objects[("ClusterQueue", "pretraining")]["spec"]
    assert pretraining["cohort"] == "foundation"
    assert pretraining["namespaceSelector"]["matchExpressions"][0]["values"] == ["ml"]
    [group] = pretraining["resourceGroups"]
    assert group["coveredResources"] == ["cpu", "memory", "nvidia.com/gpu", "vpc.amazonaws.com/efa"]
    quotas = {f["name"]: {r["name"]: r["nominalQuota"] for r in f["resources"]} for f in group["flavors"]}
    # 4 p5.48xlarge: 192 vCPUs, 2048 GiB, 8 H100s and 32 EFA interfaces each.
    assert quotas["h100"] == {"cpu": "768", "memory": "8192Gi", "nvidia.com/gpu": "32", "vpc.amazonaws.com/efa": "128"}
    assert set(quotas["serve"].values()) == {"0", "0Gi"}, "no quota on pools the queue was not given"
    experiments = objects[("ClusterQueue", "experiments")]["spec"]
    assert experiments["cohort"] == "foundation"
    assert {r["nominalQuota"] for f in experiments["resourceGroups"][0]["flavors"] for r in f["resources"]} <= {
        "0",
        "0Gi",
    }, "experiments own nothing: they borrow"
    assert objects[("WorkloadPriorityClass", "production")]["value"] == 1000
    jobset = objects[("JobSet", "pretrain")]
    assert jobset["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "production"
    assert one(result, "kubernetes:jobset.x-k8s.io/v1alpha2:JobSet", "prod-aws-pretrain")


def test_gke_services_are_scraped_by_managed_prometheus_and_scaled_through_it(preview: Previewer) -> None:
    result = preview("prod-gcp")
    scaled = one(result, "kubernetes:keda.sh/v1alpha1:ScaledObject", "prod-gcp-chat").inputs["spec"]
    [trigger] = scaled["triggers"]
    assert trigger["metadata"]["serverAddress"] == (
        "https://monitoring.googleapis.com/v1/projects/meshstack-prod-ml/location/global/prometheus"
    )
    assert trigger["metadata"]["query"].startswith('sum(meshstack_requests_in_flight{cluster="prod-gcp-tpu",')
    auth = one(result, "kubernetes:keda.sh/v1alpha1:TriggerAuthentication", "prod-gcp-chat-prometheus").inputs
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert auth["spec"] == {"podIdentity": {"provider": "gcp"}}
    monitoring = one(result, "kubernetes:monitoring.googleapis.com/v1:PodMonitoring", "prod-gcp-chat").inputs["spec"]
    assert monitoring["endpoints"][0]["port"] == "http"
    member = one(result, "gcp:projects/iAMMember:IAMMember", "prod-gcp-tpu-keda-metrics").inputs
    assert member["role"] == "roles/monitoring.viewer"
    assert member["member"].endswith("/subject/ns/keda/sa/keda-operator")
    assert member["member"].startswith("principal://iam.googleapis.com/projects/")


def test_the_inference_service_admits_only_its_clients_and_the_scraper(preview: Previewer) -> None:
    result = preview("prod-aws")
    policy = one(result, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "prod-aws-chat").inputs["spec"]
    deployment = one(result, "kubernetes:apps/v1:Deployment", "prod-aws-chat").inputs["spec"]
    assert policy["podSelector"]["matchLabels"] == deployment["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress"]
    clients, scraper = policy["ingress"]
    gateway = {"matchLabels": {"app.kubernetes.io/name": "gateway"}}
    assert clients["from"] == [
        {"podSelector": gateway},
        {
            "namespaceSelector": {
                "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["apps"]}]
            },
            "podSelector": gateway,
        },
    ]
    assert clients["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert scraper["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["monitoring"]
    token = next(
        e for e in deployment["template"]["spec"]["containers"][0]["env"] if e["name"] == "MESHSTACK_SERVE_TOKEN"
    )
    assert token["valueFrom"] == {"secretKeyRef": {"name": "chat-token", "key": "token"}}
    gcp = one(preview("prod-gcp"), "kubernetes:networking.k8s.io/v1:NetworkPolicy", "prod-gcp-chat").inputs["spec"]
    assert gcp["ingress"][1]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["gmp-system"]


def test_the_clusters_enforce_network_policy(preview: Previewer) -> None:
    addon = one(preview("prod-aws"), "aws:eks/addon:Addon", "prod-aws-train-vpc-cni").inputs
    assert json.loads(addon["configurationValues"]) == {"enableNetworkPolicy": "true"}
    cluster = one(preview("prod-gcp"), "gcp:container/cluster:Cluster", "prod-gcp-tpu").inputs
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"
