"""The kubeconfig every cluster component outputs: one cluster, one context, and a user whose token
comes from the cloud's credential plugin, so the file itself holds no secret."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

EXEC_API = "client.authentication.k8s.io/v1beta1"


def exec_kubeconfig(name: str, server: str, ca_data: str, plugin: Mapping[str, Any]) -> str:
    """`plugin` is the exec block's cloud part (its command and arguments); the rest is the same for
    every cloud, so a context name and a CA field are spelled once."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [{"name": name, "user": {"exec": {"apiVersion": EXEC_API, **plugin}}}],
        }
    )
