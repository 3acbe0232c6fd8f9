"""Security rules for the Google Cloud resources a stack declares, with the same intent as on AWS."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.core.types import GKE_NODE_POOL
from policies.rule import OPEN_CIDRS, Rule, as_list, get, is_open

GKE_CLUSTER = "gcp:container/cluster:Cluster"
BUCKET = "gcp:storage/bucket:Bucket"
DEFAULT_COMPUTE_SUFFIX = "-compute@developer.gserviceaccount.com"


def bucket_not_public(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if resource.props.get("uniformBucketLevelAccess") is not True:
        yield f"bucket '{resource.name}' allows per-object ACLs (uniform bucket-level access is off)"
    if resource.props.get("publicAccessPrevention") != "enforced":
        yield f"bucket '{resource.name}' does not enforce public access prevention"


def bucket_kms(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if not get(resource.props, "encryption", "defaultKmsKeyName"):
        yield f"bucket '{resource.name}' is not encrypted with a Cloud KMS key"


def private_cluster(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    private = resource.props.get("privateClusterConfig") or {}
    if private.get("enablePrivateNodes") is not True:
        yield f"cluster '{resource.name}' gives its nodes public IP addresses"
    if private.get("enablePrivateEndpoint") is True:
        return
    blocks = [
        str(get(b, "cidrBlock")) for b in as_list(get(resource.props, "masterAuthorizedNetworksConfig", "cidrBlocks"))
    ]
    if not blocks or any(b in OPEN_CIDRS for b in blocks):
        yield f"cluster '{resource.name}' control plane is reachable from the whole internet"


def workload_identity(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if resource.type == GKE_CLUSTER and not get(resource.props, "workloadIdentityConfig", "workloadPool"):
        yield f"cluster '{resource.name}' does not enable Workload Identity"
    mode = get(resource.props, "nodeConfig", "workloadMetadataConfig", "mode")
    if resource.type == GKE_NODE_POOL and mode != "GKE_METADATA":
        yield f"node pool '{resource.name}' exposes the node's metadata server to pods (mode is not GKE_METADATA)"


def node_service_account(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    account = str(get(resource.props, "nodeConfig", "serviceAccount", default="") or "")
    if not account or account == "default" or account.endswith(DEFAULT_COMPUTE_SUFFIX):
        yield f"'{resource.name}' runs its nodes as the default compute service account"


def secrets_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    encryption = resource.props.get("databaseEncryption") or {}
    if encryption.get("state") != "ENCRYPTED" or not encryption.get("keyName"):
        yield f"cluster '{resource.name}' does not encrypt Kubernetes secrets with a Cloud KMS key"


def firewall_no_public_ingress(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if resource.props.get("direction", "INGRESS") != "INGRESS":
        return
    opened = [str(c) for c in as_list(resource.props.get("sourceRanges")) if is_open(c)]
    if not opened:
        return
    allowed = {int(p) for p in config["allowed_ports"]}
    for rule in as_list(resource.props.get("allows")):
        ports = [str(p) for p in as_list(get(rule, "ports"))]
        if get(rule, "protocol") == "all" or not ports or not all(p.isdigit() and int(p) in allowed for p in ports):
            yield f"firewall '{resource.name}' admits {', '.join(opened)} on {get(rule, 'protocol')} {ports or 'all'}"


RULES = [
    Rule(
        id="MS-GCP-001",
        name="gcs-public-access-prevented",
        description="GCS buckets use uniform bucket-level access and enforce public access prevention.",
        severity="critical",
        enforcement="mandatory",
        resource_types=(BUCKET,),
        check=bucket_not_public,
        remediation="Set uniform_bucket_level_access=True and public_access_prevention='enforced'.",
    ),
    Rule(
        id="MS-GCP-002",
        name="gcs-encrypted-with-kms",
        description="GCS buckets are encrypted with a Cloud KMS key.",
        severity="high",
        enforcement="mandatory",
        resource_types=(BUCKET,),
        check=bucket_kms,
        remediation="Set encryption={'default_kms_key_name': <key id>} (meshstack's Storage does this).",
    ),
    Rule(
        id="MS-GCP-003",
        name="gke-private-cluster",
        description="GKE nodes are private, and the control plane is private or limited to listed CIDRs.",
        severity="high",
        enforcement="mandatory",
        resource_types=(GKE_CLUSTER,),
        check=private_cluster,
        remediation="Enable private nodes; leave public_access_cidrs empty or list only your own ranges.",
    ),
    Rule(
        id="MS-GCP-004",
        name="gke-workload-identity",
        description="GKE clusters use Workload Identity and node pools hide the node's metadata from pods.",
        severity="high",
        enforcement="mandatory",
        resource_types=(GKE_CLUSTER, GKE_NODE_POOL),
        check=workload_identity,
        remediation="Set workload_identity_config and node_config.workload_metadata_config.mode = GKE_METADATA.",
    ),
    Rule(
        id="MS-GCP-005",
        name="gke-node-service-account",
        description="GKE nodes run as a dedicated service account, never the default compute account.",
        severity="high",
        enforcement="mandatory",
        resource_types=(GKE_CLUSTER, GKE_NODE_POOL),
        check=node_service_account,
        remediation="Give node_config.service_account a least-privilege account (ClusterIdentity makes one).",
    ),
    Rule(
        id="MS-GCP-006",
        name="gke-secrets-encrypted",
        description="GKE clusters encrypt Kubernetes secrets with a Cloud KMS key.",
        severity="high",
        enforcement="mandatory",
        resource_types=(GKE_CLUSTER,),
        check=secrets_encrypted,
        remediation="Set database_encryption={'state': 'ENCRYPTED', 'key_name': <key id>}.",
    ),
    Rule(
        id="MS-GCP-007",
        name="gcp-firewall-no-public-ingress",
        description="No firewall rule admits 0.0.0.0/0 or ::/0, except on ports the config allows.",
        severity="critical",
        enforcement="mandatory",
        resource_types=("gcp:compute/firewall:Firewall",),
        check=firewall_no_public_ingress,
        config={"allowed_ports": {"type": "array", "items": {"type": "integer"}, "default": []}},
        remediation="Admit only your subnets' ranges, or list the port in this rule's allowed_ports.",
    ),
]
