"""The plan command's arguments turned into a request, with every bad value named."""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass

from meshstack.core.catalog import known_clouds, load_catalog
from meshstack.core.errors import UsageError
from meshstack.core.sizing import PLANNING_MFU, PRECISION_BYTES, PRESETS, Transformer
from meshstack.core.vocabulary import MARKETS
from meshstack.planner.options import PlanRequest

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|[smhd])$")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class PlanArgumentError(UsageError):
    """A plan request that does not make sense."""


def duration(text: str, option: str) -> float:
    """'14d', '36h', '90m', '600s', '50ms' (or plain seconds)."""
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


def default_shape(params: float) -> tuple[str, Transformer]:
    """The published shape nearest a parameter count (on a log scale): what `--model-params` alone plans."""
    name = min(PRESETS, key=lambda n: abs(math.log(PRESETS[n].params / params)))
    return name, PRESETS[name]


def shape_note(params: float) -> str:
    name, shape = default_shape(params)
    return (
        f"shape: {name}'s ({shape.layers} layers, d_model {shape.d_model}, {shape.heads} heads, {shape.kv_heads} KV "
        f"heads, vocab {shape.vocab}), the nearest published one to {params:.3g} parameters; give --preset or "
        "--layers, --d-model and --heads for another"
    )


def model_of(args: argparse.Namespace) -> Transformer:
    """A preset, or the dimensions given, or for a bare --model-params the nearest preset's shape (a stated
    default); --model-params overrides the count either way."""
    dims_given = any(getattr(args, n) is not None for n in ("layers", "d_model", "heads"))
    if args.preset is not None:
        model = PRESETS[args.preset]
    elif args.model_params is not None and not dims_given:
        _positive(args.model_params, "--model-params")
        model = default_shape(args.model_params)[1]
    else:
        missing = [f"--{n.replace('_', '-')}" for n in ("layers", "d_model", "heads") if getattr(args, n) is None]
        if missing:
            raise PlanArgumentError(
                f"give --preset ({', '.join(PRESETS)}), --model-params alone, or the model's {', '.join(missing)}"
            )
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


BUDGET_KEYS = ("max_hourly_usd", "max_monthly_usd", "max_run_usd", "max_monthly_kwh")


def budget_of(items: list[str]) -> dict[str, float]:
    budget: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in BUDGET_KEYS:
            raise PlanArgumentError(f"--budget {item}: give KEY=VALUE with KEY one of {', '.join(BUDGET_KEYS)}")
        try:
            number = float(value)
        except ValueError:
            raise PlanArgumentError(f"--budget {item}: '{value}' is not a number") from None
        if not number > 0 or math.isinf(number):
            raise PlanArgumentError(f"--budget {item}: must be a positive number")
        budget[key] = number
    return budget


def clouds_and_region(args: argparse.Namespace) -> tuple[tuple[str, ...], str | None]:
    """--cloud and --region together: a region belongs to one cloud's catalog, which it then plans on."""
    clouds = tuple(args.cloud) if args.cloud else known_clouds()
    if args.region is None:
        return clouds, None
    owners = [c for c in known_clouds() if args.region in load_catalog(cloud=c).facts.regions]
    if not owners:
        every = "; ".join(f"{c}: {', '.join(load_catalog(cloud=c).facts.regions)}" for c in known_clouds())
        raise PlanArgumentError(f"--region {args.region}: not a region of any cloud's catalog ({every})")
    if args.cloud and owners[0] not in args.cloud:
        raise PlanArgumentError(f"--region {args.region} is a {owners[0].upper()} region, not one of --cloud's")
    return (owners[0],), args.region


@dataclass(frozen=True)
class Where:
    clouds: tuple[str, ...]
    region: str | None
    market: str
    budget: dict[str, float]


def _bare_size(args: argparse.Namespace) -> bool:
    dims = any(getattr(args, n) is not None for n in ("layers", "d_model", "heads"))
    return args.preset is None and not dims and args.model_params is not None


def request_of(args: argparse.Namespace) -> PlanRequest:
    model = model_of(args)
    _positive(args.mfu, "--mfu")
    if args.mfu > 1:
        raise PlanArgumentError(f"--mfu: a utilisation is at most 1, not {args.mfu:g}")
    clouds, region = clouds_and_region(args)
    where = Where(clouds, region, args.market or "on-demand", budget_of(args.budget))
    note = shape_note(args.model_params) if _bare_size(args) else None
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
        if args.ttft or args.tpot:
            raise PlanArgumentError("--ttft and --tpot are serving targets; train with --deadline or --nodes")
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
            clouds=where.clouds,
            region=where.region,
            market=where.market,
            budget=where.budget,
            shape_note=note,
        )
    if args.requests_per_s is None:
        raise PlanArgumentError("--mode serve needs --requests-per-s")
    if args.market == "capacity-block":
        raise PlanArgumentError("--market capacity-block is for training: serving runs all month")
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
        ttft_s=duration(args.ttft, "--ttft") if args.ttft else None,
        tpot_s=duration(args.tpot, "--tpot") if args.tpot else None,
        clouds=where.clouds,
        region=where.region,
        market=where.market,
        budget=where.budget,
        shape_note=note,
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
    serve.add_argument("--ttft", metavar="DURATION", help="time-to-first-token target, e.g. 2s or 500ms")
    serve.add_argument("--tpot", metavar="DURATION", help="time-per-output-token target, e.g. 50ms")
    where = p.add_argument_group("where and how (the search, and the stack --emit-stack writes)")
    where.add_argument("--region", help="plan in this region (its cloud's), at its prices; default each cloud's base")
    where.add_argument("--zone", help="the zone the accelerator pool runs in (AWS: a zone id such as use1-az4)")
    where.add_argument("--market", choices=MARKETS, help="rank by and emit this market (default on-demand)")
    where.add_argument("--reservation-id", help="the capacity block or reservation an emitted pool launches into")
    where.add_argument("--environment", choices=("dev", "staging", "prod"), help="the emitted stack's (default prod)")
    where.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a budget limit the options must meet and the emitted stack carries ({', '.join(BUDGET_KEYS)})",
    )
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
