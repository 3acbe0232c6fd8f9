"""Custom resources declared from their whole body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi


class CustomObject(pulumi.CustomResource):
    """A custom resource with every top-level field its kind has. The SDK's
    `apiextensions.CustomResource` sends only `spec`, so a kind such as Kueue's
    WorkloadPriorityClass (`value`, `description`) cannot be declared with it.

    The type token is the one the Kubernetes provider gives any custom resource,
    `kubernetes:<group>/<version>:<Kind>`; the provider comes through `opts`.
    """

    def __init__(self, name: str, body: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"kubernetes:{body['apiVersion']}:{body['kind']}", name, dict(body), opts)
