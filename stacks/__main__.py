"""The Pulumi program: the stack's typed config in, its infrastructure out."""

import pulumi

from meshstack.core.errors import MeshstackError
from meshstack.core.stack_file import spec_from_runtime
from meshstack.program.build import build

try:
    spec = spec_from_runtime()
except MeshstackError as exc:
    raise pulumi.RunError(str(exc)) from None
build(spec)
