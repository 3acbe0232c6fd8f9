"""Workloads people bring: their own training command, MaxText, vLLM and their own server, rendered as
schema-valid objects under the one environment contract, checked by the pack as the engine calls it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from meshstack.core.contract import CONTRACT_ENV, TORCH_MASTER_PORT
from meshstack.core.engines import vllm
from meshstack.core.errors import SpecError
from meshstack.core.programs import maxtext
from meshstack.core.stack_file import PROJECT_ROOT, find_project, spec_from_config
from meshstack.preview.plan import Preview, preview_stack
from meshstack.preview.policy_runner import evaluate
from meshstack.preview.recorder import Resource
from tests.conftest import of_type, one, scannable, stack_config
from tests.support.schemas import crd_schema

MakeProject = Callable[[str, dict[str, Any]], Path]
JOBSET = "kubernetes:jobset.x-k8s.io/v1alpha2:JobSet"
IMAGE = (
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/trainer@sha256:"
    "5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d"
)


def custom_training(config: dict[str, Any]) -> dict[str, Any]:
    """prod-aws's pretraining as the team's own program."""
    pretrain = config["meshstack:workloads"][0]
    for key in ("model", "mesh", "train"):
        pretrain.pop(key)
    pretrain.update(
        image=IMAGE,
        command=["python", "-m", "team.train"],
        args=["--config", "configs/7b.yaml", "--out", "$(MESHSTACK_CHECKPOINT_URI)"],
        env={"WANDB_MODE": "offline"},
        metrics_port=9100,
    )
    chat = config["meshstack:workloads"][1]
    del chat["from_training"]
    chat["checkpoints"] = {"bucket": "checkpoints", "prefix": "chat"}
    return config


def vllm_service(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """prod-aws with an 8B model served by vLLM on a 4 x L40S pool, tensor parallel over the node."""
    pools = config["meshstack:clusters"][0]["node_pools"]
    pools.append(
        {
            "name": "big",
            "accelerator": "l40s",
            "instance_type": "g6e.12xlarge",
            "accelerators_per_node": 4,
            "min_nodes": 1,
            "max_nodes": 2,
        }
    )
    config["meshstack:budget"].pop("max_accelerators", None)
    service = {
        "name": "llama",
        "kind": "inference",
        "cluster": "train",
        "node_pool": "big",
        "engine": "vllm",
        "weights": {"bucket": "checkpoints", "prefix": "models/llama-3.1-8b"},
        "weights_gib": 16,
        "devices_per_replica": 4,
        "min_replicas": 1,
        "max_replicas": 2,
        "vllm": {"max_model_len": 8192, "quantization": "fp8", "extra_args": ["--enable-chunked-prefill"]},
        **extra,
    }
    config["meshstack:workloads"].append(service)
    return config


# prod-aws's pack takes images from the account's registry, pinned by digest: vLLM's image mirrored there.
MIRRORED_VLLM = (
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm/vllm-openai@sha256:"
    "9d2a1f0e8c7b6a5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"
)


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Preview:
    return _preview(tmp_path_factory.mktemp("custom"), custom_training(stack_config("prod-aws")))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Preview:
    return _preview(tmp_path_factory.mktemp("vllm"), vllm_service(stack_config("prod-aws"), image=MIRRORED_VLLM))


def _preview(root: Path, config: dict[str, Any]) -> Preview:
    (root / "stacks").mkdir()
    here = PROJECT_ROOT
    (root / "Pulumi.yaml").write_text((here / "Pulumi.yaml").read_text())
    (root / "stacks" / "__main__.py").write_text((here / "stacks" / "__main__.py").read_text())
    (root / "stacks" / "Pulumi.prod-aws.yaml").write_text(yaml.safe_dump({"config": config}))
    return preview_stack("prod-aws", find_project(root))


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def pod_of(jobset: dict[str, Any]) -> dict[str, Any]:
    return jobset["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]


def validate_objects(result: Preview) -> int:
    """Every rendered object against its schema: the cluster version's for core kinds, the published CRD
    schemas for the rest. Returns how many custom resources were checked."""
    version = result.spec.clusters[0].kubernetes_version + ".0"
    custom = 0
    for body in scannable(result.resources):
        group = body["apiVersion"].split("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            schema = crd_schema(body["apiVersion"], body["kind"])
            errors = [e.message for e in jsonschema.validators.validator_for(schema)(schema).iter_errors(body)]
            assert not errors, f"{body['kind']} {body['metadata']['name']}: {errors}"
            custom += 1
        else:
            kubernetes_validate.validate(body, version, strict=True)
    return custom


def test_a_custom_program_runs_its_exact_command_under_the_contract(custom: Preview) -> None:
    jobset = one(custom, JOBSET, "prod-aws-pretrain").inputs
    [container] = pod_of(jobset)["containers"]
    assert container["image"] == IMAGE
    assert container["command"] == ["python", "-m", "team.train"]
    assert container["args"] == ["--config", "configs/7b.yaml", "--out", "$(MESHSTACK_CHECKPOINT_URI)"]
    env = env_of(container)
    assert "MESHSTACK_JOB_CONFIG" not in env, "meshstack's trainer config is not the program's business"
    index = {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    host = "pretrain-workers-0-0.pretrain"
    buckets = {r.name: r.outputs["bucket"] for r in of_type(custom, "aws:s3/bucket:Bucket")}
    assert env == {
        "MESHSTACK_GRACE_SECONDS": "120",
        "MESHSTACK_CHECKPOINT_URI": f"s3://{buckets['prod-aws-storage-checkpoints']}/pretrain",
        "MESHSTACK_DATA_URI": f"s3://{buckets['prod-aws-storage-datasets']}/tokens",
        "FI_PROVIDER": "efa",
        "FI_EFA_USE_DEVICE_RDMA": "1",
        "NCCL_SOCKET_IFNAME": "^lo,docker",
        "MESHSTACK_RESTART_ATTEMPT": {
            "fieldRef": {"fieldPath": "metadata.labels['jobset.sigs.k8s.io/restart-attempt']"}
        },
        "JAX_COORDINATOR_ADDRESS": f"{host}:1234",
        "JAX_NUM_PROCESSES": "4",
        "JAX_PROCESS_ID": index,
        "MASTER_ADDR": host,
        "MASTER_PORT": str(TORCH_MASTER_PORT),
        "PET_MASTER_ADDR": host,
        "PET_MASTER_PORT": str(TORCH_MASTER_PORT),
        "WORLD_SIZE": "4",
        "RANK": index,
        "NODE_RANK": index,
        "PET_NNODES": "4",
        "PET_NODE_RANK": index,
        "PET_NPROC_PER_NODE": "8",
        "WANDB_MODE": "offline",
    }
    assert set(env) - {"WANDB_MODE", "FI_PROVIDER", "FI_EFA_USE_DEVICE_RDMA", "NCCL_SOCKET_IFNAME"} <= CONTRACT_ENV
    assert pod_of(jobset)["terminationGracePeriodSeconds"] == 120
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"coordinator": 1234, "metrics": 9100}
    monitor = one(custom, "kubernetes:monitoring.coreos.com/v1:PodMonitor", "prod-aws-pretrain-metrics").inputs
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_a_custom_program_keeps_the_failure_contract_queue_and_schema(custom: Preview) -> None:
    jobset = one(custom, JOBSET, "prod-aws-pretrain").inputs
    assert jobset["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "pretraining"
    assert jobset["spec"]["suspend"] is True
    rules = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]["podFailurePolicy"]["rules"]
    assert [r.get("onExitCodes", {}).get("values") for r in rules] == [None, [143], [2]]
    assert jobset["spec"]["failurePolicy"]["rules"][0]["action"] == "RestartJobSetAndIgnoreMaxRestarts"
    assert validate_objects(custom) >= 1
    assert [v.rule_id for v in custom.violations if v.level == "mandatory"] == []


def test_without_metrics_port_a_custom_program_is_not_scraped(project_copy: MakeProject) -> None:
    config = custom_training(stack_config("prod-aws"))
    del config["meshstack:workloads"][0]["metrics_port"]
    result = preview_stack("prod-aws", find_project(project_copy("prod-aws", config)))
    [container] = pod_of(one(result, JOBSET, "prod-aws-pretrain").inputs)["containers"]
    assert [p["name"] for p in container["ports"]] == ["coordinator"]
    assert not [r for r in of_type(result, "kubernetes:monitoring.coreos.com/v1:PodMonitor") if "pretrain" in r.name]


def test_the_pack_still_catches_a_privileged_custom_container(custom: Preview) -> None:
    resources = []
    for r in custom.resources:
        if r.type == JOBSET:
            inputs = copy.deepcopy(r.inputs)
            pod_of(inputs)["containers"][0]["securityContext"]["privileged"] = True
            r = Resource(r.urn, r.type, r.name, r.parent, r.custom, r.provider, r.dependencies, inputs, inputs)
        resources.append(r)
    found = [v for v in evaluate(resources) if "privileged" in v.message]
    assert found and all(v.urn.endswith("::prod-aws-pretrain") for v in found)


def test_maxtext_renders_its_own_command_from_the_spec(project_copy: MakeProject) -> None:
    config = stack_config("prod-aws")
    pretrain = config["meshstack:workloads"][0]
    pretrain.update(program="maxtext", image=IMAGE, maxtext={"model_name": "llama2-7b"})
    chat = config["meshstack:workloads"][1]
    del chat["from_training"]
    chat["checkpoints"] = {"bucket": "checkpoints", "prefix": "chat"}
    result = preview_stack("prod-aws", find_project(project_copy("prod-aws", config)))
    [container] = pod_of(one(result, JOBSET, "prod-aws-pretrain").inputs)["containers"]
    command = container["command"]
    facts = maxtext.facts()
    assert command[: len(facts.command)] == [
        "python3",
        "-m",
        "maxtext.trainers.pre_train.train",
        "src/maxtext/configs/base.yml",
    ]
    keys = dict(arg.split("=", 1) for arg in command[len(facts.command) :])
    assert set(keys) <= facts.keys, f"not MaxText {facts.source['tag']} keys: {set(keys) - facts.keys}"
    assert keys["base_output_directory"] == "$(MESHSTACK_CHECKPOINT_URI)"
    assert keys["dataset_path"] == "$(MESHSTACK_DATA_URI)"
    assert keys["run_name"] == "pretrain" and keys["hardware"] == "gpu" and keys["model_name"] == "llama2-7b"
    # mesh data 4 x fsdp 8 over 4 hosts of 8 GPUs: fsdp on NVLink inside a host, data between hosts
    assert (keys["ici_fsdp_parallelism"], keys["ici_data_parallelism"], keys["ici_tensor_parallelism"]) == (
        "8",
        "1",
        "1",
    )
    assert (keys["dcn_fsdp_parallelism"], keys["dcn_data_parallelism"]) == ("1", "4")
    assert keys["per_device_batch_size"] == str(256 / 32) and keys["steps"] == "100000"
    env = env_of(container)
    assert env["JAX_COORDINATOR_IP"] == "pretrain-workers-0-0.pretrain" and env["NNODES"] == "4"
    assert env["NODE_RANK"] == env["JAX_PROCESS_ID"]
    assert "MESHSTACK_JOB_CONFIG" not in env
    validate_objects(result)


def test_a_vllm_service_renders_vllms_own_server(served: Preview) -> None:
    deployment = one(served, "kubernetes:apps/v1:Deployment", "prod-aws-llama").inputs
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    facts = vllm.facts()
    assert container["image"] == MIRRORED_VLLM
    assert container["command"] == ["vllm", "serve"]
    args = container["args"]
    bucket = one(served, "aws:s3/bucket:Bucket", "prod-aws-storage-checkpoints").outputs["bucket"]
    assert args[0] == f"s3://{bucket}/models/llama-3.1-8b"
    flags = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    assert set(flags) <= facts.flags, f"not flags of vLLM {facts.source['tag']}: {set(flags) - facts.flags}"

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    assert value("--tensor-parallel-size") == "4" and value("--max-model-len") == "8192"
    assert value("--served-model-name") == "llama" and value("--quantization") == "fp8"
    assert value("--port") == "8000" and value("--load-format") == "runai_streamer"
    assert args[-1] == "--enable-chunked-prefill"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    # 16 GiB streamed at 0.25 GiB/s plus 300 s of engine start, doubled: a slow node is not killed
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * (16 / 0.25 + 300)
    assert deployment["metadata"]["annotations"] == {"pulumi.com/timeoutSeconds": str(2 * (64 + 300) + 600)}
    env = env_of(container)
    assert env["HOME"] == "/tmp", "vLLM and torch write caches under $HOME; the root file system is read-only"
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in deployment[
        "spec"
    ]["template"]["spec"]["tolerations"]
    validate_objects(served)


def test_a_vllm_service_scales_on_vllms_own_metrics(served: Preview) -> None:
    scaled = one(served, "kubernetes:keda.sh/v1alpha1:ScaledObject", "prod-aws-llama").inputs["spec"]
    query = scaled["triggers"][0]["metadata"]["query"]
    matchers = '{namespace="ml",pod=~"llama-[a-z0-9]+-[a-z0-9]+"}'
    assert query == f"sum(vllm:num_requests_running{matchers}) + sum(vllm:num_requests_waiting{matchers})"
    assert scaled["triggers"][0]["metadata"]["threshold"] == "64", "one full batch (vllm.max_num_seqs) per replica"
    monitor = one(served, "kubernetes:monitoring.coreos.com/v1:PodMonitor", "prod-aws-llama").inputs["spec"]
    assert monitor["podMetricsEndpoints"][0]["path"] == "/metrics"
    role = one(served, "aws:iam/rolePolicy:RolePolicy", "prod-aws-train-iam-sa-llama").inputs["policy"]
    statements = json.loads(role)["Statement"]
    objects = next(s for s in statements if s["Sid"] == "ObjectAccess")
    assert objects["Action"] == ["s3:GetObject"], "the server only reads its weights"
    arn = one(served, "aws:s3/bucket:Bucket", "prod-aws-storage-checkpoints").outputs["arn"]
    assert objects["Resource"] == [f"{arn}/models/llama-3.1-8b", f"{arn}/models/llama-3.1-8b/*"], "that prefix only"
    assert [v.rule_id for v in served.violations if v.level == "mandatory"] == []


def test_vllms_pinned_image_is_the_default_and_the_pack_holds_it_to_the_registry_rule(
    project_copy: MakeProject,
) -> None:
    result = preview_stack("prod-aws", find_project(project_copy("prod-aws", vllm_service(stack_config("prod-aws")))))
    deployment = one(result, "kubernetes:apps/v1:Deployment", "prod-aws-llama").inputs
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.34.0"
    blocked = [v for v in result.violations if v.level == "mandatory"]
    assert [v.rule_id for v in blocked] == ["MS-K8S-007"] and "docker.io/vllm/vllm-openai" in blocked[0].message


def test_a_custom_server_gets_the_same_service(project_copy: MakeProject) -> None:
    config = stack_config("prod-aws")
    chat = config["meshstack:workloads"][1]
    for key in ("from_training", "model", "serve"):
        chat.pop(key)
    chat.update(
        engine="custom",
        image="registry.example.com/team/server:3",
        command=["/app/server"],
        args=["--listen", ":9000"],
        port=9000,
        health_path="/ready",
        metrics_path="/stats",
        in_flight_metric="server_active_requests",
    )
    result = preview_stack("prod-aws", find_project(project_copy("prod-aws", config)))
    deployment = one(result, "kubernetes:apps/v1:Deployment", "prod-aws-chat").inputs
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert (container["command"], container["args"]) == (["/app/server"], ["--listen", ":9000"])
    assert container["ports"] == [{"name": "http", "containerPort": 9000}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert env_of(container)["MESHSTACK_SERVE_TOKEN"] == {"secretKeyRef": {"name": "chat-token", "key": "token"}}
    policy = one(result, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "prod-aws-chat").inputs["spec"]
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9000}]
    scaled = one(result, "kubernetes:keda.sh/v1alpha1:ScaledObject", "prod-aws-chat").inputs["spec"]
    assert scaled["triggers"][0]["metadata"]["query"].startswith("sum(server_active_requests{")
    monitor = one(result, "kubernetes:monitoring.coreos.com/v1:PodMonitor", "prod-aws-chat").inputs["spec"]
    assert monitor["podMetricsEndpoints"][0]["path"] == "/stats"
    assert (
        one(result, "kubernetes:policy/v1:PodDisruptionBudget", "prod-aws-chat").inputs["spec"]["maxUnavailable"] == 1
    )
    validate_objects(result)


def test_a_server_waiting_for_this_stacks_training_is_not_awaited(preview: Callable[[str], Preview]) -> None:
    result = preview("prod-aws")
    for typ in ("kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service"):
        meta = one(result, typ, "prod-aws-chat").inputs["metadata"]
        assert meta["annotations"] == {"pulumi.com/skipAwait": "true"}, typ
    deployment = one(result, "kubernetes:apps/v1:Deployment", "prod-aws-chat").inputs
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config = json.loads(env_of(container)["MESHSTACK_JOB_CONFIG"])
    assert config["wait_for_checkpoint"] is True


def problem(config: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(SpecError) as info:
        spec_from_config("prod-aws", config)
    [found] = info.value.problems
    return found


def training(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    config = custom_training(stack_config("prod-aws"))
    change(config["meshstack:workloads"][0])
    return config


def serving(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    config = vllm_service(stack_config("prod-aws"))
    change(config["meshstack:workloads"][-1])
    return config


@pytest.mark.parametrize(
    ("config", "path", "text"),
    [
        (training(lambda w: w.update(command=[])), "workloads[0].command", "non-empty list of non-empty strings"),
        (training(lambda w: w.update(command=["python", " "])), "workloads[0].command", "non-empty strings"),
        (training(lambda w: w.update(command="python train.py")), "workloads[0].command", "valid list"),
        (training(lambda w: w.update(env={"1BAD": "x"})), "workloads[0].env.1BAD", "not an environment variable"),
        (
            training(lambda w: w.update(env={"JAX_PROCESS_ID": "0"})),
            "workloads[0].env.JAX_PROCESS_ID",
            "part of meshstack's environment contract",
        ),
        (
            training(lambda w: w.update(env={"MASTER_ADDR": "x"})),
            "workloads[0].env.MASTER_ADDR",
            "part of meshstack's environment contract",
        ),
        (training(lambda w: w.update(mesh={"data": 4})), "workloads[0].mesh", "do not apply to a program of your own"),
        (training(lambda w: w.update(train={"steps": 3})), "workloads[0].train", "do not apply"),
        (training(lambda w: w.update(program="maxtext")), "workloads[0].command", "drop program: maxtext"),
        (training(lambda w: w.update(metrics_port=1234)), "workloads[0].metrics_port", "also coordinator_port"),
        (training(lambda w: w.update(metrics_port=TORCH_MASTER_PORT)), "workloads[0].metrics_port", "torch"),
        (training(lambda w: w.pop("image")), "workloads[0].image", "needs the image"),
        (
            training(lambda w: (w.pop("command"), w.pop("args"), w.update(program="maxtext", maxtext={"stepz": 3}))),
            "workloads[0].maxtext.stepz",
            "has no config key 'stepz'",
        ),
        (
            training(lambda w: (w.pop("command"), w.pop("args"), w.update(program="maxtext", maxtext={"steps": 3}))),
            "workloads[0].maxtext.steps",
            "rendered from the spec",
        ),
        (serving(lambda w: w.pop("weights")), "workloads[2].weights", "weights (a bucket and a prefix) or an hf_model"),
        (
            serving(lambda w: w.update(hf_model="meta-llama/Llama-3.1-8B")),
            "workloads[2].weights",
            "give one",
        ),
        (serving(lambda w: w.update(devices_per_replica=3)), "workloads[2].devices_per_replica", "must divide the 4"),
        (serving(lambda w: w.pop("weights_gib")), "workloads[2].weights_gib", "size the startup probe"),
        (
            serving(lambda w: w["vllm"].update(extra_args=["--tensor-parallel-size", "2"])),
            "workloads[2].vllm.extra_args[0]",
            "set from the spec",
        ),
        (
            serving(lambda w: w["vllm"].update(extra_args=["--no-such-flag"])),
            "workloads[2].vllm.extra_args[0]",
            "vLLM v0.34.0 has no flag --no-such-flag",
        ),
        (serving(lambda w: w["vllm"].update(quantization="int3")), "workloads[2].vllm.quantization", "no quantization"),
        (serving(lambda w: w.update(weights_gib=200)), "workloads[2].devices_per_replica", "leaving too little"),
        (serving(lambda w: w.update(serve={"max_batch_size": 4})), "workloads[2].serve", "meshstack's own server only"),
        (
            serving(lambda w: w.update(node_pool="system")),
            "workloads[2].devices_per_replica",
            "pool 'system' nodes have 0 accelerators",
        ),
        (
            serving(lambda w: w.update(node_pool="system", devices_per_replica=0)),
            "workloads[2].node_pool",
            "vLLM's images serve on NVIDIA GPUs and TPUs, not on cpu",
        ),
    ],
)
def test_bad_workloads_are_refused_naming_the_field(config: dict[str, Any], path: str, text: str) -> None:
    field, message = problem(config)
    assert field == path and text in message, (field, message)


def test_maxtext_on_tpu_multislice_splits_the_mesh_over_ici_and_dcn(project_copy: MakeProject) -> None:
    config = stack_config("prod-gcp")
    pretrain, chat = config["meshstack:workloads"][0], config["meshstack:workloads"][1]
    pretrain.update(program="maxtext", maxtext={"model_name": "llama2-7b"})
    del chat["from_training"]
    chat["checkpoints"] = {"bucket": "checkpoints", "prefix": "chat"}
    result = preview_stack("prod-gcp", find_project(project_copy("prod-gcp", config)))
    [container] = pod_of(one(result, JOBSET, "prod-gcp-pretrain").inputs)["containers"]
    keys = dict(arg.split("=", 1) for arg in container["command"][len(maxtext.facts().command) :])
    # two v5p 4x4x4 slices: fsdp 64 over a slice's ICI, data 2 between the slices over DCN
    assert keys["hardware"] == "tpu" and "attention" not in keys
    assert (keys["ici_fsdp_parallelism"], keys["ici_data_parallelism"]) == ("64", "1")
    assert (keys["dcn_data_parallelism"], keys["dcn_fsdp_parallelism"]) == ("2", "1")
    env = env_of(container)
    assert env["MEGASCALE_NUM_SLICES"] == "2" and "JAX_COORDINATOR_IP" not in env
    validate_objects(result)


def test_a_mesh_maxtext_cannot_lay_out_is_refused() -> None:
    config = stack_config("prod-aws")
    config["meshstack:workloads"][0].update(program="maxtext", image=IMAGE, mesh={"data": 2, "tensor": 16})
    del config["meshstack:workloads"][1]["from_training"]
    config["meshstack:workloads"][1]["checkpoints"] = {"bucket": "checkpoints", "prefix": "chat"}
    field, message = problem(config)
    assert field == "workloads[0].mesh", (field, message)
    assert message == "mesh.tensor 16 does not divide the 8 devices a host or slice holds"


def test_a_hub_model_gets_its_token_and_the_callers_token(project_copy: MakeProject) -> None:
    def hub(service: dict[str, Any]) -> None:
        del service["weights"]
        service.update(hf_model="meta-llama/Llama-3.1-8B-Instruct", hf_token_secret="hf-token", token_secret="llm-key")

    result = preview_stack("prod-aws", find_project(project_copy("prod-aws", serving(hub))))
    deployment = one(result, "kubernetes:apps/v1:Deployment", "prod-aws-llama").inputs
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "meta-llama/Llama-3.1-8B-Instruct" and "--load-format" not in container["args"]
    env = env_of(container)
    assert env["HF_TOKEN"] == {"secretKeyRef": {"name": "hf-token", "key": "token"}}
    assert env["VLLM_API_KEY"] == {"secretKeyRef": {"name": "llm-key", "key": "token"}}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * (16 / 0.1 + 300), "the Hub is slower"
    assert not [r for r in of_type(result, "aws:iam/role:Role") if r.name.endswith("-sa-llama")], (
        "a server that reads no bucket gets no cloud identity"
    )
    account = one(result, "kubernetes:core/v1:ServiceAccount", "prod-aws-llama").inputs["metadata"]
    assert account["annotations"] == {}


def test_the_stack_creates_the_token_secret_its_service_names(preview: Callable[[str], Preview]) -> None:
    result = preview("prod-aws")
    password = one(result, "random:index/randomPassword:RandomPassword", "prod-aws-chat-token")
    assert password.inputs["length"] == 48 and password.inputs["special"] is False
    secret = one(result, "kubernetes:core/v1:Secret", "prod-aws-chat-token")
    assert (secret.inputs["metadata"]["name"], secret.inputs["metadata"]["namespace"]) == ("chat-token", "ml")
    assert secret.inputs["type"] == "Opaque" and set(secret.inputs["stringData"]) == {"token"}
    deployment = one(result, "kubernetes:apps/v1:Deployment", "prod-aws-chat")
    assert secret.urn in deployment.dependencies, "the pod's secretKeyRef exists before the pod"
    env = env_of(deployment.inputs["spec"]["template"]["spec"]["containers"][0])
    assert env["MESHSTACK_SERVE_TOKEN"] == {"secretKeyRef": {"name": "chat-token", "key": "token"}}
    assert result.violations == []
