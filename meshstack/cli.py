"""The `meshstack` command. Every failure is one readable line and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from meshstack.core.catalog import known_clouds
from meshstack.core.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VIOLATIONS,
    MeshstackError,
    UsageError,
)
from meshstack.core.extras import require
from meshstack.core.stack_file import Project, find_project
from meshstack.core.vocabulary import STACK_NAME, STACK_NAME_RULE
from meshstack.planner.request import add_arguments as add_plan_arguments

DEBUG_ENV = "MESHSTACK_DEBUG"
# The extras the commands beyond preview and policy need (pyproject.toml's optional-dependencies).
WORKLOADS_EXTRA = "workloads"
DEMO_EXTRA = "demo"
STACK_ENV = "PULUMI_STACK"


def _shown(text: str) -> str:
    """A value as it can be printed on one line, however long or strange."""
    shown = ascii(text)
    return shown if len(shown) <= 60 else shown[:57] + "...'"


def stack_name(text: str) -> str:
    if not re.match(STACK_NAME, text):
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a stack name ({STACK_NAME_RULE})")
    return text


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def port(text: str) -> int:
    value = positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, not {value}")
    return value


def _project(args: argparse.Namespace) -> Project:
    """--project must name a Pulumi project (a folder with Pulumi.yaml, or inside one); without it,
    the working directory's project, else meshstack's own."""
    if not args.project:
        return find_project()
    root = Path(args.project)
    if not root.exists():
        raise UsageError(f"--project {_shown(args.project)}: no such folder")
    if not root.is_dir():
        raise UsageError(f"--project {_shown(args.project)}: is a file, not a project folder")
    if not any((d / "Pulumi.yaml").is_file() for d in (root.resolve(), *root.resolve().parents)):
        raise UsageError(f"--project {_shown(args.project)}: no Pulumi.yaml there or above; it is not a Pulumi project")
    return find_project(root)


def cmd_preview(args: argparse.Namespace) -> int:
    from meshstack.core.workspace import claim, clear
    from meshstack.preview.plan import preview_stack, resolve_baseline, with_baseline
    from meshstack.preview.render import markdown, tree

    project = _project(args)
    # Refused before anything runs: an output folder meshstack does not own, a baseline that is not one.
    manifests = claim(Path(args.manifests), "--manifests") if args.manifests else None
    baseline = resolve_baseline(args.stack, args.baseline, project) if args.baseline else None
    preview = preview_stack(args.stack, project)
    if baseline is not None:
        preview = with_baseline(preview, baseline.run())
    if manifests is not None:
        from meshstack.preview.manifests import write_manifests

        # Replaced whole on each write: no file of a resource the plan no longer has is left for kubectl diff.
        written = write_manifests(preview.resources, clear(manifests, "--manifests"))
        print(f"wrote {len(written)} Kubernetes manifest(s) under {args.manifests}", file=sys.stderr)
    if args.tf_plan:
        from meshstack.core.workspace import writable_folder
        from meshstack.preview.tfplan import write_plan

        target = Path(args.tf_plan)
        if target.is_dir():
            raise UsageError(f"--tf-plan {_shown(args.tf_plan)}: is a folder; name the plan file to write")
        writable_folder(target.parent, "--tf-plan")
        try:
            export = write_plan(preview.resources, target)
        except OSError as exc:
            raise UsageError(f"--tf-plan {_shown(args.tf_plan)}: cannot write there ({exc.strerror})") from None
        note = f"wrote {export.written} resource(s) as a Terraform plan to {args.tf_plan}"
        if export.kubernetes:
            note += f"; {export.kubernetes} Kubernetes object(s) are left to --manifests"
        if export.untyped:
            note += f"; no Terraform type known for {', '.join(export.untyped)}"
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps(preview.to_json(), indent=2, sort_keys=True))
    elif args.markdown:
        print(markdown(preview), end="")
    else:
        print(tree(preview))
    return EXIT_VIOLATIONS if preview.mandatory_violations else EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from meshstack.core.errors import SpecError
    from meshstack.core.stack_file import load_stack

    try:
        spec = load_stack(args.stack, _project(args))
    except SpecError as exc:
        if not args.json:
            raise
        problems = [{"field": path, "message": message} for path, message in exc.problems]
        print(json.dumps({"stack": args.stack, "valid": False, "source": exc.source, "problems": problems}, indent=2))
        return exc.exit_code
    pools = sum(len(c.node_pools) for c in spec.clusters)
    if args.json:
        summary = {"clusters": len(spec.clusters), "node_pools": pools, "workloads": len(spec.workloads)}
        where = {"cloud": spec.cloud, "region": spec.region}
        print(json.dumps({"stack": args.stack, "valid": True, **where, **summary}, indent=2))
        return EXIT_OK
    counts = f"{len(spec.clusters)} cluster(s), {pools} node pool(s), {len(spec.workloads)} workload(s)"
    print(f"{args.stack}: valid ({counts})")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from meshstack.planner.emit import EmitError, access_of, stack_config, write_stack
    from meshstack.planner.report import table, to_json
    from meshstack.planner.request import budget_of, request_of
    from meshstack.planner.search import plan

    request = request_of(args)  # every argument of the search, checked before it runs
    access = None
    if args.emit_stack is not None:
        args.budget_limits = budget_of(args.budget)
        if args.option < 1:
            raise EmitError(f"--option {args.option}: options are numbered from 1")
        access = access_of(args, _project(args), request.clouds, request.region)
    elif any(getattr(args, a) for a in ("zone", "reservation_id", "environment", "image")):
        raise EmitError("--zone, --reservation-id, --environment and --image apply to --emit-stack")
    result = plan(request)
    if args.json:
        print(json.dumps(to_json(result), indent=2))
    else:
        print(table(result, args.top))
    if access is None:
        return EXIT_OK
    if not 1 <= args.option <= len(result.options):
        raise EmitError(f"--option {args.option}: the plan has {len(result.options)} option(s)")
    option = result.options[args.option - 1]
    config, spec = stack_config(args.emit_stack, result.request, option, access)
    nodes = sum(p.max_nodes * p.slices for c in spec.clusters for p in c.node_pools if p.accelerator != "cpu")
    header = (
        f"# Written by `meshstack plan` for option {args.option}: {option.label}.\n"
        f"# meshstack's own workload runs it on {nodes} accelerator node(s).\n"
    )
    path = write_stack(_project(args), args.emit_stack, config, header)
    print(f"wrote {path}: {option.label} as {nodes} accelerator node(s)", file=sys.stderr)
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from meshstack.scaffold import STACK, init_project

    folder = Path(args.dir)
    written = init_project(folder, args.cloud)
    print(f"created a meshstack project on {args.cloud.upper()} in {folder}: {', '.join(map(str, written))}")
    go = "" if folder.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(str(folder))} && "
    print(f"next: {go}meshstack validate -s {STACK} && meshstack preview -s {STACK}")
    return EXIT_OK


def cmd_stacks(args: argparse.Namespace) -> int:
    from meshstack.core.stack_file import stack_entries

    entries = stack_entries(_project(args))
    if args.json:
        # One line, so a workflow step can hand it on as an output (a job matrix's include list).
        print(json.dumps([e.to_json() for e in entries]))
        return EXIT_OK
    for e in entries:
        print(f"{e.stack}\t{e.cloud or '?'}\t{e.region or '?'}\t{e.file}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from meshstack.core.schema import stack_schema

    print(json.dumps(stack_schema(), indent=2))
    return 0


# What a terminal, an IDE's stop button, `timeout`, systemd or a CI runner sends to stop a command.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_on_signals() -> None:
    """Every stop signal ends a long-running command the way Ctrl-C does: KeyboardInterrupt, whose
    `finally` blocks stop the processes it started, then exit 130.

    SIGINT is set here too: Python turns it into KeyboardInterrupt only when it was not ignored at
    start, and a command started in the background by a script (`meshstack run --local &`), as many
    supervisors do, inherits it ignored: a SIGINT to meshstack then did nothing at all. A signal that
    comes while the first one's stop is under way is let go: raising again would cut the stop short
    and leave the children behind (they die with meshstack all the same: workloads/local/processes.py).
    """
    stopping = False

    def interrupt(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    for number in STOP_SIGNALS:
        signal.signal(number, interrupt)


def cmd_run(args: argparse.Namespace) -> int:
    from meshstack.core.stack_file import load_stack
    from meshstack.core.workspace import claim

    if not args.local:
        raise MeshstackError("only --local runs from here; deploy to a cluster with `meshstack up` or `pulumi up`")
    require(WORKLOADS_EXTRA, "run --local")
    from meshstack.workloads.local import run_stack

    spec = load_stack(args.stack, _project(args))
    if not spec.workloads:
        raise MeshstackError(f"stack {args.stack} declares no workloads (meshstack:workloads)")
    _stop_on_signals()
    workdir = claim(Path(args.workdir or Path(".meshstack") / args.stack), "--workdir")
    _, server = run_stack(spec, workdir, args.processes, args.steps, args.port)
    if server is None:
        return 0
    try:
        print("Ctrl-C stops the server", flush=True)
        while True:
            time.sleep(3600)
    finally:
        server.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    require(DEMO_EXTRA, "demo")
    from meshstack.demo import run_demo

    _stop_on_signals()
    run_demo(Path(args.out), args.stack, args.steps, args.processes, project=_project(args))
    return 0


def _model_command(command: str, action: Callable[[], int]) -> int:
    """Run a model command; any refusal of its input (a file, tensor, key or line named) is one line, exit 2."""
    from meshstack.core.errors import ModelInputError

    require(WORKLOADS_EXTRA, command)
    from meshstack.workloads.jax.commands import BAD_INPUT

    try:
        return action()
    except BAD_INPUT as exc:
        raise ModelInputError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from meshstack.core.contract import ServeConfig

    _stop_on_signals()
    settings = {
        "port": args.port,
        "bind": args.host,
        "quantization": args.quantization,
        "tensor_parallel": args.tensor_parallel,
        "max_seq_len": args.max_seq_len,
        "max_batch_size": args.max_batch_size,
        "max_new_tokens": args.max_new_tokens,
        "kv_cache_gib": args.kv_cache_gib,
    }
    serve_config = ServeConfig(**{k: v for k, v in settings.items() if v is not None})

    def action() -> int:
        from meshstack.workloads.jax.commands import serve

        return serve(args.path, serve_config, args.name)

    return _model_command("serve", action)


def cmd_export(args: argparse.Namespace) -> int:
    def action() -> int:
        from meshstack.workloads.jax.commands import export

        written = export(args.checkpoint, Path(args.out), int(args.max_shard_gib * 2**30))
        print(f"wrote {len(written)} file(s) under {args.out}: a Hugging Face model folder", file=sys.stderr)
        return EXIT_OK

    return _model_command("export", action)


def cmd_data_prepare(args: argparse.Namespace) -> int:
    def action() -> int:
        from meshstack.workloads.jax.commands import data_prepare

        index = data_prepare(
            [Path(p) for p in args.inputs], args.out, args.tokenizer, args.field, args.shard_tokens, args.quiet
        )
        print(
            f"wrote {index['tokens']:,} tokens of {index['documents']:,} document(s) in {len(index['shards'])} "
            f"{index['dtype']} shard(s) under {args.out}",
            file=sys.stderr,
        )
        return EXIT_OK

    return _model_command("data prepare", action)


def cmd_pulumi(args: argparse.Namespace) -> int:
    from meshstack.deploy import run_pulumi

    return run_pulumi(args.command, args.stack, _project(args), yes=args.yes)


def _stack_option(p: argparse.ArgumentParser) -> None:
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
    _stack_option(p)
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
    _stack_option(p)
    p.add_argument("--json", action="store_true", help="the result, or every problem with its field, as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="from a model and a goal to ranked clusters, with cost, energy and CO2")
    add_plan_arguments(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schema", help="print the JSON Schema of the stack spec")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("run", help="run the stack's workloads: --local trains them here, then serves the model")
    _stack_option(p)
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
        _stack_option(p)
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


def main(argv: Sequence[str] | None = None) -> int:
    # gRPC (the Pulumi SDK's, JAX's) logs an INFO line for every process started while its threads run,
    # as the demo and `run` do after a preview: noise between a person and the output they read.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    args = parser().parse_args(argv)
    collecting = gc.isenabled()
    if args.command in SHORT_LIVED:
        gc.disable()
        if argv is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupted)
    try:
        return int(args.func(args))
    except MeshstackError as exc:
        print(f"meshstack: {exc}", file=sys.stderr)
        return exc.exit_code
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


if __name__ == "__main__":
    sys.exit(main())
