"""The commands that train, serve and convert models on this machine: they need the workloads (or demo)
extra, and the long-running ones stop on every stop signal as on Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from meshstack.cli.arguments import project_of
from meshstack.core.errors import EXIT_OK, MeshstackError
from meshstack.core.extras import require

# The extras the commands beyond preview and policy need (pyproject.toml's optional-dependencies).
WORKLOADS_EXTRA = "workloads"
DEMO_EXTRA = "demo"
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

    spec = load_stack(args.stack, project_of(args))
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
    run_demo(Path(args.out), args.stack, args.steps, args.processes, project=project_of(args))
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
