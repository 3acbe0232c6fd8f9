"""The Kubernetes minor versions meshstack supports, what is pinned per version, and how long each cloud
supports each one (the cloud's own `kubernetes_support` file).

Validation refuses a cluster version missing here, so no add-on meets a version it was not pinned
for halfway through a deployment, and a version whose support has ended on the cluster's cloud (as
of `support_date()`), since the cloud then upgrades the control plane on its own and the program
would try to put it back.
"""

from __future__ import annotations

import datetime
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from meshstack.core import clouds
from meshstack.core.yaml_text import load_yaml

SupportType = Literal["STANDARD", "EXTENDED"]
TODAY_ENV = "MESHSTACK_TODAY"  # an ISO date to validate and price as of, instead of today


@dataclass(frozen=True)
class Support:
    """One version's support on one cloud; `end_of_extended` None where the cloud offers no extended support."""

    released: datetime.date
    end_of_standard: datetime.date
    end_of_extended: datetime.date | None = None


def _load() -> dict[str, str]:
    data: dict[str, dict[str, Any]] = load_yaml(Path(__file__).with_name("kubernetes_versions.yaml").read_text())
    return {version: str(entry["autoscaler"]) for version, entry in data.items()}


AUTOSCALER_IMAGES = _load()
SUPPORTED_VERSIONS = tuple(AUTOSCALER_IMAGES)


@functools.cache
def support_table(cloud: str) -> dict[str, Support]:
    """The cloud's own support dates (its Cloud.kubernetes_support file), one entry for each version
    meshstack knows: a version the cloud does not date could not be checked against its end of support."""
    path = clouds.get(cloud).kubernetes_support
    data: dict[str, dict[str, Any]] = load_yaml(path.read_text())
    table = {str(version): Support(**dates) for version, dates in data.items()}
    missing = [v for v in SUPPORTED_VERSIONS if v not in table]
    unknown = [v for v in table if v not in SUPPORTED_VERSIONS]
    if missing or unknown:
        raise clouds.CloudError(
            f"{path}: date every Kubernetes version meshstack knows ({', '.join(SUPPORTED_VERSIONS)}) and no "
            f"other: missing {', '.join(missing) or 'none'}; unknown {', '.join(unknown) or 'none'}"
        )
    return table


def support_date() -> datetime.date:
    """The day support is judged on: MESHSTACK_TODAY (an ISO date) where set, else today (UTC)."""
    pinned = os.environ.get(TODAY_ENV)
    if pinned:
        return datetime.date.fromisoformat(pinned)
    return datetime.datetime.now(datetime.UTC).date()


def support_of(cloud: str, version: str) -> Support | None:
    return support_table(cloud).get(version)


def support_problem(cloud: str, version: str, support_type: SupportType, on: datetime.date) -> tuple[str, str] | None:
    """(the spec field to change, why) when `version` cannot be deployed on `cloud` under
    `support_type` on day `on`; None when it can."""
    support = support_of(cloud, version)
    if support is None:
        return None  # an unknown version is refused by name elsewhere
    if support_type == "EXTENDED" and support.end_of_extended is None:
        return "support_type", f"{cloud.upper()} offers no extended support through meshstack: use STANDARD"
    problem = _version_problem(cloud, version, support, support_type, on)
    return ("kubernetes_version", problem) if problem else None


def _version_problem(
    cloud: str, version: str, support: Support, support_type: SupportType, on: datetime.date
) -> str | None:
    current = ", ".join(v for v in SUPPORTED_VERSIONS if in_standard_support(cloud, v, on)) or "none"
    if on < support.released:
        return f"Kubernetes {version} is not released on {cloud.upper()} until {support.released}"
    if support_type == "STANDARD" and on >= support.end_of_standard:
        extended = (
            f", or set support_type EXTENDED (until {support.end_of_extended}, at the extended-support price)"
            if support.end_of_extended is not None and on < support.end_of_extended
            else ""
        )
        return (
            f"Kubernetes {version}'s standard support on {cloud.upper()} ended {support.end_of_standard} (the cloud "
            f"then upgrades the control plane on its own): use one of {current}{extended}"
        )
    if support_type == "EXTENDED" and support.end_of_extended is not None and on >= support.end_of_extended:
        ended = support.end_of_extended
        return f"Kubernetes {version}'s extended support on {cloud.upper()} ended {ended}: use one of {current}"
    return None


def in_standard_support(cloud: str, version: str, on: datetime.date) -> bool:
    support = support_of(cloud, version)
    return support is not None and support.released <= on < support.end_of_standard


def in_extended_support(cloud: str, version: str, on: datetime.date) -> bool:
    """Past standard support, where an EXTENDED cluster pays the extended-support price."""
    support = support_of(cloud, version)
    return support is not None and on >= support.end_of_standard


def default_version(cloud: str, on: datetime.date) -> str:
    """For a new stack: the newest version but one in standard support on the cloud (the newest has the
    least field time behind it), else the newest known."""
    current = [v for v in SUPPORTED_VERSIONS if in_standard_support(cloud, v, on)]
    if len(current) >= 2:
        return current[-2]
    return current[-1] if current else SUPPORTED_VERSIONS[-1]


def existing_minor(cluster: str, version: str) -> str:
    """The minor version an existing cluster reports (EKS '1.35', GKE '1.35.1-gke.1396000'), when meshstack
    pins add-ons for it: checked at `up`, where the look-up answers, before anything is sent to the cluster."""
    minor = ".".join(version.split(".")[:2])
    if minor not in SUPPORTED_VERSIONS:
        raise ValueError(
            f"existing cluster '{cluster}' runs Kubernetes {version}; meshstack pins its add-ons for "
            f"{', '.join(SUPPORTED_VERSIONS)}: upgrade the cluster or run a meshstack that pins {minor}"
        )
    return minor
