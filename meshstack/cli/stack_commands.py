"""The commands on a project's stacks that the slim install runs: preview, validate, plan, init, stacks,
schema, and up/destroy through the Pulumi CLI."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from meshstack.cli.arguments import project_of, shown
from meshstack.core.errors import EXIT_OK, EXIT_VIOLATIONS, UsageError


def cmd_preview(args: argparse.Namespace) -> int:
    from meshstack.core.workspace import claim, clear
    from meshstack.preview.plan import preview_stack, resolve_baseline, with_baseline
    from meshstack.preview.render import markdown, tree

    project = project_of(args)
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
            raise UsageError(f"--tf-plan {shown(args.tf_plan)}: is a folder; name the plan file to write")
        writable_folder(target.parent, "--tf-plan")
        try:
            export = write_plan(preview.resources, target)
        except OSError as exc:
            raise UsageError(f"--tf-plan {shown(args.tf_plan)}: cannot write there ({exc.strerror})") from None
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
        spec = load_stack(args.stack, project_of(args))
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
    from meshstack.planner.access import EmitError, access_of
    from meshstack.planner.emit import stack_config, write_stack
    from meshstack.planner.report import table, to_json
    from meshstack.planner.request import budget_of, request_of
    from meshstack.planner.search import plan

    request = request_of(args)  # every argument of the search, checked before it runs
    access = None
    if args.emit_stack is not None:
        args.budget_limits = budget_of(args.budget)
        if args.option < 1:
            raise EmitError(f"--option {args.option}: options are numbered from 1")
        access = access_of(args, project_of(args), request.clouds, request.region)
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
    path = write_stack(project_of(args), args.emit_stack, config, header)
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

    entries = stack_entries(project_of(args))
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


def cmd_pulumi(args: argparse.Namespace) -> int:
    from meshstack.deploy import run_pulumi

    return run_pulumi(args.command, args.stack, project_of(args), yes=args.yes)
