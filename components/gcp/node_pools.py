"""The GKE node pools one spec pool becomes, by name: shared by the GKE component, which creates them,
and validation, which refuses a name GKE would refuse at `pulumi up`.

A TPU pool of several slices is a node pool per slice (a multi-host slice is created and removed whole).
A pool with several machine types or a market fallback is a node pool per market and type, in the order
its compute class tries them: a GKE node pool has one machine type and one provisioning model.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshstack.core.vocabulary import PINNED_MARKETS

# GKE refuses a node pool name over 40 characters (Compute Engine's resource name rule as GKE applies it),
# and Pulumi names a resource it auto-names `<logical name>-<7 random characters>`.
GKE_NODE_POOL_NAME_MAX = 40
PULUMI_AUTONAME_SUFFIX = len("-abcdefg")
# The fallback markets' short forms in their node pools' names.
MARKET_CODES = {"spot": "spot", "on-demand": "od"}


def member_key(pool: str, market_rank: int, market: str, type_rank: int) -> str:
    """The name of the node pool of `pool` for its `market_rank`-th market and `type_rank`-th type; the first
    market's first type keeps the pool's own name, as a pool without fallback does."""
    return pool + (f"-{MARKET_CODES[market]}" if market_rank else "") + (f"-{type_rank + 1}" if type_rank else "")


def member_types(market: str, types: Sequence[str]) -> list[str]:
    """The machine types a market of the pool's order launches: a reservation holds one machine type, so
    it is taken by the first type alone."""
    return list(types[:1]) if market in PINNED_MARKETS else list(types)


def node_pool_keys(pool: str, slices: int, markets: Sequence[str], types: Sequence[str]) -> list[str]:
    """Every node pool name of the pool (without the cluster's prefix), in the order they are tried."""
    if slices > 1:
        return [f"{pool}-s{i}" for i in range(slices)]
    return [
        member_key(pool, rank, market, j)
        for rank, market in enumerate(markets)
        for j, _ in enumerate(member_types(market, types))
    ]


def too_long(cluster: str, key: str) -> bool:
    """Whether GKE would refuse the node pool Pulumi names after `<cluster>-<key>`."""
    return len(f"{cluster}-{key}") + PULUMI_AUTONAME_SUFFIX > GKE_NODE_POOL_NAME_MAX
