"""The Pulumi program: the stack's typed config in, its infrastructure out."""

import pulumi

from meshstack.build import build
from meshstack.config import spec_from_runtime
from meshstack.errors import MeshstackError

try:
    spec = spec_from_runtime()
except MeshstackError as exc:
    raise pulumi.RunError(str(exc)) from None
build(spec)
