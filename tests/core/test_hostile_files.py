"""Files a careless or hostile user might hand meshstack: each gets one line naming the file (and the
line where there is one) and exit 2 — never an internal error, a hang or a silently different value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshstack.cli import main
from tests.conftest import stack_config

MakeProject = Callable[[str, dict[str, Any]], Path]
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


def dev_text() -> str:
    return yaml.safe_dump({"config": stack_config("dev")}, sort_keys=False)


STACK_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "not UTF-8": (lambda: dev_text().encode() + b"# caf\xe9\n", "is not UTF-8 text (byte 0xe9)"),
    "a control character": (
        lambda: dev_text().replace("dev", "d\x07ev", 1).encode(),
        "holds the control character U+0007",
    ),
    "a non-finite number": (
        lambda: dev_text().replace("max_hourly_usd: 5", "max_hourly_usd: .inf").encode(),
        "'.inf' is not a finite number",
    ),
    "a duplicate key": (
        lambda: (
            dev_text()
            .replace("  meshstack:environment: dev\n", "  meshstack:environment: dev\n  meshstack:environment: prod\n")
            .encode()
        ),
        "duplicate key 'meshstack:environment' (first at line",
    ),
    "deep nesting": (
        lambda: ("config:\n  meshstack:tags: " + "[" * 200 + "]" * 200 + "\n").encode(),
        "nests deeper than 64 levels",
    ),
    "an alias bomb": (
        lambda: (
            "config:\n  meshstack:tags: {}\nx:\n" + "".join("  " + line + "\n" for line in ALIAS_BOMB.splitlines())
        ).encode(),
        "expands to more than 200,000 values",
    ),
    "a huge file": (
        lambda: b"config: {}\n" + b"#" * (5 * 2**20) + b"\n",
        "is 5,242,892 bytes; meshstack reads files up to 4,194,304",
    ),
    "a syntax error": (lambda: b"config:\n  aws:region: us-east-1\n   bad: [\n", "line 3: not valid YAML"),
}


@pytest.mark.parametrize("case", STACK_FILES)
def test_a_broken_stack_file_is_refused_in_one_line(
    case: str, project_copy: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    make, message = STACK_FILES[case]
    root = project_copy("dev", stack_config("dev"))
    path = root / "stacks" / "Pulumi.dev.yaml"
    path.write_bytes(make())
    for command in (["validate", "--stack", "dev"], ["preview", "--stack", "dev"]):
        assert main(["--project", str(root), *command]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "internal error" not in err
        assert err.startswith(f"meshstack: {path}: ") and message in err


def test_a_stack_file_that_is_a_directory(project_copy: MakeProject, capsys: pytest.CaptureFixture[str]) -> None:
    root = project_copy("dev", stack_config("dev"))
    path = root / "stacks" / "Pulumi.dev.yaml"
    path.unlink()
    path.mkdir()
    assert main(["--project", str(root), "validate", "--stack", "dev"]) == 2
    assert "is a directory, not a file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"all": "advisory", "all": "mandatory"}', "duplicate key 'all'"),
        ('{"stack-cost-cap": {"max_hourly_usd": NaN}}', "'NaN' is not a finite number"),
        ("[" * 3000 + "]" * 3000, "nests deeper than 64 levels"),
        ('{"a": ' * 70 + "1" + "}" * 70, "nests deeper than 64 levels"),
    ],
)
def test_a_hostile_policy_config_is_refused(
    text: str, message: str, project_copy: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project_copy("dev", stack_config("dev"))
    config = root / "policies" / "config" / "dev.json"
    config.parent.mkdir(parents=True)
    config.write_text(text)
    assert main(["--project", str(root), "preview", "--stack", "dev"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"meshstack: {config}: ") and message in err and len(err.splitlines()) == 1


def test_a_catalog_override_with_a_duplicate_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    override = tmp_path / "prices.yaml"
    override.write_text("discounts:\n  instances: 10\n  instances: 90\n")
    monkeypatch.setenv("MESHSTACK_CATALOG", str(override))
    assert main(["validate", "--stack", "dev"]) == 2
    assert "prices.yaml: line 3: not valid YAML: duplicate key 'instances' (first at line 2)" in capsys.readouterr().err
