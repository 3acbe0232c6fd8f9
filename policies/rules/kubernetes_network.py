"""How a cluster's workloads are reached from outside: load balancers Kubernetes provisions (Services of type
LoadBalancer, Ingresses) and ports opened on every node (NodePort Services)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshstack.core.resources import ResourceView
from meshstack.policies.rule import STRING_LIST, RuleSet, as_map, get, text

SERVICE_TYPES = ("kubernetes:core/v1:Service", "kubernetes:core/v1:ServicePatch")
INGRESS_TYPES = (
    "kubernetes:networking.k8s.io/*:Ingress",
    "kubernetes:networking.k8s.io/*:IngressPatch",
    "kubernetes:extensions/v1beta1:Ingress",
    "kubernetes:extensions/v1beta1:IngressPatch",
)
INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "networking.gke.io/load-balancer-type": "Internal",
}
# An Ingress faces the internet when the AWS Load Balancer Controller is told so (its default is internal),
# or when GKE's external controller (class gce) takes it.
ALB_SCHEME = "alb.ingress.kubernetes.io/scheme"
INGRESS_CLASS = "kubernetes.io/ingress.class"
EXTERNAL_INGRESS_CLASSES = ("gce",)


def _name(resource: ResourceView) -> str:
    return text(get(resource.props, "metadata", "name")) or resource.name


def _public_ingress(resource: ResourceView) -> bool:
    annotations = as_map(get(resource.props, "metadata", "annotations"))
    ingress_class = text(get(resource.props, "spec", "ingressClassName") or annotations.get(INGRESS_CLASS))
    return text(annotations.get(ALB_SCHEME)) == "internet-facing" or ingress_class in EXTERNAL_INGRESS_CLASSES


RULES = RuleSet()


@RULES.rule(
    id="MS-K8S-012",
    name="service-load-balancer-internal",
    description="Load balancers Kubernetes provisions (Services of type LoadBalancer, Ingresses) are "
    "internal unless allowed.",
    severity="high",
    enforcement="mandatory",
    resource_types=(*SERVICE_TYPES, *INGRESS_TYPES),
    config={"allowed_public_services": {**STRING_LIST, "default": []}},
    remediation="Annotate service.beta.kubernetes.io/aws-load-balancer-scheme: internal (GKE: "
    "networking.gke.io/load-balancer-type: Internal; an Ingress: alb.ingress.kubernetes.io/scheme: internal "
    "or class gce-internal), or list the name in allowed_public_services.",
)
def load_balancer_internal(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    name = _name(resource)
    if name in config["allowed_public_services"]:
        return
    if resource.type.rsplit(":", 1)[-1].startswith("Ingress"):
        if _public_ingress(resource):
            yield f"ingress '{name}' is served by an internet-facing load balancer"
        return
    if text(get(resource.props, "spec", "type")) != "LoadBalancer":
        return
    annotations = as_map(get(resource.props, "metadata", "annotations"))
    if not any(text(annotations.get(k)) == v for k, v in INTERNAL_LB_ANNOTATIONS.items()):
        yield f"service '{name}' is an internet-facing load balancer"


@RULES.rule(
    id="MS-K8S-013",
    name="service-no-node-port",
    description="No Service is of type NodePort, which opens its port on every node of the cluster.",
    severity="medium",
    enforcement="mandatory",
    resource_types=SERVICE_TYPES,
    config={"allowed_node_port_services": {**STRING_LIST, "default": []}},
    remediation="Use a ClusterIP Service (with an internal load balancer or Ingress in front), or list the "
    "service in allowed_node_port_services.",
)
def no_node_port(resource: ResourceView, config: Mapping[str, Any]) -> Iterable[str]:
    name = _name(resource)
    if text(get(resource.props, "spec", "type")) == "NodePort" and name not in config["allowed_node_port_services"]:
        yield f"service '{name}' opens a port on every node (type NodePort)"
