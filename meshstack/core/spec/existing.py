"""A cluster its owners run, which meshstack deploys onto without creating it."""

from __future__ import annotations

from pydantic import Field, field_validator

from meshstack.core.spec.base import (
    SpecModel,
    field_error,
)
from meshstack.core.validation import check_unique

OWNER_ADDONS = (
    "nvidia-device-plugin",
    "neuron-device-plugin",
    "efa-device-plugin",
    "metrics-server",
    "dcgm-exporter",
    "fsx-csi-driver",
    "efs-csi-driver",
)
KUBECONFIG_CONTEXT = r"^\S{1,253}$"


class ExistingCluster(SpecModel):
    """A cluster its owners run: meshstack looks it up by name and installs only its add-ons, queues,
    monitoring, workload identities and workloads onto it."""

    name: str = Field(
        description="The cluster's name in the cloud: EKS (in the stack's region) or GKE (in `location`), "
        "looked up at every `pulumi up` and preview for its endpoint, certificate and identity provider."
    )
    location: str | None = Field(
        default=None,
        description="Google Cloud: the cluster's region or zone (the stack's region when omitted). AWS: not "
        "set; the cluster is in the stack's region.",
    )
    context: str | None = Field(
        default=None,
        pattern=KUBECONFIG_CONTEXT,
        description="A context of the deployer's kubeconfig ($KUBECONFIG or ~/.kube/config) to reach the API "
        "through (a bastion, a proxy, another endpoint) instead of the looked-up endpoint with `aws eks "
        "get-token` or gke-gcloud-auth-plugin credentials. The look-up still gives the identity provider.",
    )
    installed: list[str] = Field(
        default_factory=list,
        description=f"Add-ons the cluster's owners already run, which meshstack then does not install: "
        f"{', '.join(OWNER_ADDONS)}.",
    )

    @field_validator("installed")
    @classmethod
    def _owner_addons(cls, installed: list[str]) -> list[str]:
        for i, addon in enumerate(installed):
            if addon not in OWNER_ADDONS:
                raise field_error(
                    f"[{i}]",
                    f"'{addon}' is not an add-on meshstack leaves to a cluster's owners: one of "
                    f"{', '.join(OWNER_ADDONS)} (JobSet, Kueue, KEDA and Prometheus are meshstack's own)",
                )
        check_unique(((f"[{i}]", a) for i, a in enumerate(installed)), "add-on")
        return installed
