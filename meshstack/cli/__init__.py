"""The `meshstack` command. Every failure is one readable line and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from meshstack.cli.arguments import port, positive, stack_name, stack_option
from meshstack.cli.stack_commands import (
    cmd_init,
    cmd_plan,
    cmd_preview,
    cmd_pulumi,
    cmd_schema,
    cmd_stacks,
    cmd_validate,
)
from meshstack.cli.workload_commands import cmd_data_prepare, cmd_demo, cmd_export, cmd_run, cmd_serve
from meshstack.core.catalog import known_clouds
from meshstack.core.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, MeshstackError
from meshstack.planner.request import add_arguments as add_plan_arguments

DEBUG_ENV = "MESHSTACK_DEBUG"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meshstack")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; here 2 means an invalid stack file, so usage exits EX_USAGE."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="meshstack",
        description=__doc__,
        epilog="exit codes: 0 ok, 1 mandatory policy violation, 2 invalid stack file or config, "
        "4 a step could not run, 64 usage error, 70 internal error, 130 interrupted",
    )
    top.add_argument("--version", action="version", version=f"meshstack {_version()}")
    top.add_argument("--project", help="directory holding Pulumi.yaml (default: the working directory, upwards)")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "preview", help="offline plan, cost and policy report: no cloud account, no Pulumi CLI (exit 1: violation)"
    )
    stack_option(p)
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="machine-readable output")
    form.add_argument("--markdown", action="store_true", help="a pull-request comment")
    p.add_argument(
        "--baseline",
        metavar="OTHER",
        help="compare cost with another stack, another copy of this stack's file, or a project directory",
    )
    p.add_argument(
        "--manifests",
        metavar="DIR",
        help="also write every Kubernetes object as YAML, one file per object and a folder per cluster",
    )
    p.add_argument(
        "--tf-plan",
        metavar="FILE",
        help="also write the AWS and Google Cloud resources as Terraform plan JSON (`terraform show -json`), "
        "for checkov, trivy, KICS or conftest; Kubernetes objects are left to --manifests",
    )
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("init", help="start a project: Pulumi.yaml, the program, a stack, a policy config, CI")
    p.add_argument("dir", nargs="?", default=".", help="a new or empty folder (default: the working directory)")
    p.add_argument("--cloud", choices=known_clouds(), default="aws", help="the first stack's cloud (default aws)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("stacks", help="list the project's stacks with the cloud and region each file names")
    p.add_argument("--json", action="store_true", help='one line: [{"stack", "file", "cloud", "region"}]')
    p.set_defaults(func=cmd_stacks)

    p = sub.add_parser("validate", help="check a stack file against the spec (exit 2: invalid)")
    stack_option(p)
    p.add_argument("--json", action="store_true", help="the result, or every problem with its field, as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="from a model and a goal to ranked clusters, with cost, energy and CO2")
    add_plan_arguments(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schema", help="print the JSON Schema of the stack spec")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("run", help="run the stack's workloads: --local trains them here, then serves the model")
    stack_option(p)
    p.add_argument("--local", action="store_true", help="as processes on this machine (the only target here)")
    p.add_argument("--processes", type=positive, default=2, help="cap on JAX processes per training job (default 2)")
    p.add_argument("--steps", type=positive, help="override the training steps")
    p.add_argument("--port", type=port, default=8080, help="local port of the inference server (default 8080)")
    p.add_argument("--workdir", help="where buckets, checkpoints and logs go (default .meshstack/STACK)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="preview, train, serve and report on the dev stack, all on this machine")
    p.add_argument("--out", default="meshstack-demo", help="where the report goes (default ./meshstack-demo)")
    p.add_argument("--stack", type=stack_name, default="dev")
    p.add_argument("--steps", type=positive, help="override the training steps")
    p.add_argument("--processes", type=positive, default=2, help="JAX processes for training (default 2)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "serve",
        help="serve a model folder (Hugging Face's format, or meshstack's checkpoints) with the OpenAI API",
    )
    p.add_argument("path", help="the folder: a local path, file://, s3:// or gs://")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=port, default=8080, help="port (default 8080)")
    p.add_argument("--name", help="the model's name in the API (default: the folder's name)")
    p.add_argument("--quantization", choices=("none", "int8"), help="int8: weight-only, per output channel")
    p.add_argument("--tensor-parallel", type=positive, help="devices to split the weights over (default: all)")
    p.add_argument("--max-seq-len", type=positive, help="context served (default: the model's)")
    p.add_argument("--max-batch-size", type=positive, help="requests decoded together (default 8)")
    p.add_argument("--max-new-tokens", type=positive, help="the largest max_tokens a request may ask (default 64)")
    p.add_argument("--kv-cache-gib", type=float, help="memory for the KV cache (default: max-batch-size rows)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="write a checkpoint out as a Hugging Face model folder (safetensors)")
    p.add_argument("checkpoint", help="meshstack's checkpoints (the folder of the steps) or a model folder")
    p.add_argument("out", help="the folder to write")
    p.add_argument("--max-shard-gib", type=float, default=4.0, help="split the weights past this (default 4)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("data", help="training data")
    data = p.add_subparsers(dest="data_command", required=True)
    p = data.add_parser("prepare", help="tokenize .txt and .jsonl files into the trainer's token shards")
    p.add_argument("inputs", nargs="+", help=".txt files (one document each) or .jsonl files (one a line)")
    p.add_argument("--tokenizer", required=True, help="the model's folder (its tokenizer.json), or 'bytes'")
    p.add_argument("--out", required=True, help="where the shards go: a path, file://, s3:// or gs://")
    p.add_argument("--field", default="text", help="the JSONL field holding the text (default text)")
    p.add_argument("--shard-tokens", type=positive, default=1 << 26, help="tokens per shard at most")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_data_prepare)

    for name, text in (("up", "deploy a stack with the Pulumi CLI"), ("destroy", "tear a stack down")):
        p = sub.add_parser(name, help=text)
        stack_option(p)
        p.add_argument("--yes", action="store_true", help="skip the confirmation prompt")
        p.set_defaults(func=cmd_pulumi)
    return top


# Commands that run for seconds and exit. They import the providers and build the plan: millions of
# allocations and few cycles, so the cyclic collector only costs time (a quarter of a preview) and
# reference counting frees what it can. The long-running commands (run, demo) keep it on.
SHORT_LIVED = ("preview", "validate", "schema", "plan", "stacks", "init")


def _interrupted(*_: object) -> NoReturn:
    """Ctrl-C in a short-lived command: one line and 130, now. Unwinding through the Pulumi SDK's event
    loop instead would print every pending task it destroys (thousands of lines of asyncio noise), and
    nothing such a command leaves half-done needs more than its next run: files are replaced whole."""
    os.write(2, b"meshstack: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


def _refused(exc: MeshstackError) -> int:
    print(f"meshstack: {exc}", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    # gRPC (the Pulumi SDK's, JAX's) logs an INFO line for every process started while its threads run,
    # as the demo and `run` do after a preview: noise between a person and the output they read.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        args = parser().parse_args(argv)
    except MeshstackError as exc:  # a broken cloud plugin, met while `init --cloud`'s choices are built
        return _refused(exc)
    collecting = gc.isenabled()
    if args.command in SHORT_LIVED:
        gc.disable()
        if argv is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupted)
    try:
        return int(args.func(args))
    except MeshstackError as exc:
        return _refused(exc)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("meshstack: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        print(
            f"meshstack: internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        if collecting:
            gc.enable()
