"""Offline answers the way Google Cloud would give them: resource names and ids in the API's own path form,
in a fixed test project.
"""

from __future__ import annotations

import base64
from typing import Any

from meshstack.components.mock_ids import digest
from meshstack.core.kubernetes import SUPPORTED_VERSIONS

GCP_PROJECT = "meshstack-project"
GCP_PROJECT_NUMBER = "398217465021"


class GcpMocks:
    """Answers for a fixed test project; the region comes from each resource's inputs."""

    def __init__(self, region: str) -> None:
        self.region = region

    def new_resource(self, typ: str, name: str, inputs: dict[str, Any], token: str) -> tuple[str, dict[str, Any]]:
        """Google Cloud answers: resource names and ids in the API's own path form."""
        project = inputs.get("project", GCP_PROJECT)
        short = inputs.get("name") or f"{name}-{token[:7]}"
        state: dict[str, Any] = {**inputs, "name": short, "project": project}
        kind = typ.rsplit(":", 1)[1]
        rid, state = self._gcp_answer(typ, kind, short, project, inputs, state, token)
        state["id"] = rid
        return rid, state

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any] | None:
        """A data source's answer; None where the mocks know none."""
        if token == "gcp:organizations/getProject:getProject":
            project = args.get("projectId", GCP_PROJECT)
            return {"number": GCP_PROJECT_NUMBER, "projectId": project, "name": project, "id": f"projects/{project}"}
        if token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
            email = f"service-{GCP_PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
            return {
                "emailAddress": email,
                "member": f"serviceAccount:{email}",
                "id": email,
                "project": args.get("project", GCP_PROJECT),
            }
        if token == "gcp:container/getCluster:getCluster":
            return self._gke_cluster(args)
        return None

    def _gcp_answer(
        self, typ: str, kind: str, short: str, project: str, inputs: dict[str, Any], state: dict[str, Any], token: str
    ) -> tuple[str, dict[str, Any]]:
        if typ == "gcp:serviceaccount/account:Account":
            email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            state.update(
                email=email,
                member=f"serviceAccount:{email}",
                uniqueId=digest("sa", short, length=21),
                name=f"projects/{project}/serviceAccounts/{email}",
            )
            return state["name"], state
        if typ == "gcp:container/cluster:Cluster":
            state.update(
                endpoint=f"10.{int(token[:2], 16)}.{int(token[2:4], 16)}.2",
                masterAuth={"clusterCaCertificate": base64.b64encode(f"mock-ca-{short}".encode()).decode()},
                selfLink=f"https://container.googleapis.com/v1/projects/{project}/locations/{inputs.get('location')}"
                f"/clusters/{short}",
            )
            return f"projects/{project}/locations/{inputs.get('location')}/clusters/{short}", state
        if typ == "gcp:kms/keyRing:KeyRing":
            return f"projects/{project}/locations/{inputs.get('location')}/keyRings/{short}", state
        if typ == "gcp:kms/cryptoKey:CryptoKey":
            return f"{inputs.get('keyRing')}/cryptoKeys/{short}", state
        if typ == "gcp:storage/bucket:Bucket":
            state.update(url=f"gs://{short}", selfLink=f"https://www.googleapis.com/storage/v1/b/{short}")
            return short, state
        if typ == "gcp:filestore/instance:Instance":
            networks = [{**n, "ipAddresses": [f"10.250.{int(token[:2], 16)}.2"]} for n in inputs.get("networks", [])]
            state.update(networks=networks)
            return f"projects/{project}/locations/{inputs.get('location')}/instances/{short}", state
        collection = {
            "Network": "global/networks",
            "Subnetwork": f"regions/{inputs.get('region')}/subnetworks",
            "Router": f"regions/{inputs.get('region')}/routers",
            "Firewall": "global/firewalls",
        }
        path = f"projects/{project}/{collection.get(kind, kind.lower())}/{short}"
        state.setdefault("selfLink", f"https://www.googleapis.com/compute/v1/{path}")
        return path, state

    def _gke_cluster(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """An existing GKE cluster as clusters.get shows one: running the newest version meshstack pins,
        with Workload Identity on and its CA certificate."""
        name = str(inputs["name"])
        project = str(inputs.get("project") or GCP_PROJECT)
        location = str(inputs.get("location") or "")
        token = digest("gke", project, location, name)
        region = location if location.count("-") < 2 else location.rsplit("-", 1)[0]  # a zone's region
        return {
            "id": f"projects/{project}/locations/{location}/clusters/{name}",
            "name": name,
            "project": project,
            "location": location,
            "endpoint": f"10.{int(token[:2], 16)}.{int(token[2:4], 16)}.2",
            "masterVersion": f"{SUPPORTED_VERSIONS[-1]}.1-gke.1000000",
            "masterAuths": [
                {"clusterCaCertificate": base64.b64encode(f"mock-ca-{name}".encode()).decode(), "clientCertificate": ""}
            ],
            "workloadIdentityConfigs": [{"workloadPool": f"{project}.svc.id.goog"}],
            "network": f"projects/{project}/global/networks/{name}-net",
            "subnetwork": f"projects/{project}/regions/{region}/subnetworks/{name}-nodes",
            "selfLink": f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{name}",
            "resourceLabels": {},
        }
