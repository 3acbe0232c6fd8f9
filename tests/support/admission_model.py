"""A small model of what a cluster does with a preview's objects: Kueue admits the queued jobs
against its ClusterQueues' quotas, then the node scaler adds nodes for every admitted pod and
every inference replica (at its ScaledObject's max), pool by pool, up to each pool's max size.

It reads only what the cluster would receive — the node pools as the autoscaler sees them (on
EKS the cluster-autoscaler's node-template tags on each Auto Scaling group; on GKE the node pool
plus the labels and taints GKE adds; under Karpenter its NodePools), the Kueue objects, and the
workloads' pods — so a job that this model cannot run is one a real cluster would leave Pending.

Which pool grows first is what the cluster reads too: the cluster-autoscaler's priority expander takes
the `expanderPriorities` of its chart's values (the highest-priority group a pod fits; a group no pattern
names is never grown), Karpenter takes a NodePool's capacity types in its own order (reserved, then
spot, then on-demand), and GKE's autoscaler takes a pod that selects a custom compute class to the node
pools of the class's `priorities` in their order (a node pool bound to the class by its label and taint
but named by no priority is never grown for it). A market with no instance left (a reservation whose
instances are taken, spot not to be had: `NodePool.launchable`) fails the scale-up, and the scaler goes on to the next.

It also follows a node fault through what the cluster would do (`node_fault`): the failed node is
drained or deleted, which marks the job's pod DisruptionTarget; the Job's podFailurePolicy and the
JobSet's failurePolicy, as rendered, decide whether the restart counts against maxRestarts; repair
replaces the node, and the restarted pods are placed again with the same checkpoint location.

Simplified on purpose: one resource group per ClusterQueue (as meshstack renders them), cohort
borrowing of unused nominal quota, first-fit packing, no preemption.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from meshstack.core.catalog import Catalog
from meshstack.preview.manifests import manifest
from meshstack.preview.recorder import Resource

NODE_TEMPLATE = "k8s.io/cluster-autoscaler/node-template/"
# Karpenter launches a NodePool's reserved capacity first, then spot, then on-demand, whatever order the
# capacity types are listed in (karpenter-provider-aws v1.14.1 docs, concepts/nodepools.md; read 2026-12-08).
KARPENTER_CAPACITY_ORDER = ("reserved", "spot", "on-demand")
EKS_MARKETS = {"ON_DEMAND": "on-demand", "SPOT": "spot", "CAPACITY_BLOCK": "capacity-block"}
COMPUTE_CLASS = "cloud.google.com/compute-class"
GKE_TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
QUANTITY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G)?$")
SCALE = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(resource: str, value: object) -> float:
    """A Kubernetes quantity in cores (cpu), GiB (memory) or units (anything else)."""
    match = QUANTITY.match(str(value))
    assert match, f"not a quantity: {resource}={value!r}"
    amount = float(match.group(1)) * SCALE[match.group(2)]
    return amount / 2**30 if resource == "memory" else amount


@dataclass
class NodePool:
    """One autoscaled group of identical nodes (a GKE node pool is one TPU slice)."""

    name: str
    cluster: str
    labels: dict[str, str]
    taints: list[dict[str, str]]
    capacity: dict[str, float]
    max_nodes: int
    nodes: list[dict[str, float]] = field(default_factory=list)  # what is left on each node added
    taken_by: str | None = None  # the job instance that holds a whole slice (exclusive topology)
    asg: str = ""  # an EKS node group's Auto Scaling group, which the priority expander's patterns match
    gke_name: str = ""  # a GKE node pool's name, which a compute class's priorities list
    market: str = "on-demand"
    # Higher grows first (the priority expander's number; Karpenter's capacity-type order); None: never grown.
    priority: int | None = 0
    # Instances its market can still give (the cloud's side, not the stack's); None: as many as asked.
    launchable: int | None = None
    # The pools whose nodes count against max_nodes together (a Karpenter NodePool's limits); empty: its own.
    limit_with: list[NodePool] = field(default_factory=list, compare=False, repr=False)


@dataclass
class PodGroup:
    """`count` identical pods; `exclusive` when they must hold one node pool (slice) to themselves."""

    count: int
    requests: dict[str, float]
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    exclusive: bool = False


@dataclass
class Workload:
    kind: str
    name: str
    namespace: str
    cluster: str
    groups: list[PodGroup]
    queue: str | None = None
    priority: int = 0


@dataclass
class NodeFault:
    """What a node fault under a running job came to."""

    job_failure_message: str  # the Job's status message after its podFailurePolicy matched
    jobset_rule: str | None  # the JobSet failurePolicy rule that matched (None: JobSet's default)
    action: str
    restarts_counted: int  # restarts spent of maxRestarts
    replaced_nodes: int  # nodes repair added for the restarted pods
    placed: bool  # every restarted pod found a node
    checkpoint_uris: tuple[set[str], set[str]]  # MESHSTACK_CHECKPOINT_URI before and after


@dataclass
class Outcome:
    workload: str
    admitted: bool
    placed: bool
    reason: str = ""


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, str]) -> bool:
    for t in tolerations:
        if t.get("effect") not in (None, "", taint["effect"]):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint["key"]):
            return True
        if t.get("key") == taint["key"] and str(t.get("value", "")) == str(taint.get("value", "")):
            return True
    return False


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _flavor_fits(flavor: Mapping[str, Any], pods: PodGroup) -> bool:
    """Kueue's check: the pods' node selector agrees with every label the flavor names (a key it
    does not set is no conflict), and the pods tolerate every taint of the flavor."""
    labels_agree = all(pods.node_selector.get(k, v) == v for k, v in flavor.get("nodeLabels", {}).items())
    return labels_agree and all(tolerates(pods.tolerations, t) for t in flavor.get("nodeTaints", []))


def _pod_groups(template: Mapping[str, Any], count: int, exclusive: bool) -> PodGroup:
    spec = template["spec"]
    requests: dict[str, float] = defaultdict(float)
    for container in spec["containers"]:
        for resource, value in (container.get("resources", {}).get("requests") or {}).items():
            requests[resource] += quantity(resource, value)
    return PodGroup(
        count, dict(requests), dict(spec.get("nodeSelector") or {}), list(spec.get("tolerations") or []), exclusive
    )


class ClusterModel:
    """The pools, the Kueue objects and the workloads of every cluster a preview declares."""

    def __init__(self, resources: Sequence[Resource], catalog: Catalog) -> None:
        self.catalog = catalog
        by_urn = {r.urn: r for r in resources}
        self._by_urn = by_urn
        self.pools: list[NodePool] = []
        self.objects: dict[str, list[dict[str, Any]]] = defaultdict(list)
        expander: dict[str, dict[int, list[str]]] = {}
        for r in resources:
            if r.type == "aws:eks/nodeGroup:NodeGroup":
                self.pools.append(self._eks_pool(r, resources))
            elif r.type == "gcp:container/nodePool:NodePool":
                self.pools.append(self._gke_pool(r))
            elif r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("chart") == "cluster-autoscaler":
                priorities = (r.inputs.get("values") or {}).get("expanderPriorities")
                if priorities:
                    expander[self._cluster_of_provider(r.provider)] = yaml.safe_load(priorities)
            elif r.type.startswith("kubernetes:") and r.custom and not r.type.startswith("kubernetes:helm"):
                body = manifest(r)
                if body is not None:
                    self.objects[self._cluster_of_provider(r.provider)].append(body)
        for pool in self.pools:
            if pool.cluster in expander and pool.asg:
                pool.priority = _expander_priority(expander[pool.cluster], pool.asg)
        for cluster, bodies in self.objects.items():
            self._compute_classes(cluster, bodies)
            self.pools.extend(self._karpenter_pools(cluster, bodies))
        self.workloads = [w for cluster, bodies in self.objects.items() for w in self._workloads(cluster, bodies)]
        # the nodes each workload's pods hold: (pool, node, requests) per pod
        self.held: dict[str, list[tuple[NodePool, dict[str, float], dict[str, float]]]] = {}

    def _cluster_component(self, urn: str) -> str:
        resource = self._by_urn.get(urn)
        while resource is not None and resource.type not in ("meshstack:aws:EksCluster", "meshstack:gcp:GkeCluster"):
            resource = self._by_urn.get(resource.parent)
        assert resource is not None, f"{urn} is in no cluster"
        return resource.name

    def _cluster_of_provider(self, provider: str) -> str:
        """A provider reference is `<urn>::<id>`; the provider is a child of its cluster's component."""
        return self._cluster_component(provider.rsplit("::", 1)[0])

    def _eks_pool(self, group: Resource, resources: Sequence[Resource]) -> NodePool:
        """A node group as the cluster-autoscaler sees it before it has a node: its instance type and
        the node-template tags on its Auto Scaling group."""
        asg = group.outputs["resources"][0]["autoscalingGroups"][0]["name"]
        tags = {
            t.inputs["tag"]["key"].removeprefix(NODE_TEMPLATE): t.inputs["tag"]["value"]
            for t in resources
            if t.type == "aws:autoscaling/tag:Tag"
            and t.inputs["autoscalingGroupName"] == asg
            and t.inputs["tag"]["key"].startswith(NODE_TEMPLATE)
        }
        instance = self.catalog.instance_types[group.inputs["instanceTypes"][0]]
        capacity = {"cpu": float(instance.vcpus), "memory": instance.memory_gib}
        capacity.update({k.removeprefix("resources/"): float(v) for k, v in tags.items() if k.startswith("resources/")})
        taints = []
        for key, value in tags.items():
            if key.startswith("taint/"):
                taint_value, _, effect = value.rpartition(":")
                taints.append({"key": key.removeprefix("taint/"), "value": taint_value, "effect": effect})
        labels = {k.removeprefix("label/"): v for k, v in tags.items() if k.startswith("label/")}
        return NodePool(
            group.name,
            self._cluster_component(group.urn),
            labels,
            taints,
            capacity,
            int(group.inputs["scalingConfig"]["maxSize"]),
            market=EKS_MARKETS[group.inputs.get("capacityType") or "ON_DEMAND"],
            asg=asg,
        )

    def _karpenter_pools(self, cluster: str, bodies: Sequence[dict[str, Any]]) -> list[NodePool]:
        """A karpenter.sh NodePool as one pool per capacity type it allows, in Karpenter's order, sharing
        its node limit. Reserved capacity is there only where its EC2NodeClass selects a reservation; a
        node is sized as the smallest listed type (Karpenter may launch any that fits)."""
        classes = {b["metadata"]["name"]: b["spec"] for b in bodies if b["kind"] == "EC2NodeClass"}
        out: list[NodePool] = []
        for body in bodies:
            if body["kind"] != "NodePool" or not body["apiVersion"].startswith("karpenter.sh/"):
                continue
            template = body["spec"]["template"]
            requirements = {r["key"]: r["values"] for r in template["spec"]["requirements"]}
            types = [self.catalog.instance_types[n] for n in requirements["node.kubernetes.io/instance-type"]]
            instance = min(types, key=lambda t: (t.vcpus, t.memory_gib))
            capacity = {"cpu": float(instance.vcpus), "memory": instance.memory_gib}
            accelerator = self.catalog.accelerators[instance.accelerator]
            if accelerator.resource and instance.accelerators:
                capacity[accelerator.resource] = float(instance.accelerators)
            if instance.supports_efa:
                capacity["vpc.amazonaws.com/efa"] = float(instance.efa_interfaces)
            node_class = classes[template["spec"]["nodeClassRef"]["name"]]
            allowed = set(requirements["karpenter.sh/capacity-type"])
            if "capacityReservationSelectorTerms" not in node_class:
                allowed.discard("reserved")
            shared: list[NodePool] = []
            name = body["metadata"]["name"]
            for rank, capacity_type in enumerate(KARPENTER_CAPACITY_ORDER):
                if capacity_type not in allowed:
                    continue
                labels = {
                    **(template["metadata"].get("labels") or {}),
                    "karpenter.sh/nodepool": name,
                    "karpenter.sh/capacity-type": capacity_type,
                }
                pool = NodePool(
                    f"{name}/{capacity_type}",
                    cluster,
                    labels,
                    list(template["spec"].get("taints") or []),
                    dict(capacity),
                    int(body["spec"]["limits"]["nodes"]),
                    market=capacity_type,
                    priority=-rank,
                    limit_with=shared,
                )
                shared.append(pool)
                out.append(pool)
        return out

    def _compute_classes(self, cluster: str, bodies: Sequence[dict[str, Any]]) -> None:
        """A class's node pools grow in the order of its priorities; one bound to it (its label) that no
        priority names is never grown for its pods."""
        for body in bodies:
            if body["kind"] != "ComputeClass" or body["apiVersion"] != "cloud.google.com/v1":
                continue
            order = [name for priority in body["spec"]["priorities"] for name in priority.get("nodepools", [])]
            for pool in self.pools:
                if pool.cluster != cluster or pool.labels.get(COMPUTE_CLASS) != body["metadata"]["name"]:
                    continue
                pool.priority = -order.index(pool.gke_name) if pool.gke_name in order else None

    def _gke_pool(self, pool: Resource) -> NodePool:
        """A GKE node pool with what GKE puts on its nodes: the TPU labels and the accelerator taint."""
        config = pool.inputs["nodeConfig"]
        instance = self.catalog.instance_types[config["machineType"]]
        accelerator = self.catalog.accelerators[instance.accelerator]
        labels = dict(config.get("labels") or {})
        taints = [
            {"key": t["key"], "value": t.get("value", ""), "effect": GKE_TAINT_EFFECTS[t["effect"]]}
            for t in config.get("taints") or []
        ]
        capacity = {"cpu": float(instance.vcpus), "memory": instance.memory_gib}
        if accelerator.resource and instance.accelerators:
            capacity[accelerator.resource] = float(instance.accelerators)
            taints.append({"key": accelerator.resource, "value": "present", "effect": "NoSchedule"})
        tpu = self.catalog.tpus.get(instance.accelerator)
        if tpu is not None:
            topology = (pool.inputs.get("placementPolicy") or {}).get("tpuTopology") or next(
                name
                for name, shape in tpu.topologies.items()
                if shape.machine_type == config["machineType"] and shape.hosts == 1
            )
            labels["cloud.google.com/gke-tpu-accelerator"] = tpu.gke_accelerator
            labels["cloud.google.com/gke-tpu-topology"] = topology
        if config.get("spot"):
            market = "spot"
        elif config.get("reservationAffinity"):
            market = "reservation"
        else:
            market = "on-demand"
        return NodePool(
            pool.name,
            self._cluster_component(pool.urn),
            labels,
            taints,
            capacity,
            int(pool.inputs["autoscaling"]["maxNodeCount"]),
            market=market,
            gke_name=str(pool.outputs["name"]),
        )

    def _workloads(self, cluster: str, bodies: Sequence[dict[str, Any]]) -> list[Workload]:
        priorities = {b["metadata"]["name"]: int(b["value"]) for b in bodies if b["kind"] == "WorkloadPriorityClass"}
        replicas = {
            (b["metadata"]["namespace"], b["spec"]["scaleTargetRef"]["name"]): int(b["spec"]["maxReplicaCount"])
            for b in bodies
            if b["kind"] == "ScaledObject"
        }
        out = []
        for body in bodies:
            meta, spec = body["metadata"], body.get("spec") or {}
            labels = meta.get("labels") or {}
            queue = labels.get("kueue.x-k8s.io/queue-name")
            priority = priorities.get(labels.get("kueue.x-k8s.io/priority-class", ""), 0)
            if body["kind"] == "JobSet":
                exclusive = "alpha.jobset.sigs.k8s.io/exclusive-topology" in (meta.get("annotations") or {})
                groups = []
                for job in spec["replicatedJobs"]:
                    template = job["template"]["spec"]
                    for _ in range(int(job.get("replicas", 1))):
                        groups.append(_pod_groups(template["template"], int(template["parallelism"]), exclusive))
            elif body["kind"] == "Job":
                groups = [_pod_groups(spec["template"], int(spec["parallelism"]), False)]
            elif body["kind"] == "Deployment":
                count = replicas.get((meta["namespace"], meta["name"]), int(spec.get("replicas", 1)))
                groups = [_pod_groups(spec["template"], count, False)]
            else:
                continue
            out.append(Workload(body["kind"], meta["name"], meta["namespace"], cluster, groups, queue, priority))
        return out

    # -- Kueue -----------------------------------------------------------------------------------

    def _kueue(self, cluster: str, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (b["metadata"].get("namespace", ""), b["metadata"]["name"]): b
            for b in self.objects[cluster]
            if b["kind"] == kind
        }

    def admit(self, workload: Workload, usage: dict[tuple[str, str, str], float]) -> str | None:
        """None if Kueue admits the job now, else why it waits. `usage` is (queue, flavor, resource)."""
        local = self._kueue(workload.cluster, "LocalQueue").get((workload.namespace, str(workload.queue)))
        if local is None:
            return f"no LocalQueue '{workload.queue}' in namespace '{workload.namespace}'"
        queues = self._kueue(workload.cluster, "ClusterQueue")
        name = local["spec"]["clusterQueue"]
        queue = queues.get(("", name))
        if queue is None:
            return f"LocalQueue '{workload.queue}' points at a missing ClusterQueue '{name}'"
        for expression in queue["spec"].get("namespaceSelector", {}).get("matchExpressions", []):
            if workload.namespace not in expression["values"]:
                return f"ClusterQueue '{name}' does not admit namespace '{workload.namespace}'"
        [group] = queue["spec"]["resourceGroups"]
        flavors = self._kueue(workload.cluster, "ResourceFlavor")
        wanted: dict[tuple[str, str], float] = defaultdict(float)
        for pods in workload.groups:
            missing = set(pods.requests) - set(group["coveredResources"])
            if missing:
                return f"ClusterQueue '{name}' covers no {', '.join(sorted(missing))}"
            flavor = next(
                (f["name"] for f in group["flavors"] if _flavor_fits(flavors[("", f["name"])]["spec"], pods)), None
            )
            if flavor is None:
                return f"no flavor of ClusterQueue '{name}' matches the pods' node selector and tolerations"
            for resource, amount in pods.requests.items():
                wanted[(flavor, resource)] += amount * pods.count
        for (flavor, resource), amount in wanted.items():
            available = self._available(workload.cluster, queue, flavor, resource, usage)
            if amount > available + 1e-9:
                return (
                    f"ClusterQueue '{name}' has {available:g} {resource} of flavor '{flavor}' left "
                    f"(with what its cohort lends); the job needs {amount:g}"
                )
        for (flavor, resource), amount in wanted.items():
            usage[(name, flavor, resource)] += amount
        return None

    def _available(
        self,
        cluster: str,
        queue: dict[str, Any],
        flavor: str,
        resource: str,
        usage: Mapping[tuple[str, str, str], float],
    ) -> float:
        """Unused nominal quota of this queue, plus the unused nominal quota of its cohort's other queues."""

        def unused(q: dict[str, Any]) -> float:
            [group] = q["spec"]["resourceGroups"]
            entry = next(f for f in group["flavors"] if f["name"] == flavor)
            nominal = next(
                (quantity(resource, r["nominalQuota"]) for r in entry["resources"] if r["name"] == resource), 0.0
            )
            return nominal - usage.get((q["metadata"]["name"], flavor, resource), 0.0)

        total = unused(queue)
        cohort = queue["spec"].get("cohort")
        if cohort is not None:
            total += sum(
                max(unused(q), 0.0)
                for q in self._kueue(cluster, "ClusterQueue").values()
                if q["spec"].get("cohort") == cohort and q is not queue
            )
        return total

    # -- node faults --------------------------------------------------------------------------------

    def body(self, workload: Workload) -> dict[str, Any]:
        return next(
            b
            for b in self.objects[workload.cluster]
            if b["kind"] == workload.kind and b["metadata"]["name"] == workload.name
        )

    def node_fault(self, name: str, restarts_before: int = 0) -> NodeFault:
        """One node under the running JobSet `name` fails a health check (or stops): repair drains and
        replaces it. Eviction through the API, the taint manager's NoExecute eviction and the pod
        garbage collector's cleanup of a deleted node all set the pod condition DisruptionTarget=True
        (Kubernetes "Pod disruption conditions"); the rest follows the rendered policies."""
        workload = next(w for w in self.workloads if w.name == name)
        body = self.body(workload)
        assert body["kind"] == "JobSet", f"{name} is a {body['kind']}, not a JobSet"
        job = body["spec"]["replicatedJobs"][0]["template"]["spec"]
        before = _checkpoint_uris(body)
        pod = f"{workload.namespace}/{name}-{body['spec']['replicatedJobs'][0]['name']}-0-0"
        index, action = _pod_failure_rule(job.get("podFailurePolicy") or {"rules": []}, "DisruptionTarget")
        assert action == "FailJob", f"a drained pod of {name} does not fail its Job at once: {action}"
        message = f"Pod {pod} has condition DisruptionTarget matching FailJob rule at index {index}"
        policy = body["spec"].get("failurePolicy") or {}
        rule, jobset_action = _jobset_rule(policy, "PodFailurePolicy", message)
        counted = restarts_before + (0 if jobset_action == "RestartJobSetAndIgnoreMaxRestarts" else 1)
        # The whole group restarts: every pod of the job leaves its node, the failed node is replaced.
        held = self.held.pop(name)
        for _pool, node, requests in held:
            for r, amount in requests.items():
                node[r] += amount
        failed_pool, failed_node, _ = held[0]
        failed_pool.nodes.remove(failed_node)
        sizes = {id(p): len(p.nodes) for p in self.pools}
        pending = self.place(workload) if jobset_action != "FailJobSet" else "the JobSet failed"
        added = sum(len(p.nodes) - sizes[id(p)] for p in self.pools)
        after = _checkpoint_uris(body)
        return NodeFault(message, rule, jobset_action, counted, added, pending is None, (before, after))

    # -- the node scaler ---------------------------------------------------------------------------

    def place(self, workload: Workload) -> str | None:
        """Adds nodes for every pod of the workload; None if all fit, else why some stay Pending."""
        for i, pods in enumerate(workload.groups):
            candidates = [
                p
                for p in self.pools
                if p.cluster == workload.cluster
                and _selects(pods.node_selector, p.labels)
                and all(tolerates(pods.tolerations, t) for t in p.taints if t["effect"] != "PreferNoSchedule")
                and all(p.capacity.get(r, 0.0) + 1e-9 >= amount for r, amount in pods.requests.items())
            ]
            if not candidates:
                return "no node pool offers a node the pods fit on (selector, taints and requests)"
            candidates.sort(key=lambda p: -math.inf if p.priority is None else -p.priority)
            if pods.exclusive:
                free = [p for p in candidates if p.taken_by is None and not p.nodes]
                pool = next((p for p in free if p.max_nodes >= pods.count), None)
                if pool is None:
                    return f"no free slice left for job {i} of {workload.name}"
                pool.taken_by = f"{workload.name}/{i}"
                for _ in range(pods.count):
                    self._hold(workload, pool, pods.requests)
                continue
            for _ in range(pods.count):
                if not any(self._hold(workload, p, pods.requests) for p in candidates):
                    limits = ", ".join(f"{p.name} {self._full(p)}" for p in candidates)
                    return f"a pod stays Pending: every pool it fits is full ({limits})"
        return None

    def _hold(self, workload: Workload, pool: NodePool, requests: Mapping[str, float]) -> bool:
        """Adds one pod of the workload to the pool, remembering the node it took."""
        node = self._add_pod(pool, requests)
        if node is None:
            return False
        self.held.setdefault(workload.name, []).append((pool, node, dict(requests)))
        return True

    @staticmethod
    def _full(pool: NodePool) -> str:
        """Why the scaler adds no node to the pool ('' when it may)."""
        if pool.priority is None:
            return "named by no compute class priority" if pool.gke_name else "named by no expander priority"
        if sum(len(p.nodes) for p in pool.limit_with or [pool]) >= pool.max_nodes:
            return f"at its max of {pool.max_nodes}"
        if pool.launchable is not None and len(pool.nodes) >= pool.launchable:
            return f"with no {pool.market} capacity left"
        return ""

    def _add_pod(self, pool: NodePool, requests: Mapping[str, float]) -> dict[str, float] | None:
        def fits(free: Mapping[str, float]) -> bool:
            return all(free.get(r, 0.0) + 1e-9 >= amount for r, amount in requests.items())

        node = next((n for n in pool.nodes if fits(n)), None)
        if node is None:
            if self._full(pool):
                return None
            node = dict(pool.capacity)
            pool.nodes.append(node)
        for r, amount in requests.items():
            node[r] -= amount
        return node

    def run(self) -> list[Outcome]:
        """Queued jobs by priority (declaration order among equals) through Kueue, then every admitted job
        and every service through the node scaler."""
        usage: dict[tuple[str, str, str], float] = defaultdict(float)
        order = sorted(self.workloads, key=lambda w: -w.priority)
        outcomes = []
        for workload in order:
            waiting = self.admit(workload, usage) if workload.queue is not None else None
            if waiting is not None:
                outcomes.append(Outcome(workload.name, False, False, waiting))
                continue
            pending = self.place(workload)
            outcomes.append(Outcome(workload.name, True, pending is None, pending or ""))
        return outcomes

    def nodes_by_pool(self) -> dict[str, int]:
        return {p.name: len(p.nodes) for p in self.pools}


