"""Rules a stack's policy config disables or lowers are shown wherever the verdict is: the terminal, the JSON,
the pull-request comment and the report. `{"all": "disabled"}` never reads as a pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshstack.core.stack_file import PROJECT_ROOT, find_project
from meshstack.policies.pack import RULES_BY_ID
from meshstack.preview.plan import preview_stack
from meshstack.preview.policy_levels import policy_settings
from meshstack.preview.render import markdown, tree
from meshstack.report.page import render
from tests.conftest import stack_config


def meshstack(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshstack.cli", "--project", str(root), "preview", "--stack", "dev", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )


@pytest.fixture
def configured(project_copy: Callable[[str, dict[str, Any]], Path]) -> Callable[[dict[str, Any]], Path]:
    def make(config: dict[str, Any]) -> Path:
        root = project_copy("dev", stack_config("dev"))
        (root / "policies" / "config").mkdir(parents=True, exist_ok=True)
        (root / "policies" / "config" / "dev.json").write_text(json.dumps(config))
        return root

    return make


@pytest.mark.slow
def test_every_rule_disabled_is_not_checked_anywhere(configured: Callable[[dict[str, Any]], Path]) -> None:
    root = configured({"all": "disabled"})
    terminal = meshstack(root)
    assert terminal.returncode == 0, terminal.stderr
    assert "Policy: not checked: every rule is disabled by policies/config/dev.json" in terminal.stdout
    comment = meshstack(root, "--markdown").stdout
    assert "passes policy" not in comment
    assert "**⚠️ not checked: every rule is disabled by policies/config/dev.json**" in comment
    data = json.loads(meshstack(root, "--json").stdout)["policy"]
    assert data["config"] == "policies/config/dev.json"
    assert sorted(data["disabled"]) == sorted(RULES_BY_ID)


def test_disabled_and_downgraded_rules_are_named_with_the_file(tmp_path: Path) -> None:
    config = {
        "s3-encrypted": "disabled",
        "iam-trust-not-open": "disabled",
        "kms-key-rotation": {"enforcementLevel": "disabled"},
        "pod-images-allowed": "advisory",
        "pod-resource-limits": "mandatory",
    }
    settings = policy_settings(config, "policies/config/dev.json")
    assert settings.summary() == "3 rules disabled, 1 rule downgraded to advisory by policies/config/dev.json"
    assert [c.rule_id for c in settings.of_kind("raised")] == ["MS-K8S-009"]
    assert "MS-AWS-002 s3-encrypted: disabled (default mandatory)" in settings.lines()
    preview = preview_stack("dev", find_project(PROJECT_ROOT))
    preview.policy = settings
    assert "3 rules disabled, 1 rule downgraded to advisory by policies/config/dev.json" in tree(preview)
    assert "  config: MS-AWS-017 iam-trust-not-open: disabled (default mandatory)" in tree(preview)
    comment = markdown(preview)
    assert (
        "**✅ passes policy (3 rules disabled, 1 rule downgraded to advisory by policies/config/dev.json)**" in comment
    )
    assert "- MS-AWS-014 kms-key-rotation: disabled (default mandatory)" in comment
    assert preview.to_json()["policy"]["downgraded"] == ["MS-K8S-007"]
    pixel = tmp_path / "p.png"
    pixel.write_bytes(b"\x89PNG\r\n\x1a\n")
    page = render(preview, dict.fromkeys(("topology", "cost", "training", "serving"), pixel), [], [], 1.0)
    assert "passes</span> (3 rules disabled, 1 rule downgraded to advisory by policies/config/dev.json)" in page
    assert "MS-AWS-002 s3-encrypted: disabled (default mandatory)" in page


def test_the_shipped_dev_config_is_shown_with_the_verdict() -> None:
    preview = preview_stack("dev", find_project(PROJECT_ROOT))
    assert preview.policy.summary() == "2 rules downgraded to advisory by policies/config/dev.json"
    assert "(2 rules downgraded to advisory by policies/config/dev.json)" in markdown(preview)
