"""Resource type tokens that more than one layer names: the pack, the cost estimate and the components.

Kept here, below all of them, so the policy pack can name meshstack's own types without importing
the components (and Pulumi's providers with them).
"""

from __future__ import annotations

GOVERNANCE = "meshstack:governance:StackGovernance"
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
GKE_NODE_POOL = "gcp:container/nodePool:NodePool"
POOL_TYPES = (EKS_NODE_GROUP, GKE_NODE_POOL)
# A storage component's inputs name the stores whose size the cloud does not fix, with the spec's
# expected GiB: {resource name: GiB}. The cost estimate prices them from here.
EXPECTED_GIB = "expected_gib"
# A node pool's component inputs give, per pool resource (per TPU slice), the nodes the stack's
# workloads keep busy at full size: {resource name: nodes}. The estimate's running figure reads it.
WORKLOAD_NODES = "workload_nodes"
# The stack's training runs, declared by the program as a component (meshstack.program.build): {RUNS: [{
# "workload", "instance_type", "market", "nodes", "hours", "cost_usd", "prepaid"}], "max_run_usd": ...}. A run's `nodes`
# are those it adds to its pool beyond the pool's all-month load; the estimate counts them for `hours` a month.
TRAINING_RUNS = "meshstack:governance:TrainingRuns"
RUNS = "runs"
