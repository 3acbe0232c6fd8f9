"""The one input boundary (meshstack/core/input_files.py) fuzzed through the CLI: whatever bytes a stack
file holds, `meshstack validate` exits 0 (a valid stack) or 2 with one line naming the file (and the
line of the text at fault, where one is), never 70 (an internal error).

Most examples go through `meshstack.cli.main`, the function `python -m meshstack.cli` runs, in this
process (an interpreter for each example would cost a second or more each); the cases the fuzzing found, and the
issue's U+FFFE, also run as the real command.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from meshstack.cli import main
from meshstack.core.stack_file import PROJECT_ROOT
from tests.conftest import stack_config

STACK = "fuzz"
DEV = yaml.safe_dump({"config": stack_config("dev")}, sort_keys=False)
# Pieces of YAML, so that random sequences of them reach the parser's and constructors' corners
# (tags, anchors, flow and block collections, dates, huge numbers) more often than random text does.
TOKENS = [
    "config:",
    "\n",
    "  ",
    "- ",
    ": ",
    "? ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "&a ",
    "*a",
    "<<: ",
    "!!set ",
    "!!omap ",
    "!!binary ",
    "!!timestamp ",
    "!!float ",
    "!!int ",
    "!!str ",
    "!!python/object:os.system ",
    "!x ",
    "|\n",
    ">-\n",
    '"',
    "'",
    "\\",
    "#",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "2024-13-45",
    "2024-02-30 25:61:61",
    "1" * 5000,
    "0x" + "f" * 5000,
    "1e999",
    ".nan",
    "-.inf",
    "0o8",
    "null",
    "~",
    "true",
    "aws:region",
    "meshstack:clusters",
    "meshstack:workloads",
    "meshstack:tags",
    "1:",
    "null:",
    "\ufffe",
    "\uffff",
    "\ufdd0",
    "\U0010fffe",
    "\x85",
    "\x9f",
    "\x00",
    "\x7f",
    "\ufeff",
    "\u2028",
    "\ud7ff",
    "\ue000",
    "é",
]
PROBLEM_WITH_A_PLACE = re.compile(r"not UTF-8|character|noncharacter|not valid YAML: (?!nests|expands)")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "project"
    (root / "stacks").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copy(PROJECT_ROOT / "stacks" / "__main__.py", root / "stacks" / "__main__.py")
    return root


def validate(root: Path, data: bytes) -> tuple[int, str]:
    (root / "stacks" / f"Pulumi.{STACK}.yaml").write_bytes(data)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--project", str(root), "validate", "--stack", STACK])
    return code, err.getvalue()


def assert_refused_cleanly(code: int, err: str) -> None:
    assert code in (0, 2), f"exit {code}: {err}"
    if code == 0:
        return
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("meshstack: ") and f"Pulumi.{STACK}.yaml: " in lines[0], err
    if PROBLEM_WITH_A_PLACE.search(lines[0]):
        assert re.search(r"\.yaml: line \d+: ", lines[0]), f"the line at fault is named: {err}"


FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(data=st.binary(max_size=4096))
@example(data=b"config:\n  aws:region: \xef\xbf\xbe\n")  # U+FFFE: valid UTF-8, a noncharacter
@example(data=b"\xff\xfe c\x00o\x00n\x00")  # UTF-16 with its byte-order mark
def test_any_bytes(root: Path, data: bytes) -> None:
    assert_refused_cleanly(*validate(root, data))


@FUZZ
@given(text=st.text(max_size=2000))
@example(text="config:\n  aws:region: us-east-1\x85\n")
@example(text="config: {1: 2, null: 3}\n")
def test_any_unicode(root: Path, text: str) -> None:
    assert_refused_cleanly(*validate(root, text.encode("utf-8", "surrogatepass")))


@FUZZ
@given(at=st.integers(0, len(DEV)), insert=st.text(max_size=40))
@example(at=DEV.index("dev"), insert="\ufffe")
def test_a_valid_stack_with_anything_inserted(root: Path, at: int, insert: str) -> None:
    assert_refused_cleanly(*validate(root, (DEV[:at] + insert + DEV[at:]).encode("utf-8", "surrogatepass")))


@FUZZ
@given(pieces=st.lists(st.sampled_from(TOKENS), max_size=60))
@example(pieces=["config:", "\n", "  ", "x: ", "2024-13-45"])
@example(pieces=["x: ", "1" * 5000])
@example(pieces=["? ", "!!set ", "{", "a", "}", "\n", ": 1"])
@example(pieces=["config:", "!!set ", "[", "a", "]"])  # a set's constructor runs after construct_object
def test_yaml_made_of_its_own_pieces(root: Path, pieces: list[str]) -> None:
    assert_refused_cleanly(*validate(root, "".join(pieces).encode("utf-8", "surrogatepass")))


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, len(DEV) - 1), st.integers(1, 255)), min_size=1, max_size=8))
def test_a_valid_stack_with_bytes_flipped(root: Path, flips: list[tuple[int, int]]) -> None:
    data = bytearray(DEV.encode())
    for at, mask in flips:
        data[at] ^= mask
    assert_refused_cleanly(*validate(root, bytes(data)))


FOUND = {
    "U+FFFE": ("config:\n  aws:region: us-east-1\ufffe\n", "line 2: holds the noncharacter U+FFFE"),
    "U+10FFFF": ("config:\n  meshstack:environment: \U0010ffff\n", "line 2: holds the noncharacter U+10FFFF"),
    "a C1 control": ("config:\n  aws:region: \x9b\n", "line 2: holds the control character U+009B"),
    "no such date": (
        "config:\n  x: 2024-13-45\n",
        "line 2: not valid YAML: '2024-13-45' is not a valid timestamp (month must be",
    ),
    "a 5,000-digit integer": (
        "config:\n  x: " + "1" * 5000 + "\n",
        "is not a valid int (Exceeds the limit (4300 digits)",
    ),
    "a tag on what it cannot hold": ("config:\n  x: !!timestamp soon\n", "line 2: not valid YAML: 'soon' is not"),
    "a set as a key": ("? !!set {a}\n: 1\n", "line 1: not valid YAML: a mapping key must be a plain value"),
    "a number as a config key": ("config:\n  1: x\n", "config: the key 1 is not a name such as aws:region"),
}


@pytest.mark.parametrize("case", FOUND)
def test_what_the_fuzzing_found_is_one_line_and_exit_2_from_the_real_command(root: Path, case: str) -> None:
    text, message = FOUND[case]
    path = root / "stacks" / f"Pulumi.{re.sub(r'[^A-Za-z0-9]+', '-', case)}.yaml"
    path.write_bytes(text.encode())
    done = subprocess.run(
        [sys.executable, "-m", "meshstack.cli", "--project", str(root), "validate", "--stack", path.stem[7:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("meshstack: ") and path.name in line and message in line, line
