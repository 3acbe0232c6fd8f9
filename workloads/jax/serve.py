"""`python -m meshstack.workloads.jax.serve`: the inference server's process (the command the
InferenceService's pods run, meshstack.core.contract.SERVER_COMMAND), configured by
MESHSTACK_JOB_CONFIG. The server itself is workloads/jax/serving/."""

from __future__ import annotations

import sys

from meshstack.workloads.jax.serving.launcher import main

if __name__ == "__main__":
    sys.exit(main())
