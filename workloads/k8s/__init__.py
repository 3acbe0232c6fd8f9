"""Kubernetes components that deploy the JAX programs: TrainingJob and InferenceService."""
