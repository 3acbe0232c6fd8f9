"""What runs on the clusters: the JAX programs, their Kubernetes deployment, and the local target."""
