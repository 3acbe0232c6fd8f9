"""Words the spec, the components, the cost estimate and the CLI all spell: each declared once, here.

A leaf module (it imports nothing of meshstack), so the components, which must build without the stack
spec, and the JAX programs, which must load without Pulumi, take the same words the spec validates.
A market or a taint effect added here reaches every reader at once.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

# Where a pool's nodes come from. A capacity block (AWS) or a reservation is one reservation id in one
# zone; spot and on-demand are open markets.
Market = Literal["on-demand", "spot", "capacity-block", "reservation"]
MARKETS: tuple[Market, ...] = get_args(Market)
PINNED_MARKETS: tuple[Market, ...] = ("capacity-block", "reservation")
# A pool has one reservation id, so only the open markets can follow the first.
FallbackMarket = Literal["spot", "on-demand"]

TaintEffect = Literal["NoSchedule", "NoExecute", "PreferNoSchedule"]
# The effects as the EKS and GKE node pool APIs spell them (NoSchedule: NO_SCHEDULE), keyed by the
# Kubernetes spelling the components' node taints carry.
TAINT_EFFECT_ENUMS: dict[str, str] = {e: re.sub(r"(?<!^)(?=[A-Z])", "_", e).upper() for e in get_args(TaintEffect)}

# EKS control-plane log types (the EKS API's enabledClusterLogTypes).
LogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]
LOG_TYPES: tuple[LogType, ...] = get_args(LogType)

# A Pulumi stack name as meshstack takes one: it names a stack file, so no path separators.
STACK_NAME = r"^[A-Za-z0-9_.-]{1,100}$"
STACK_NAME_RULE = "letters, digits, '-', '_' and '.', at most 100"

# The dtype meshstack's trainer and server compute in; auto is bfloat16 on GPU and TPU, float32 on CPU.
ComputeDtype = Literal["auto", "float32", "bfloat16"]
