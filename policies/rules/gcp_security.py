"""Security rules for the Google Cloud resources a stack declares, with the same intent as on AWS.

A GKE cluster's nodes are declared in three places: separate NodePool resources, the cluster's inline
`nodePools`, and the cluster's own `nodeConfig` for its default pool (unless `removeDefaultNodePool`).
An Autopilot cluster has none of them: GKE provisions its nodes from `clusterAutoscaling`'s
auto-provisioning defaults, and Workload Identity is always on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.core.types import GKE_NODE_POOL
from meshstack.policies.rule import (
    OPEN_CIDRS,
    RuleSet,
    Undecided,
    as_list,
    as_map,
    get,
    integer,
    is_false,
    is_open,
    is_true,
    text,
)
from meshstack.policies.values import Unknown

GKE_CLUSTER = "gcp:container/cluster:Cluster"
BUCKET = "gcp:storage/bucket:Bucket"
DEFAULT_COMPUTE_SUFFIX = "-compute@developer.gserviceaccount.com"
FIREWALL = "gcp:compute/firewall:Firewall"
FIREWALL_POLICY_RULES = (
    "gcp:compute/firewallPolicyRule:FirewallPolicyRule",
    "gcp:compute/networkFirewallPolicyRule:NetworkFirewallPolicyRule",
    "gcp:compute/regionNetworkFirewallPolicyRule:RegionNetworkFirewallPolicyRule",
    "gcp:compute/organizationSecurityPolicyRule:OrganizationSecurityPolicyRule",
)


def is_autopilot(cluster: ResourceView) -> bool:
    return cluster.type == GKE_CLUSTER and is_true(cluster.props.get("enableAutopilot"))


def node_configs(resource: ResourceView) -> Iterator[tuple[str, Any]]:
    """(what, node config) for every set of nodes the resource declares."""
    props = resource.props
    if resource.type == GKE_NODE_POOL:
        yield f"node pool '{resource.name}'", props.get("nodeConfig")
        return
    if is_autopilot(resource):
        yield f"Autopilot cluster '{resource.name}'", get(props, "clusterAutoscaling", "autoProvisioningDefaults")
        return
    if not is_true(props.get("removeDefaultNodePool")):
        yield f"cluster '{resource.name}' (default pool)", props.get("nodeConfig")
    for i, pool in enumerate(as_list(props.get("nodePools"))):
        yield f"cluster '{resource.name}' (nodePools[{i}] {text(get(pool, 'name'))})", get(pool, "nodeConfig")
    if is_true(get(props, "clusterAutoscaling", "enabled")):
        defaults = get(props, "clusterAutoscaling", "autoProvisioningDefaults")
        yield f"cluster '{resource.name}' (auto-provisioned pools)", defaults


NODE_TYPES = (GKE_CLUSTER, GKE_NODE_POOL)

RULES = RuleSet()


@RULES.rule(
    id="MS-GCP-001",
    name="gcs-public-access-prevented",
    description="GCS buckets use uniform bucket-level access and enforce public access prevention.",
    severity="critical",
    enforcement="mandatory",
    resource_types=(BUCKET,),
    remediation="Set uniform_bucket_level_access=True and public_access_prevention='enforced'.",
)
def bucket_not_public(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if not is_true(resource.props.get("uniformBucketLevelAccess")):
        yield f"bucket '{resource.name}' allows per-object ACLs (uniform bucket-level access is off)"
    if text(resource.props.get("publicAccessPrevention")) != "enforced":
        yield f"bucket '{resource.name}' does not enforce public access prevention"


@RULES.rule(
    id="MS-GCP-002",
    name="gcs-encrypted-with-kms",
    description="GCS buckets are encrypted with a Cloud KMS key.",
    severity="high",
    enforcement="mandatory",
    resource_types=(BUCKET,),
    remediation="Set encryption={'default_kms_key_name': <key id>} (meshstack's Storage does this).",
)
def bucket_kms(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    if not get(resource.props, "encryption", "defaultKmsKeyName"):
        yield f"bucket '{resource.name}' is not encrypted with a Cloud KMS key"


def _endpoint_private(props: Mapping[str, Any]) -> bool:
    """Private endpoint the old way (privateClusterConfig) or the new (the IP endpoint turned off)."""
    return is_true(get(props, "privateClusterConfig", "enablePrivateEndpoint")) or is_false(
        get(props, "controlPlaneEndpointsConfig", "ipEndpointsConfig", "enabled")
    )


@RULES.rule(
    id="MS-GCP-003",
    name="gke-private-cluster",
    description="GKE nodes are private, and the control plane is private or limited to listed CIDRs.",
    severity="high",
    enforcement="mandatory",
    resource_types=(GKE_CLUSTER,),
    remediation="Enable private nodes; leave public_access_cidrs empty or list only your own ranges.",
)
def private_cluster(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    props = resource.props
    if not is_true(get(props, "privateClusterConfig", "enablePrivateNodes")):
        yield f"cluster '{resource.name}' gives its nodes public IP addresses"
    if _endpoint_private(props):
        return
    blocks = [get(b, "cidrBlock") for b in as_list(get(props, "masterAuthorizedNetworksConfig", "cidrBlocks"))]
    if any(isinstance(b, Unknown) for b in blocks):
        yield Undecided(f"cluster '{resource.name}': a CIDR its control plane admits is unknown")
    elif not blocks or any(b in OPEN_CIDRS or is_open(b) for b in blocks):
        yield f"cluster '{resource.name}' control plane is reachable from the whole internet"


@RULES.rule(
    id="MS-GCP-004",
    name="gke-workload-identity",
    description="GKE clusters use Workload Identity and every node pool (separate, inline or the default "
    "one) hides the node's metadata from pods.",
    severity="high",
    enforcement="mandatory",
    resource_types=NODE_TYPES,
    remediation="Set workload_identity_config and node_config.workload_metadata_config.mode = GKE_METADATA.",
)
def workload_identity(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    """Autopilot always runs Workload Identity and the GKE metadata server."""
    if is_autopilot(resource):
        return
    if resource.type == GKE_CLUSTER and not get(resource.props, "workloadIdentityConfig", "workloadPool"):
        yield f"cluster '{resource.name}' does not enable Workload Identity"
    for what, node_config in node_configs(resource):
        if "auto-provisioned" in what:
            continue  # auto-provisioned pools take the cluster's Workload Identity setting
        if text(get(node_config, "workloadMetadataConfig", "mode")) != "GKE_METADATA":
            yield f"{what} exposes the node's metadata server to pods (mode is not GKE_METADATA)"


@RULES.rule(
    id="MS-GCP-005",
    name="gke-node-service-account",
    description="GKE nodes (separate, inline, default and auto-provisioned pools, Autopilot's) run as a "
    "dedicated service account, never the default compute account.",
    severity="high",
    enforcement="mandatory",
    resource_types=NODE_TYPES,
    remediation="Give node_config.service_account a least-privilege account (ClusterIdentity makes one); on "
    "Autopilot, cluster_autoscaling.auto_provisioning_defaults.service_account.",
)
def node_service_account(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    for what, node_config in node_configs(resource):
        account = get(node_config, "serviceAccount")
        if isinstance(account, Unknown):
            continue  # an account still to be created is a dedicated account
        account = text(account)
        if not account or account == "default" or account.endswith(DEFAULT_COMPUTE_SUFFIX):
            yield f"{what} runs its nodes as the default compute service account"


@RULES.rule(
    id="MS-GCP-006",
    name="gke-secrets-encrypted",
    description="GKE clusters encrypt Kubernetes secrets with a Cloud KMS key.",
    severity="high",
    enforcement="mandatory",
    resource_types=(GKE_CLUSTER,),
    remediation="Set database_encryption={'state': 'ENCRYPTED', 'key_name': <key id>}.",
)
def secrets_encrypted(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    encryption = as_map(resource.props.get("databaseEncryption"))
    if text(encryption.get("state")) != "ENCRYPTED" or not encryption.get("keyName"):
        yield f"cluster '{resource.name}' does not encrypt Kubernetes secrets with a Cloud KMS key"


def _port_allowed(port: Any, allowed: set[int]) -> bool:
    """A port or a range ('8000-8080') that the config allows whole."""
    low, _, high = text(port).partition("-")
    first, last = integer(low), integer(high or low)
    if first is None or last is None or first > last:
        return False
    return last - first < len(allowed) and all(p in allowed for p in range(first, last + 1))


def _opened(resource: ResourceView) -> tuple[list[str], list[tuple[Any, list[Any]]], bool]:
    """(open source ranges, (protocol, ports) admitted, whether a source range is unknown)."""
    props = resource.props
    if resource.type == FIREWALL:
        if text(props.get("direction") or "INGRESS") != "INGRESS" or is_true(props.get("disabled")):
            return [], [], False
        ranges = as_list(props.get("sourceRanges"))
        admitted = [(get(r, "protocol"), as_list(get(r, "ports"))) for r in as_list(props.get("allows"))]
    else:
        if text(props.get("direction")) != "INGRESS" or text(props.get("action")) != "allow":
            return [], [], False
        if is_true(props.get("disabled")):
            return [], [], False
        match = as_map(props.get("match"))
        match = as_map(match.get("config")) if "config" in match else match  # an organisation policy's rule
        ranges = as_list(match.get("srcIpRanges"))
        admitted = [(get(c, "ipProtocol"), as_list(get(c, "ports"))) for c in as_list(match.get("layer4Configs"))]
        admitted = admitted or [("all", [])]
    return [str(r) for r in ranges if is_open(r)], admitted, any(isinstance(r, Unknown) for r in ranges)


@RULES.rule(
    id="MS-GCP-007",
    name="gcp-firewall-no-public-ingress",
    description="No firewall rule or firewall policy rule admits 0.0.0.0/0 or ::/0, except on ports the config allows.",
    severity="critical",
    enforcement="mandatory",
    resource_types=(FIREWALL, *FIREWALL_POLICY_RULES),
    config={"allowed_ports": {"type": "array", "items": {"type": "integer"}, "default": []}},
    remediation="Admit only your subnets' ranges, or list the port in this rule's allowed_ports.",
)
def firewall_no_public_ingress(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str | Undecided]:
    opened, admitted, unknown = _opened(resource)
    if not opened:
        if unknown:
            yield Undecided(f"firewall '{resource.name}': a source range is unknown")
        return
    allowed = {p for p in (integer(p) for p in config["allowed_ports"]) if p is not None}
    for protocol, ports in admitted:
        shown = [text(p) for p in ports]
        if text(protocol) == "all" or not ports or not all(_port_allowed(p, allowed) for p in ports):
            yield f"firewall '{resource.name}' admits {', '.join(opened)} on {text(protocol)} {shown or 'all'}"
