"""The arguments every `meshstack` command shares: their types (each refusal one line naming the value)
and the project and stack they name."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from meshstack.core.errors import UsageError
from meshstack.core.stack_file import Project, find_project
from meshstack.core.vocabulary import STACK_NAME, STACK_NAME_RULE

STACK_ENV = "PULUMI_STACK"


def shown(text: str) -> str:
    """A value as it can be printed on one line, however long or strange."""
    quoted = ascii(text)
    return quoted if len(quoted) <= 60 else quoted[:57] + "...'"


def stack_name(text: str) -> str:
    if not re.match(STACK_NAME, text):
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a stack name ({STACK_NAME_RULE})")
    return text


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def port(text: str) -> int:
    value = positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, not {value}")
    return value


def project_of(args: argparse.Namespace) -> Project:
    """--project must name a Pulumi project (a folder with Pulumi.yaml, or inside one); without it,
    the working directory's project, else meshstack's own."""
    if not args.project:
        return find_project()
    root = Path(args.project)
    if not root.exists():
        raise UsageError(f"--project {shown(args.project)}: no such folder")
    if not root.is_dir():
        raise UsageError(f"--project {shown(args.project)}: is a file, not a project folder")
    if not any((d / "Pulumi.yaml").is_file() for d in (root.resolve(), *root.resolve().parents)):
        raise UsageError(f"--project {shown(args.project)}: no Pulumi.yaml there or above; it is not a Pulumi project")
    return find_project(root)


def stack_option(p: argparse.ArgumentParser) -> None:
    """Like the Pulumi CLI: --stack/-s, else the PULUMI_STACK environment variable."""
    default = os.environ.get(STACK_ENV) or None
    p.add_argument(
        "-s",
        "--stack",
        type=stack_name,
        default=default,
        required=default is None,
        help=f"the stack (default: ${STACK_ENV}{f', now {default}' if default else ''})",
    )
