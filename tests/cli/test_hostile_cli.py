"""Command lines a careless user might type: one line and exit 64 for each, and nothing of theirs lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshstack.cli import main
from meshstack.core.workspace import MARKER, clear


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        code = main(list(argv))
        raise SystemExit(code)
    assert exited.value.code == 64
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "internal error" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate", "--stack", "x" * 5000], "is not a stack name"),
        (["validate", "--stack", "dev\nprod"], "'dev\\nprod' is not a stack name"),
        (["validate", "--stack", "../../etc/passwd"], "is not a stack name"),
        (["run", "--local", "--stack", "dev", "--processes", "0"], "--processes: must be at least 1, not 0"),
        (["run", "--local", "--stack", "dev", "--processes", "two"], "'two' is not a whole number"),
        (["run", "--local", "--stack", "dev", "--port", "70000"], "a port is at most 65535, not 70000"),
        (["demo", "--steps", "-3"], "--steps: must be at least 1, not -3"),
        (["--project", "/no/such/folder", "validate", "--stack", "dev"], "--project '/no/such/folder': no such folder"),
        (["--project", "/etc/hostname", "validate", "--stack", "dev"], "is a file, not a project folder"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in refused(capsys, *argv)


def test_a_folder_that_is_not_a_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no Pulumi.yaml there or above" in refused(capsys, "--project", str(tmp_path), "validate", "--stack", "dev")


def test_the_demo_never_touches_a_folder_it_did_not_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "documents"
    (out / "work").mkdir(parents=True)
    precious = out / "work" / "thesis.tex"
    precious.write_text("four years")
    assert "holds files meshstack did not write" in refused(capsys, "demo", "--out", str(out))
    assert precious.read_text() == "four years"
    # Even inside a folder meshstack owns, a subfolder it did not make is not emptied.
    (out / MARKER).write_text("")
    assert "work: the folder holds files meshstack did not write" in refused(capsys, "demo", "--out", str(out))
    assert precious.read_text() == "four years"


def test_a_local_run_never_writes_over_someone_elses_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert "holds files meshstack did not write" in refused(
        capsys, "run", "--local", "--stack", "dev", "--workdir", str(tmp_path)
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("")
    assert "is a file, not a folder" in refused(
        capsys, "run", "--local", "--stack", "dev", "--workdir", str(tmp_path / "file" / "work")
    )


def test_manifests_are_not_written_through_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes").write_text("mine")
    err = refused(capsys, "preview", "--stack", "dev", "--manifests", str(tmp_path / "notes" / "out"))
    assert "--manifests" in err and "is a file, not a folder" in err


def test_a_folder_meshstack_made_is_cleared_and_stays_marked(tmp_path: Path) -> None:
    work = clear(tmp_path / "work", "--out")
    (work / "old-run").mkdir()
    (work / "old-run" / "log").write_text("x")
    clear(work, "--out")
    assert [p.name for p in work.iterdir()] == [MARKER]
