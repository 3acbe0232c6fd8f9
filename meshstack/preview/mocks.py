"""The offline preview's answers: Kubernetes objects and random values here, each cloud's resources and
data sources by that cloud's own mocks (its `Cloud.mocks`), found by the type's Pulumi package.

A type no registered cloud owns gets an id derived from its name and nothing else: no cloud's ARN or
path shape is assumed for it.
"""

from __future__ import annotations

from typing import Any, Protocol

import pulumi

from meshstack.components.mock_ids import digest
from meshstack.core import clouds


class CloudAnswers(Protocol):
    """What a cloud's mocks class (built with the stack's region) answers."""

    def new_resource(self, typ: str, name: str, inputs: dict[str, Any], token: str) -> tuple[str, dict[str, Any]]:
        """The id and outputs of a resource of the cloud's."""

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any] | None:
        """A data source's answer; None where the mocks know none."""


class CloudMocks(pulumi.runtime.Mocks):
    """Answers for a region of each registered cloud's fixed test account."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.clouds: dict[str, CloudAnswers] = {
            name: cloud.load_mocks()(region) for name, cloud in clouds.registered().items()
        }

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if not args.custom:
            return None, {}
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        token = digest(typ, name)
        if typ.startswith("pulumi:providers:"):
            return f"{name}-provider", inputs
        if typ.startswith("kubernetes:"):
            return self._kubernetes(typ, name, inputs)
        if typ.startswith("random:"):
            # a stand-in value of the asked length: the preview never sees a real secret
            return f"{name}-{token[:8]}", {**inputs, "id": "none", "result": token.ljust(int(inputs["length"]), "x")}
        cloud = self.clouds.get(typ.split(":", 1)[0])
        if cloud is not None:
            return cloud.new_resource(typ, name, inputs, token)
        rid = f"{name}-{token[:8]}"
        return rid, {**inputs, "id": rid}

    def _kubernetes(self, typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        metadata = dict(inputs.get("metadata") or {})
        metadata.setdefault("name", f"{name}-{digest(typ, name, length=8)}")
        metadata.setdefault("uid", digest("uid", typ, name, length=32))
        namespace = metadata.get("namespace")
        rid = f"{namespace}/{metadata['name']}" if namespace else metadata["name"]
        return rid, {**inputs, "metadata": metadata}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        cloud = self.clouds.get(args.token.split(":", 1)[0])
        answer = None if cloud is None else cloud.call(args.token, dict(args.args))
        if answer is None:
            raise NotImplementedError(f"the offline preview has no answer for the data source {args.token}")
        return answer, []
