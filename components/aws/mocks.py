"""Offline answers the way AWS would give them: EC2-style ids, ARNs of a fixed test account, EKS endpoints.

Every answer is derived from the resource's type and name, so two previews of the same spec give the
same ids and a cost or plan diff shows only real changes.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from meshstack.components.mock_ids import digest
from meshstack.core.kubernetes import SUPPORTED_VERSIONS

ACCOUNT = "123456789012"

# EC2-style id prefixes: what `aws ec2 describe-*` would hand back for each type.
ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
    "aws:ec2/placementGroup:PlacementGroup": "pg",
    "aws:fsx/lustreFileSystem:LustreFileSystem": "fs",
    "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation": "dra",
    "aws:efs/fileSystem:FileSystem": "fs",
    "aws:efs/mountTarget:MountTarget": "fsmt",
}


# The types whose computed outputs the mocks fill in, and the method that does it.
ANSWERS = {
    "aws:eks/cluster:Cluster": "_cluster",
    "aws:eks/nodeGroup:NodeGroup": "_nodegroup",
    "aws:ec2/launchTemplate:LaunchTemplate": "_launchtemplate",
    "aws:ec2/placementGroup:PlacementGroup": "_placementgroup",
    "aws:iam/role:Role": "_role",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "_openidconnectprovider",
    "aws:kms/key:Key": "_key",
    "aws:s3/bucket:Bucket": "_bucket",
    "aws:fsx/lustreFileSystem:LustreFileSystem": "_lustrefilesystem",
    "aws:efs/fileSystem:FileSystem": "_filesystem",
}


class AwsMocks:
    """Answers for a region of a fixed test account."""

    def __init__(self, region: str) -> None:
        self.region = region

    def arn(self, service: str, resource: str, regional: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if regional else ''}:{ACCOUNT}:{resource}"

    def new_resource(self, typ: str, name: str, inputs: dict[str, Any], token: str) -> tuple[str, dict[str, Any]]:
        rid = f"{ID_PREFIX[typ]}-{token}" if typ in ID_PREFIX else f"{name}-{token[:8]}"
        state: dict[str, Any] = {**inputs, "id": rid}
        service = typ.split(":")[1].split("/")[0]
        state["arn"] = self.arn(service, f"{service}/{rid}")
        answer = ANSWERS.get(typ)
        if answer is not None:
            rid = getattr(self, answer)(name, token, inputs, state) or rid
        return rid, state

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any] | None:
        """A data source's answer; None where the mocks know none."""
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            letters = "abcdef"
            return {
                "names": [f"{self.region}{c}" for c in letters],
                "zoneIds": [f"use1-az{i + 1}" for i in range(len(letters))],
                "id": self.region,
                "groupNames": [self.region],
            }
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/preview",
                "userId": "AIDAPREVIEW",
                "id": ACCOUNT,
            }
        if token == "aws:iam/getSessionContext:getSessionContext":
            # An assumed role's session ARN resolves to the role; any other ARN is its own issuer.
            arn = str(args.get("arn", ""))
            match = re.match(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/(.+)$", arn)
            issuer = f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}" if match else arn
            return {
                "arn": arn,
                "issuerArn": issuer,
                "issuerId": "AROAPREVIEW",
                "issuerName": issuer.rsplit("/", 1)[-1],
                "sessionName": match[4] if match else "",
                "id": arn,
            }
        if token == "aws:eks/getCluster:getCluster":
            return self._eks_cluster(str(args["name"]))
        if token == "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider":
            url = str(args.get("url", ""))
            host = url.removeprefix("https://")
            arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"
            return {"arn": arn, "url": host, "clientIdLists": ["sts.amazonaws.com"], "id": arn, "tags": {}}
        if token == "aws:ec2/getSubnets:getSubnets":
            return self._subnets(args.get("filters") or [])
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        return None

    # Per-type answers: each fills in the outputs the cloud computes.

    def _cluster(self, name: str, token: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        cluster = inputs.get("name", name)
        oidc = digest("oidc", cluster, length=32).upper()
        state.update(
            arn=self.arn("eks", f"cluster/{cluster}"),
            name=cluster,
            endpoint=f"https://{oidc}.gr7.{self.region}.eks.amazonaws.com",
            certificateAuthority={"data": base64.b64encode(f"mock-ca-{cluster}".encode()).decode()},
            identities=[{"oidcs": [{"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/{oidc}"}]}],
            vpcConfig={**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": f"sg-{digest('cluster-sg', cluster)}"},
            status="ACTIVE",
        )
        return cluster

    def _nodegroup(self, name: str, token: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        # The provider completes a prefix with its unique suffix (terraform-plugin-sdk id.PrefixedUniqueId):
        # an 18-digit UTC timestamp and an 8-hex-digit counter, which the priority expander's patterns match.
        timestamp = f"2026{int(token, 16) % 10**14:014d}"
        group = inputs.get("nodeGroupName") or f"{inputs.get('nodeGroupNamePrefix', name)}{timestamp}{token[:8]}"
        uuid = f"{token[:8]}-{token[8:12]}-{token[12:16]}"
        state.update(
            nodeGroupName=group,
            arn=self.arn("eks", f"nodegroup/{inputs.get('clusterName')}/{group}/{uuid}"),
            # EKS makes one Auto Scaling group per node group, named eks-<node group>-<uuid>.
            resources=[{"autoscalingGroups": [{"name": f"eks-{group}-{uuid}"}]}],
        )
        return f"{inputs.get('clusterName')}:{group}"

    def _launchtemplate(self, name: str, token: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        state.update(latestVersion=1, defaultVersion=1)

    def _placementgroup(self, name: str, token: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        group = f"{name}-{token[:7]}"
        state.update(name=group, placementGroupId=f"pg-{token}")
        return group

    def _role(self, name: str, token: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        role = f"{name}-{token[:7]}"
        state.update(name=role, arn=f"arn:aws:iam::{ACCOUNT}:role/{role}", uniqueId=f"AROA{token.upper()}")
        return role

    def _openidconnectprovider(self, name: str, token: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        host = str(inputs.get("url", "")).removeprefix("https://")
        state.update(arn=f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}")

    def _key(self, name: str, token: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        key_id = f"{token[:8]}-{token[8:12]}-{token[12:16]}-{digest(token)[:4]}-{digest(token, length=24)[12:]}"
        state.update(keyId=key_id, arn=self.arn("kms", f"key/{key_id}"))
        return key_id

    def _bucket(self, name: str, token: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        bucket = inputs.get("bucket") or f"{name}-{token[:7]}"
        state.update(
            bucket=bucket,
            arn=f"arn:aws:s3:::{bucket}",
            bucketDomainName=f"{bucket}.s3.amazonaws.com",
            region=self.region,
        )
        return bucket

    def _lustrefilesystem(self, name: str, token: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        fs = f"fs-{token}"
        state.update(
            dnsName=f"{fs}.fsx.{self.region}.amazonaws.com",
            mountName=token[:8],
            arn=self.arn("fsx", f"file-system/{fs}"),
        )

    def _filesystem(self, name: str, token: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        fs = f"fs-{token}"
        state.update(
            dnsName=f"{fs}.efs.{self.region}.amazonaws.com", arn=self.arn("elasticfilesystem", f"file-system/{fs}")
        )

    def _eks_cluster(self, cluster: str) -> dict[str, Any]:
        """An existing EKS cluster as DescribeCluster shows one: active, on the newest version meshstack
        pins, in a VPC of three private subnets, with its OIDC issuer."""
        oidc = digest("oidc", cluster, length=32).upper()
        return {
            "id": cluster,
            "name": cluster,
            "arn": self.arn("eks", f"cluster/{cluster}"),
            "version": SUPPORTED_VERSIONS[-1],
            "platformVersion": "eks.1",
            "status": "ACTIVE",
            "endpoint": f"https://{oidc}.gr7.{self.region}.eks.amazonaws.com",
            "certificateAuthorities": [{"data": base64.b64encode(f"mock-ca-{cluster}".encode()).decode()}],
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/{oidc}"}]}],
            "vpcConfig": {
                "vpcId": f"vpc-{digest('vpc', cluster)}",
                # one subnet in each of the region's six zones (see _subnets)
                "subnetIds": [f"subnet-{digest('subnet', cluster, str(i))}" for i in range(6)],
                "clusterSecurityGroupId": f"sg-{digest('cluster-sg', cluster)}",
                "securityGroupIds": [],
                "endpointPrivateAccess": True,
                "endpointPublicAccess": False,
                "publicAccessCidrs": [],
            },
            "accessConfigs": [{"authenticationMode": "API"}],
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/{cluster}-cluster",
            "tags": {},
        }

    @staticmethod
    def _subnets(filters: list[dict[str, Any]]) -> dict[str, Any]:
        """DescribeSubnets filtered by subnet ids and zone ids: an existing cluster's i-th subnet lies in the
        zone whose id ends in az<i+1>, as the region's zone ids are answered above."""
        values = {f["name"]: list(f.get("values") or []) for f in filters}
        subnets = list(values.get("subnet-id", []))
        zones = values.get("availability-zone-id")
        ids = [
            subnet
            for i, subnet in enumerate(subnets)
            if zones is None or any(re.search(rf"-az{i + 1}$", z) for z in zones)
        ]
        return {"ids": ids, "id": "subnets", "filters": filters}
