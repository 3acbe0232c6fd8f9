"""meshstack: accelerator clusters and the JAX workloads on them, from one typed spec per stack."""

from meshstack.build import BuiltStack, build
from meshstack.spec import StackSpec

__all__ = ["BuiltStack", "StackSpec", "build"]
