"""The plan command's arguments turned into a request, with every bad value named."""

from __future__ import annotations

import argparse
import re

from meshstack.core.catalog import known_clouds
from meshstack.core.errors import UsageError
from meshstack.core.sizing import PLANNING_MFU, PRECISION_BYTES, PRESETS, Transformer
from meshstack.planner.search import PlanRequest

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class PlanArgumentError(UsageError):
    """A plan request that does not make sense."""


def duration(text: str, option: str) -> float:
    """'14d', '36h', '90m', '600s' (or plain seconds)."""
    match = DURATION.match(text.strip())
    if match is None:
        try:
            value = float(text)
        except ValueError:
            raise PlanArgumentError(f"{option}: '{text}' is not a duration such as 14d, 36h or 90m") from None
        seconds = value
    else:
        seconds = float(match.group(1)) * SECONDS[match.group(2)]
    if not seconds > 0:
        raise PlanArgumentError(f"{option}: must be positive, not '{text}'")
    return seconds


def _positive(value: float | None, option: str) -> None:
    if value is not None and not value > 0:
        raise PlanArgumentError(f"{option}: must be positive, not {value:g}")


def model_of(args: argparse.Namespace) -> Transformer:
    """A preset, or the dimensions given; --model-params overrides the count either way."""
    if args.preset is not None:
        model = PRESETS[args.preset]
    else:
        missing = [f"--{n.replace('_', '-')}" for n in ("layers", "d_model", "heads") if getattr(args, n) is None]
        if missing:
            raise PlanArgumentError(f"give --preset ({', '.join(PRESETS)}) or the model's {', '.join(missing)}")
        for option in ("layers", "d_model", "heads", "kv_heads", "vocab", "d_ff"):
            _positive(getattr(args, option), f"--{option.replace('_', '-')}")
        if args.d_model % args.heads:
            raise PlanArgumentError(f"--d-model {args.d_model} is not divisible by --heads {args.heads}")
        d_ff = args.d_ff or 4 * args.d_model
        params = args.layers * (4 * args.d_model**2 + 3 * args.d_model * d_ff) + args.vocab * args.d_model
        model = Transformer(
            float(params), args.layers, args.d_model, args.heads, args.kv_heads or args.heads, args.vocab, d_ff
        )
    if args.model_params is not None:
        _positive(args.model_params, "--model-params")
        model = Transformer(
            args.model_params, model.layers, model.d_model, model.heads, model.kv_heads, model.vocab, model.d_ff
        )
    return model


def request_of(args: argparse.Namespace) -> PlanRequest:
    model = model_of(args)
    _positive(args.mfu, "--mfu")
    if args.mfu > 1:
        raise PlanArgumentError(f"--mfu: a utilisation is at most 1, not {args.mfu:g}")
    clouds = tuple(args.cloud) if args.cloud else known_clouds()
    if args.mode == "train":
        if args.tokens is None:
            raise PlanArgumentError("--mode train needs --tokens (for example 2e12)")
        _positive(args.tokens, "--tokens")
        if (args.deadline is None) == (args.nodes is None):
            raise PlanArgumentError("--mode train needs one of --deadline (for example 14d) or --nodes")
        if args.nodes is not None and args.nodes < 1:
            raise PlanArgumentError(f"--nodes: must be at least 1, not {args.nodes}")
        if args.quantization:
            raise PlanArgumentError("--quantization applies to --mode serve")
        if args.precision == "int8":
            raise PlanArgumentError("--precision int8 is for serving; train in bf16, fp8 or fp32")
        for option in ("seq_len", "global_batch"):
            _positive(getattr(args, option), f"--{option.replace('_', '-')}")
        return PlanRequest(
            model,
            "train",
            args.precision,
            args.mfu,
            tokens=args.tokens,
            deadline_s=duration(args.deadline, "--deadline") if args.deadline else None,
            nodes=args.nodes,
            seq_len=args.seq_len,
            global_batch=args.global_batch,
            clouds=clouds,
        )
    if args.requests_per_s is None:
        raise PlanArgumentError("--mode serve needs --requests-per-s")
    for option in ("requests_per_s", "prompt_tokens", "output_tokens"):
        _positive(getattr(args, option), f"--{option.replace('_', '-')}")
    return PlanRequest(
        model,
        "serve",
        args.precision,
        args.mfu,
        requests_per_s=args.requests_per_s,
        prompt_tokens=args.prompt_tokens,
        output_tokens=args.output_tokens,
        p99_s=duration(args.p99, "--p99"),
        quantization=args.quantization,
        clouds=clouds,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    model = p.add_argument_group("the model")
    model.add_argument("--preset", choices=sorted(PRESETS), help="a published model's shape")
    model.add_argument("--model-params", type=float, help="parameter count (overrides the preset's)")
    model.add_argument("--layers", type=int)
    model.add_argument("--d-model", type=int)
    model.add_argument("--heads", type=int)
    model.add_argument("--kv-heads", type=int, help="grouped-query attention's KV heads (default: --heads)")
    model.add_argument("--vocab", type=int, default=32000)
    model.add_argument("--d-ff", type=int, help="feed-forward width (default 4 x d-model)")
    p.add_argument("--precision", choices=sorted(PRECISION_BYTES), default="bf16")
    p.add_argument("--mode", choices=("train", "serve"), required=True)
    p.add_argument(
        "--mfu",
        type=float,
        default=PLANNING_MFU,
        help=f"model FLOPs utilisation assumed (default {PLANNING_MFU})",
    )
    p.add_argument("--cloud", action="append", choices=known_clouds(), help="only this cloud (repeatable)")
    train = p.add_argument_group("training")
    train.add_argument("--tokens", type=float, help="tokens to train on, e.g. 2e12")
    train.add_argument("--deadline", help="wall time allowed, e.g. 14d or 36h")
    train.add_argument("--nodes", type=int, help="a fixed node count instead of a deadline")
    train.add_argument("--seq-len", type=int, default=4096)
    train.add_argument("--global-batch", type=int, default=1024, help="sequences per step (default 1024)")
    serve = p.add_argument_group("serving")
    serve.add_argument("--requests-per-s", type=float)
    serve.add_argument("--prompt-tokens", type=int, default=512)
    serve.add_argument("--output-tokens", type=int, default=256)
    serve.add_argument("--p99", default="10s", help="p99 latency target per request (default 10s)")
    serve.add_argument("--quantization", choices=("int8",), help="weight-only quantization")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true")
    out.add_argument("--top", type=int, default=10, help="options to list (default 10)")
    out.add_argument("--emit-stack", metavar="NAME", help="write stacks/Pulumi.NAME.yaml for an option")
    out.add_argument("--option", type=int, default=1, help="which ranked option --emit-stack writes (default 1)")
    out.add_argument("--image", help="the workload's container image (required with --emit-stack)")
    out.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="cost tags (team, cost-center)")
    out.add_argument("--gcp-project", help="the project, when the option runs on Google Cloud")
    out.add_argument(
        "--deployer-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="a private network `pulumi up` runs from, which reaches the cluster's private endpoint (repeatable)",
    )
    out.add_argument(
        "--public-access-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="a network the cluster's endpoint is opened to instead (repeatable)",
    )