def _expander_priority(priorities: Mapping[int, Sequence[str]], group: str) -> int | None:
    """The priority expander's number for a node group: the highest whose patterns match its name."""
    matching = [int(p) for p, patterns in priorities.items() if any(re.search(x, group) for x in patterns)]
    return max(matching, default=None)


def _pod_failure_rule(policy: Mapping[str, Any], condition: str) -> tuple[int, str]:
    """The Job controller's first podFailurePolicy rule matching a pod with this condition True."""
    for i, rule in enumerate(policy["rules"]):
        for wanted in rule.get("onPodConditions", []):
            if wanted["type"] == condition and wanted.get("status", "True") == "True":
                return i, str(rule["action"])
    return -1, "Count"


def _jobset_rule(policy: Mapping[str, Any], reason: str, message: str) -> tuple[str | None, str]:
    """The first JobSet failurePolicy rule whose reasons and message patterns match the failed Job;
    none matching: RestartJobSet, which counts against maxRestarts."""
    for rule in policy.get("rules", []):
        reasons = rule.get("onJobFailureReasons") or [reason]
        patterns = rule.get("onJobFailureMessagePatterns") or [""]
        if reason in reasons and any(re.search(p, message) for p in patterns):
            return rule.get("name"), str(rule["action"])
    return None, "RestartJobSet"


def _checkpoint_uris(jobset: Mapping[str, Any]) -> set[str]:
    return {
        str(env["value"])
        for job in jobset["spec"]["replicatedJobs"]
        for container in job["template"]["spec"]["template"]["spec"]["containers"]
        for env in container.get("env", [])
        if env["name"] == "MESHSTACK_CHECKPOINT_URI" and "value" in env
    }
