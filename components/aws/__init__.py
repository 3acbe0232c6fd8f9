"""AWS building blocks: the network, IAM, the EKS cluster and its node groups, and storage."""
