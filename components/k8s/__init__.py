"""Cluster add-ons: device plugins, JobSet and Kueue, CSI drivers, and the workload namespaces."""
