"""The platform dashboard on GKE: a Cloud Monitoring dashboard whose charts run the same PromQL as the
Grafana one on EKS, against Managed Service for Prometheus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from meshstack.components.k8s.monitoring import dashboard_sections
from meshstack.core.observability import Panel

COLUMNS = 48  # Cloud Monitoring's mosaic layout is 48 columns wide


def dashboard_json(title: str, vendors: set[str]) -> str:
    tiles: list[dict[str, Any]] = []
    y = 0
    for section, panels in dashboard_sections(vendors):
        tiles.append(
            {"xPos": 0, "yPos": y, "width": COLUMNS, "height": 4, "widget": {"title": section, "sectionHeader": {}}}
        )
        y += 4
        y = _charts(tiles, panels, y)
    return json.dumps({"displayName": title, "mosaicLayout": {"columns": COLUMNS, "tiles": tiles}}, sort_keys=True)


def _charts(tiles: list[dict[str, Any]], panels: Sequence[Panel], y: int) -> int:
    for i, panel in enumerate(panels):
        tiles.append(
            {
                "xPos": (COLUMNS // 2) * (i % 2),
                "yPos": y + 16 * (i // 2),
                "width": COLUMNS // 2,
                "height": 16,
                "widget": {
                    "title": f"{panel.title} ({panel.unit})",
                    "xyChart": {
                        "dataSets": [{"timeSeriesQuery": {"prometheusQuery": panel.expr}, "plotType": "LINE"}],
                    },
                },
            }
        )
    return y + 16 * ((len(panels) + 1) // 2)
