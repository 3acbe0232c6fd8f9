"""The JAX programs: a decoder-only language model, its training loop and its server.

They run anywhere the environment contract holds: Kubernetes pods, TPU slices,
or local processes (workloads/local.py).
"""
