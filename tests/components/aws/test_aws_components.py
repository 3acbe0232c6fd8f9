"""Under the SDK's mocks, the shipped stacks declare the right resources with secure properties."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.components.aws.iam import NODE_POLICIES, ClusterIam, ClusterIamArgs
from meshstack.core.spec import REQUIRED_TAGS
from meshstack.core.stack_file import find_project
from meshstack.preview.plan import Preview, preview_stack
from meshstack.preview.recorder import Resource, run_program
from tests.conftest import AWS_STACKS, of_type, one, stack_config

Previewer = Callable[[str], Preview]
MakeProject = Callable[[str, dict[str, Any]], Path]


def aws_class(typ: str) -> type:
    """aws:ec2/vpc:Vpc -> pulumi_aws.ec2.Vpc"""
    _, module_path, cls = typ.split(":")
    return getattr(importlib.import_module(f"pulumi_aws.{module_path.split('/')[0]}"), cls)


def taggable(resource: Resource) -> bool:
    return "tags" in inspect.signature(aws_class(resource.type)._internal_init).parameters


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_every_taggable_resource_carries_the_cost_tags(preview: Previewer, stack: str) -> None:
    aws_resources = [r for r in preview(stack).resources if r.type.startswith("aws:")]
    tagged = [r for r in aws_resources if taggable(r)]
    assert len(tagged) > 20
    for resource in tagged:
        tags = resource.inputs.get("tags") or {}
        missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
        assert not missing, f"{resource.type} {resource.name} lacks tags {missing}"
        assert tags["meshstack:stack"] == stack


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_every_resource_is_parented_to_a_meshstack_component(preview: Previewer, stack: str) -> None:
    result = preview(stack)
    components = {r.urn: r.type for r in result.resources if not r.custom}
    assert all(t.startswith("meshstack:") for t in components.values())
    for resource in result.custom_resources:
        assert components.get(resource.parent, "").startswith("meshstack:"), resource.urn


def test_eks_secrets_are_encrypted_with_the_clusters_kms_key(preview: Previewer) -> None:
    result = preview("prod-aws")
    cluster = one(result, "aws:eks/cluster:Cluster", "prod-aws-train")
    key = one(result, "aws:kms/key:Key", "prod-aws-train-secrets")
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
    assert cluster.inputs["encryptionConfig"]["provider"]["keyArn"] == key.outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    assert key.urn in cluster.dependencies


def test_eks_endpoint_is_private_or_limited_to_listed_cidrs(preview: Previewer) -> None:
    prod = one(preview("prod-aws"), "aws:eks/cluster:Cluster", "prod-aws-train").inputs["vpcConfig"]
    assert prod["endpointPrivateAccess"] is True and prod["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in prod
    dev = one(preview("dev"), "aws:eks/cluster:Cluster", "dev-dev").inputs["vpcConfig"]
    assert dev["endpointPublicAccess"] is True and dev["publicAccessCidrs"] == ["203.0.113.0/24"]


def test_eks_logging_access_entries_and_addons(preview: Previewer) -> None:
    result = preview("prod-aws")
    cluster = one(result, "aws:eks/cluster:Cluster", "prod-aws-train").inputs
    assert cluster["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    association = one(result, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "prod-aws-train-admin-0")
    assert association.inputs["principalArn"] == "arn:aws:iam::123456789012:role/platform-admin"
    assert association.inputs["policyArn"].endswith(":cluster-access-policy/AmazonEKSClusterAdminPolicy")
    addons = {r.inputs["addonName"]: r for r in of_type(result, "aws:eks/addon:Addon")}
    assert set(addons) == {
        "vpc-cni",
        "kube-proxy",
        "coredns",
        "eks-pod-identity-agent",
        "aws-ebs-csi-driver",
        "eks-node-monitoring-agent",
    }
    # The add-ons that call AWS do so on their own Pod Identity roles, not the nodes'.
    for addon, (account, policy) in {
        "vpc-cni": ("aws-node", "AmazonEKS_CNI_Policy"),
        "aws-ebs-csi-driver": ("ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy"),
    }.items():
        [association] = addons[addon].inputs["podIdentityAssociations"]
        assert association["serviceAccount"] == account
        role = next(r for r in of_type(result, "aws:iam/role:Role") if r.outputs["arn"] == association["roleArn"])
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
        assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        attached = [
            a.inputs["policyArn"]
            for a in of_type(result, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
            if a.name.startswith(role.name)
        ]
        assert attached == [f"arn:aws:iam::aws:policy/{policy}"]
    coredns = one(result, "aws:eks/addon:Addon", "prod-aws-train-coredns")
    node_groups = {r.urn for r in of_type(result, "aws:eks/nodeGroup:NodeGroup")}
    assert node_groups <= set(coredns.dependencies), "coredns must wait for nodes to schedule on"


def test_accelerator_pools_repair_their_nodes(preview: Previewer) -> None:
    """The node monitoring agent turns a failed GPU (XID errors, DCGM diagnostics) into a node condition
    and, once nodes exist to run it, auto repair on the accelerator pools drains and replaces the node;
    a CPU pool is left to the autoscaler."""
    result = preview("prod-aws")
    agent = one(result, "aws:eks/addon:Addon", "prod-aws-train-eks-node-monitoring-agent")
    assert agent.inputs.get("podIdentityAssociations") is None, "the agent calls no AWS API"
    groups = of_type(result, "aws:eks/nodeGroup:NodeGroup")
    assert {g.urn for g in groups} <= set(agent.dependencies), "a DaemonSet add-on waits for nodes"
    for group in groups:
        accelerated = group.inputs["amiType"] != "AL2023_x86_64_STANDARD"
        assert (group.inputs.get("nodeRepairConfig") or {}).get("enabled", False) is accelerated, group.name
    assert any(g.inputs.get("nodeRepairConfig") for g in groups)


def test_a_capacity_block_pool_updates_inside_its_block(preview: Previewer) -> None:
    """EKS's default node update launches new nodes before it drains old ones (it raises the group's
    max and desired size first), which a capacity block with every instance in use cannot give: the
    update would wait on instances that never launch. MINIMAL terminates the old nodes first (EKS API
    NodegroupUpdateConfig: "useful in scenarios where you are constrained to resources ... such as
    GPUs"), all at once, so a training job on the pool restarts once, not once per node."""
    result = preview("prod-aws")
    block = one(result, "aws:eks/nodeGroup:NodeGroup", "prod-aws-train-h100").inputs
    assert block["capacityType"] == "CAPACITY_BLOCK"
    assert block["updateConfig"] == {"maxUnavailablePercentage": 100, "updateStrategy": "MINIMAL"}
    on_demand = one(result, "aws:eks/nodeGroup:NodeGroup", "prod-aws-train-serve").inputs
    assert on_demand["updateConfig"] == {"maxUnavailable": 1}


def test_kubernetes_provider_uses_the_clusters_kubeconfig(preview: Previewer) -> None:
    result = preview("dev")
    provider = one(result, "pulumi:providers:kubernetes", "dev-dev-k8s")
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    cluster = one(result, "aws:eks/cluster:Cluster", "dev-dev").outputs
    assert kubeconfig["clusters"][0]["cluster"]["server"] == cluster["endpoint"]
    assert kubeconfig["users"][0]["user"]["exec"]["args"][:4] == ["eks", "get-token", "--cluster-name", "dev-dev"]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_launch_templates_require_imdsv2_and_encrypt_volumes(preview: Previewer, stack: str) -> None:
    templates = of_type(preview(stack), "aws:ec2/launchTemplate:LaunchTemplate")
    assert templates
    for template in templates:
        assert template.inputs["metadataOptions"]["httpTokens"] == "required"
        assert template.inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1
        [root] = template.inputs["blockDeviceMappings"]
        assert root["ebs"]["encrypted"] == "true"
        assert root["ebs"]["volumeType"] == "gp3"


def test_h100_pool_has_one_efa_interface_per_network_card(preview: Previewer) -> None:
    result = preview("prod-aws")
    template = one(result, "aws:ec2/launchTemplate:LaunchTemplate", "prod-aws-train-h100-lt").inputs
    interfaces = template["networkInterfaces"]
    assert len(interfaces) == 32
    assert [i["networkCardIndex"] for i in interfaces] == list(range(32))
    assert [i["deviceIndex"] for i in interfaces] == [0] + [1] * 31
    # The first card carries IP traffic; a p5's 31 others are EFA-only (RDMA, no subnet address).
    assert [i["interfaceType"] for i in interfaces] == ["efa"] + ["efa-only"] * 31
    node_sg = one(result, "aws:ec2/securityGroup:SecurityGroup", "prod-aws-net-nodes").outputs["id"]
    assert all(node_sg in i["securityGroups"] for i in interfaces)
    assert "vpcSecurityGroupIds" not in template


def test_h100_pool_launches_into_its_capacity_block(preview: Previewer) -> None:
    result = preview("prod-aws")
    assert not of_type(result, "aws:ec2/placementGroup:PlacementGroup"), "the block places its instances itself"
    template = one(result, "aws:ec2/launchTemplate:LaunchTemplate", "prod-aws-train-h100-lt").inputs
    assert "placement" not in template
    assert template["instanceMarketOptions"]["marketType"] == "capacity-block"
    target = template["capacityReservationSpecification"]["capacityReservationTarget"]
    assert target["capacityReservationId"] == "cr-0a1b2c3d4e5f60718"
    nodes = one(result, "aws:eks/nodeGroup:NodeGroup", "prod-aws-train-h100").inputs
    assert nodes["capacityType"] == "CAPACITY_BLOCK"
    assert nodes["amiType"] == "AL2023_x86_64_NVIDIA"
    assert len(nodes["subnetIds"]) == 1, "EFA traffic stays in one AZ"
    assert nodes["scalingConfig"] == {"minSize": 0, "maxSize": 4, "desiredSize": 0}, "0 until the block is active"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in nodes["taints"]
    assert nodes["labels"]["meshstack.io/accelerator"] == "h100"


def test_placement_groups_remain_for_pools_outside_a_capacity_block(project_copy: MakeProject) -> None:
    """Placement groups still work where there is no capacity block: an on-demand EFA pool."""
    config = stack_config("prod-aws")
    pool = config["meshstack:clusters"][0]["node_pools"][1]
    pool.update(market="on-demand", placement_group=True)
    for key in ("reservation_id", "reserved_nodes"):
        pool.pop(key)
    result = preview_stack("prod-aws", find_project(project_copy("prod-aws", config)))
    group = one(result, "aws:ec2/placementGroup:PlacementGroup", "prod-aws-train-h100-placement")
    template = one(result, "aws:ec2/launchTemplate:LaunchTemplate", "prod-aws-train-h100-lt").inputs
    assert group.inputs["strategy"] == "cluster" and template["placement"]["groupName"] == group.outputs["name"]


def test_dev_pools_use_spot_and_scale_to_zero(preview: Previewer) -> None:
    result = preview("dev")
    gpu = one(result, "aws:eks/nodeGroup:NodeGroup", "dev-dev-gpu").inputs
    assert gpu["capacityType"] == "SPOT"
    assert gpu["instanceTypes"] == ["g6.xlarge"]
    assert gpu["scalingConfig"]["minSize"] == 0
    assert len(gpu["subnetIds"]) == 2
    template = one(result, "aws:ec2/launchTemplate:LaunchTemplate", "dev-dev-gpu-lt").inputs
    assert "networkInterfaces" not in template and "placement" not in template
    assert len(template["vpcSecurityGroupIds"]) == 2


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_node_role_has_exactly_the_policies_nodes_need(preview: Previewer, stack: str) -> None:
    result = preview(stack)
    role = next(r for r in of_type(result, "aws:iam/role:Role") if r.name.endswith("-iam-node"))
    attached = [
        r.inputs["policyArn"]
        for r in of_type(result, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.inputs["role"] == role.outputs["name"]
    ]
    assert sorted(attached) == sorted(f"arn:aws:iam::aws:policy/{p}" for p in NODE_POLICIES)
    assert sorted(p.rsplit("/", 1)[-1] for p in attached) == [
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEKSWorkerNodePolicy",
    ], "the CNI's rights are on its own role, not on every node"
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


def test_node_security_group_admits_only_its_own_members(preview: Previewer) -> None:
    result = preview("prod-aws")
    sg = one(result, "aws:ec2/securityGroup:SecurityGroup", "prod-aws-net-nodes").outputs["id"]
    ingress = [
        r.inputs
        for r in of_type(result, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == sg
    ]
    lustre = one(result, "aws:ec2/securityGroup:SecurityGroup", "prod-aws-storage-lustre").outputs["id"]
    members = [r for r in ingress if r["referencedSecurityGroupId"] == sg]
    assert members == [{**members[0], "ipProtocol": "-1", "securityGroupId": sg}]
    others = {(r["referencedSecurityGroupId"], r["fromPort"], r["toPort"]) for r in ingress if r not in members}
    assert others == {(lustre, 988, 988), (lustre, 1018, 1023)}, "only the Lustre servers, on Lustre's ports"
    for rule in of_type(result, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        if rule.name in ("prod-aws-net-endpoints-https", "prod-aws-train-deployer-0"):
            continue  # the endpoints' own group and the API from the deployer's network, below
        assert "cidrIpv4" not in rule.inputs and "cidrIpv6" not in rule.inputs, rule.name


def test_image_pulls_and_sts_go_through_private_endpoints(preview: Previewer) -> None:
    """ECR's API and registry and STS by PrivateLink, with private DNS, in every private subnet, behind a
    group that admits HTTPS from the VPC alone; priced per AZ-hour."""
    result = preview("prod-aws")
    subnets = {s.outputs["id"] for s in of_type(result, "aws:ec2/subnet:Subnet") if "private" in s.name}
    group = one(result, "aws:ec2/securityGroup:SecurityGroup", "prod-aws-net-endpoints").outputs["id"]
    for service in ("ecr.api", "ecr.dkr", "sts"):
        endpoint = one(result, "aws:ec2/vpcEndpoint:VpcEndpoint", f"prod-aws-net-{service.replace('.', '-')}").inputs
        assert endpoint["serviceName"] == f"com.amazonaws.us-east-1.{service}"
        assert endpoint["vpcEndpointType"] == "Interface" and endpoint["privateDnsEnabled"] is True
        assert set(endpoint["subnetIds"]) == subnets and endpoint["securityGroupIds"] == [group]
    https = one(result, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "prod-aws-net-endpoints-https")
    assert (https.inputs["cidrIpv4"], https.inputs["fromPort"], https.inputs["toPort"]) == ("10.40.0.0/16", 443, 443)
    priced = [i for i in result.cost.items if i.name == "prod-aws-net-ecr-api"]
    assert priced and priced[0].hourly_usd == pytest.approx(3 * 0.01), "three AZs"


def test_network_spans_azs_with_nat_and_s3_endpoint(preview: Previewer) -> None:
    result = preview("prod-aws")
    subnets = of_type(result, "aws:ec2/subnet:Subnet")
    assert {s.inputs["availabilityZoneId"] for s in subnets} == {"use1-az1", "use1-az2", "use1-az4"}
    dev_subnets = of_type(preview("dev"), "aws:ec2/subnet:Subnet")  # no zone ids: the first available AZs
    assert {s.inputs["availabilityZone"] for s in dev_subnets} == {"us-east-1a", "us-east-1b"}
    private = [s for s in subnets if "private" in s.name]
    assert all(s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in private)
    assert all(s.inputs.get("mapPublicIpOnLaunch") is False for s in subnets if "public" in s.name)
    assert len(of_type(result, "aws:ec2/natGateway:NatGateway")) == 3
    assert len(of_type(preview("dev"), "aws:ec2/natGateway:NatGateway")) == 1
    endpoint = one(result, "aws:ec2/vpcEndpoint:VpcEndpoint", "prod-aws-net-s3").inputs
    assert endpoint["serviceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoint["vpcEndpointType"] == "Gateway"
    assert len(endpoint["routeTableIds"]) == 3


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_buckets_block_public_access_and_use_sse_kms(preview: Previewer, stack: str) -> None:
    result = preview(stack)
    buckets = of_type(result, "aws:s3/bucket:Bucket")
    assert buckets
    for bucket in buckets:
        name = bucket.outputs["bucket"]
        block = one(result, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket.name).inputs
        assert block["bucket"] == name
        assert all(
            block[k] is True
            for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        )
        sse = one(
            result,
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            bucket.name,
        ).inputs["rules"][0]
        assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        versioning = one(result, "aws:s3/bucketVersioning:BucketVersioning", bucket.name).inputs
        assert versioning["versioningConfiguration"]["status"] == "Enabled"
        rules = one(result, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket.name)
        assert {r["id"] for r in rules.inputs["rules"]} == {"abort-incomplete-uploads", "expire-noncurrent-versions"}
        policy = json.loads(one(result, "aws:s3/bucketPolicy:BucketPolicy", bucket.name).inputs["policy"])
        assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_lustre_is_encrypted_private_and_linked_to_its_bucket(preview: Previewer) -> None:
    result = preview("prod-aws")
    fs = one(result, "aws:fsx/lustreFileSystem:LustreFileSystem", "prod-aws-storage-scratch")
    key = one(result, "aws:kms/key:Key", "prod-aws-storage-key")
    assert fs.inputs["kmsKeyId"] == key.outputs["arn"]
    assert fs.inputs["deploymentType"] == "PERSISTENT_2" and fs.inputs["perUnitStorageThroughput"] == 500
    beside_the_block = one(result, "aws:ec2/subnet:Subnet", "prod-aws-net-private-2").outputs["id"]
    assert fs.inputs["subnetIds"] == beside_the_block
    datasets = one(result, "aws:s3/bucket:Bucket", "prod-aws-storage-datasets").outputs["bucket"]
    link = one(result, "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation", "prod-aws-storage-scratch")
    assert link.inputs["dataRepositoryPath"] == f"s3://{datasets}"
    assert link.inputs["fileSystemPath"] == "/datasets"
    rules = of_type(result, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    lustre_ports = {(r.inputs["fromPort"], r.inputs["toPort"]) for r in rules if "lustre" in r.name}
    assert lustre_ports == {(988, 988), (1018, 1023)}


def test_efs_is_encrypted_with_a_mount_target_per_az(project_copy: Callable[[str, dict[str, Any]], Path]) -> None:
    config = stack_config("dev")
    config["meshstack:storage"]["efs"] = [{"name": "home", "size_gib": 100}]
    root = project_copy("dev", config)
    result = preview_stack("dev", find_project(root))
    fs = one(result, "aws:efs/fileSystem:FileSystem", "dev-storage-home").inputs
    assert fs["encrypted"] is True and fs["kmsKeyId"].startswith("arn:aws:kms:")
    assert fs["throughputMode"] == "elastic"
    assert len(of_type(result, "aws:efs/mountTarget:MountTarget")) == 2
    rules = of_type(result, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert {(r.inputs["fromPort"], r.inputs["ipProtocol"]) for r in rules if "efs" in r.name} == {(2049, "tcp")}


def test_service_account_role_is_scoped_to_one_account_and_its_buckets() -> None:
    def program() -> None:
        iam = ClusterIam("t-iam", ClusterIamArgs("us-east-1", {"team": "t", "project": "p", "cost-center": "1"}))
        iam.add_oidc_provider("https://oidc.eks.us-east-1.amazonaws.com/id/ABC")
        iam.service_account_role(
            "trainer",
            "ml",
            "trainer",
            [("arn:aws:s3:::data-bucket", "tokens"), ("arn:aws:s3:::ckpt-bucket", "")],
            ["arn:aws:kms:us-east-1:123456789012:key/k"],
        )

    records = run_program(program, "meshstack", "test", {}, "us-east-1")
    role = next(r for r in records if r.type == "aws:iam/role:Role" and r.name == "t-iam-sa-trainer")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"]["Federated"].endswith(":oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC")
    assert trust["Condition"]["StringEquals"] == {
        "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:ml:trainer",
        "oidc.eks.us-east-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com",
    }
    policy = json.loads(next(r for r in records if r.type == "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    resources = [res for s in policy["Statement"] for res in s["Resource"]]
    assert set(resources) == {
        "arn:aws:s3:::data-bucket",
        "arn:aws:s3:::data-bucket/tokens",
        "arn:aws:s3:::data-bucket/tokens/*",
        "arn:aws:s3:::ckpt-bucket",
        "arn:aws:s3:::ckpt-bucket/*",
        "arn:aws:kms:us-east-1:123456789012:key/k",
    }, "objects under the workload's prefix only; a ref with no prefix is the whole bucket"
    listing = {s["Resource"][0]: s.get("Condition") for s in policy["Statement"] if s["Sid"].startswith("List")}
    assert listing == {
        "arn:aws:s3:::data-bucket": {"StringLike": {"s3:prefix": ["tokens", "tokens/*"]}},
        "arn:aws:s3:::ckpt-bucket": None,
    }
    actions = [a for s in policy["Statement"] for a in s["Action"]]
    assert "*" not in actions and all(a.startswith(("s3:", "kms:")) for a in actions)
    oidc = next(r for r in records if r.type == "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]


def test_service_account_role_needs_the_oidc_provider_first() -> None:
    def program() -> None:
        ClusterIam("t-iam", ClusterIamArgs("us-east-1")).service_account_role("x", "ns", "sa", [])

    with pytest.raises(RuntimeError, match="add_oidc_provider must run before"):
        run_program(program, "meshstack", "test", {}, "us-east-1")


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_every_node_group_can_scale_up_from_zero(preview: Previewer, stack: str) -> None:
    """The cluster-autoscaler reads an empty group's labels, taints and extended resources from
    tags on its Auto Scaling group; EKS does not copy them there, so each group gets them."""
    result = preview(stack)
    tags: dict[str, dict[str, str]] = {}
    for tag in of_type(result, "aws:autoscaling/tag:Tag"):
        assert tag.inputs["tag"]["propagateAtLaunch"] is False
        tags.setdefault(tag.inputs["autoscalingGroupName"], {})[tag.inputs["tag"]["key"]] = tag.inputs["tag"]["value"]
    template = "k8s.io/cluster-autoscaler/node-template"
    for group in of_type(result, "aws:eks/nodeGroup:NodeGroup"):
        on_group = tags[group.outputs["resources"][0]["autoscalingGroups"][0]["name"]]
        for key, value in group.inputs["labels"].items():
            assert on_group[f"{template}/label/{key}"] == value
        for taint in group.inputs.get("taints") or []:
            effect = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute"}[taint["effect"]]
            assert on_group[f"{template}/taint/{taint['key']}"] == f"{taint['value']}:{effect}"
    h100 = one(result, "aws:eks/nodeGroup:NodeGroup", "prod-aws-train-h100") if stack == "prod-aws" else None
    if h100 is not None:
        on_h100 = tags[h100.outputs["resources"][0]["autoscalingGroups"][0]["name"]]
        assert on_h100[f"{template}/resources/nvidia.com/gpu"] == "8"
        assert on_h100[f"{template}/resources/vpc.amazonaws.com/efa"] == "32"


def test_the_autoscaler_resizes_only_this_clusters_groups_under_its_pod_identity(preview: Previewer) -> None:
    result = preview("prod-aws")
    role = one(result, "aws:iam/role:Role", "prod-aws-train-iam-autoscaler")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}, "EKS Pod Identity needs both"
    policy = json.loads(one(result, "aws:iam/rolePolicy:RolePolicy", "prod-aws-train-iam-autoscaler").inputs["policy"])
    reads, writes = policy["Statement"]
    assert "eks:DescribeNodegroup" in reads["Action"] and not any(
        a.startswith("autoscaling:Set") for a in reads["Action"]
    )
    assert set(writes["Action"]) == {
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    }
    assert writes["Condition"] == {
        "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/prod-aws-train": "owned"}
    }, "it may resize only the groups EKS tags as this cluster's"
    association = one(result, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "prod-aws-train-autoscaler")
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == (
        "kube-system",
        "cluster-autoscaler",
    )
    assert association.inputs["roleArn"] == role.outputs["arn"]
    release = one(result, "kubernetes:helm.sh/v3:Release", "prod-aws-train-addons-cluster-autoscaler").inputs
    values = release["values"]
    assert values["autoDiscovery"] == {"clusterName": "prod-aws-train"} and values["awsRegion"] == "us-east-1"
    assert values["rbac"]["serviceAccount"]["name"] == "cluster-autoscaler"
    assert values["image"]["tag"].startswith("v1.35."), "the autoscaler's minor matches the cluster's"


def test_a_kubernetes_version_without_a_pinned_autoscaler_is_refused_by_name() -> None:
    from meshstack.components.k8s.addons import autoscaler_values

    with pytest.raises(ValueError, match=r"no cluster-autoscaler image is pinned for Kubernetes 1\.29"):
        autoscaler_values("1.29", {})


def test_the_deployer_gets_one_admin_entry_even_when_it_is_also_listed(project_copy: MakeProject) -> None:
    """EKS answers 409 to a second access entry for a principal it bootstrapped as the cluster's
    creator; the deployer is given its entry explicitly instead, once, whether listed or not."""
    result = preview_stack("prod-aws", find_project(project_copy("prod-aws", stack_config("prod-aws"))))
    cluster = one(result, "aws:eks/cluster:Cluster", "prod-aws-train").inputs
    assert cluster["accessConfig"]["bootstrapClusterCreatorAdminPermissions"] is False
    principals = [e.inputs["principalArn"] for e in of_type(result, "aws:eks/accessEntry:AccessEntry")]
    deployer = "arn:aws:iam::123456789012:user/preview"  # the offline preview's caller identity
    assert sorted(principals) == sorted(["arn:aws:iam::123456789012:role/platform-admin", deployer])
    config = stack_config("prod-aws")
    config["meshstack:clusters"][0]["admin_principal_arns"].append(deployer)
    listed = preview_stack("prod-aws", find_project(project_copy("prod-aws", config)))
    principals = [e.inputs["principalArn"] for e in of_type(listed, "aws:eks/accessEntry:AccessEntry")]
    assert principals.count(deployer) == 1, "no second entry for the same principal"


def test_a_private_endpoint_is_reached_from_the_deployers_network(preview: Previewer) -> None:
    """prod-aws keeps its endpoint private and deploys objects into it: `pulumi up` runs from the VPN."""
    result = preview("prod-aws")
    cluster = one(result, "aws:eks/cluster:Cluster", "prod-aws-train")
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is False
    rule = one(result, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "prod-aws-train-deployer-0").inputs
    assert rule["securityGroupId"] == cluster.outputs["vpcConfig"]["clusterSecurityGroupId"]
    assert (rule["cidrIpv4"], rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("10.8.0.0/16", "tcp", 443, 443)


def test_lustre_linked_to_an_encrypted_bucket_can_use_its_key_and_reach_its_clients(preview: Previewer) -> None:
    result = preview("prod-aws")
    policy = json.loads(one(result, "aws:kms/key:Key", "prod-aws-storage-key").inputs["policy"])
    admin, via_s3 = policy["Statement"]
    assert admin["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"} and admin["Action"] == "kms:*"
    assert via_s3["Condition"]["StringEquals"] == {
        "kms:ViaService": "s3.us-east-1.amazonaws.com",
        "kms:CallerAccount": "123456789012",
    }, "S3 uses the key for the FSx data repository only on the account's behalf"
    lustre = one(result, "aws:ec2/securityGroup:SecurityGroup", "prod-aws-storage-lustre").outputs["id"]
    egress = {
        (
            r.inputs.get("referencedSecurityGroupId") or r.inputs.get("cidrIpv4"),
            r.inputs["fromPort"],
            r.inputs["toPort"],
        )
        for r in of_type(result, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.inputs["securityGroupId"] == lustre
    }
    nodes = one(result, "aws:ec2/securityGroup:SecurityGroup", "prod-aws-net-nodes").outputs["id"]
    assert egress == {
        (lustre, 988, 988),
        (lustre, 1018, 1023),
        (nodes, 988, 988),
        (nodes, 1018, 1023),
        ("0.0.0.0/0", 443, 443),
    }
    dev = json.loads(one(preview("dev"), "aws:kms/key:Key", "dev-storage-key").inputs["policy"])
    assert len(dev["Statement"]) == 1, "no S3 grant where no file system links a bucket"
