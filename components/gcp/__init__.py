"""Google Cloud building blocks: the VPC, GKE with GPU pools and TPU slices, GCS and Filestore, workload IAM."""
