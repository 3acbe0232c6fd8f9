"""The Kubernetes minor versions meshstack supports, and what is pinned per version.

Validation refuses a cluster version missing here, so no add-on meets a version it was not
pinned for halfway through a deployment.
"""

from __future__ import annotations

from pathlib import Path

from meshstack.core.yaml_text import load_yaml

AUTOSCALER_IMAGES: dict[str, str] = load_yaml(Path(__file__).with_name("kubernetes_versions.yaml").read_text())
SUPPORTED_VERSIONS = tuple(AUTOSCALER_IMAGES)
