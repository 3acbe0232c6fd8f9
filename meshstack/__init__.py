"""meshstack: accelerator clusters and the JAX workloads on them, from one typed spec per stack.

The package root imports nothing: the JAX programs import the spec's config
models from here and must not pull in the Pulumi providers with them. The
Pulumi program uses meshstack.program.build.build.
"""
