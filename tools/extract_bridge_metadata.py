"""Extract the Pulumi token -> Terraform resource type table, with each field's MaxItems=1 flag, from a bridged
provider's own bridge metadata (provider/cmd/pulumi-resource-<name>/bridge-metadata.json), into the compact
table `meshstack preview --tf-plan` ships (components/<cloud>/terraform.json).

    python tools/extract_bridge_metadata.py bridge-metadata.json --provider gcp --version 9.23.0 \\
        --source "github.com/pulumi/pulumi-gcp@v9.23.0" > components/gcp/terraform.json

The metadata's `auto-aliasing.resources` maps each Terraform type to its current Pulumi token and lists the
fields that are blocks or lists, each with `maxItemsOne` (the bridge flattens such a block into one object).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any


def compact(fields: dict[str, Any]) -> dict[str, Any]:
    """{tf field: [1 if MaxItems=1 else 0, {nested fields}?]}"""
    out: dict[str, Any] = {}
    for name, field in sorted(fields.items()):
        nested = (field.get("elem") or {}).get("fields")
        out[name] = [1 if field.get("maxItemsOne") else 0, *([compact(nested)] if nested else [])]
    return out


def table(metadata: dict[str, Any]) -> dict[str, Any]:
    resources = metadata["auto-aliasing"]["resources"]
    return {
        info["current"]: {"type": tf_type, "fields": compact(info.get("fields") or {})}
        for tf_type, info in sorted(resources.items())
        if "current" in info
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metadata")
    parser.add_argument("--provider", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--source", required=True)
    args = parser.parse_args()
    with open(args.metadata) as f:
        resources = table(json.load(f))
    header = {
        "provider": args.provider,
        "sdk_version": args.version,
        "source": args.source,
        "extracted": datetime.date.today().isoformat(),
    }
    # One resource a line: the file diffs resource by resource when the provider is bumped.
    sys.stdout.write("{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in header.items()))
    sys.stdout.write('  "resources": {\n')
    rows = [f"    {json.dumps(token)}: {json.dumps(info, separators=(',', ':'))}" for token, info in resources.items()]
    sys.stdout.write(",\n".join(rows) + "\n  }\n}\n")


if __name__ == "__main__":
    main()
