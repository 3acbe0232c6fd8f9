"""How long the policy pack takes on a big stack, as a ratio to the preview that recorded it.

Uses the 8 x 8 generated stack of preview_scale.py; both are measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import time

from preview_scale import generated_config, meshstack_program

from meshstack.cost import estimate
from meshstack.preview.policy_runner import evaluate
from meshstack.preview.recorder import run_program


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = generated_config()
    preview_times, policy_times, cost_times = [], [], []
    resources = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        resources = run_program(meshstack_program, "meshstack", "bench", config, "us-east-1")
        preview_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        violations = evaluate(resources)
        policy_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        estimate(r.view() for r in resources)
        cost_times.append(time.perf_counter() - start)
    t_preview, t_policy, t_cost = (statistics.median(t) for t in (preview_times, policy_times, cost_times))
    print(f"resources: {len(resources)}, violations: {len(violations)}")
    print(f"preview: {t_preview:.2f} s")
    print(f"policy pack (analyzer protocol: Analyze per resource a rule names, AnalyzeStack): {t_policy:.2f} s")
    print(f"cost estimate: {t_cost:.3f} s")
    print(f"ratio policy/preview: {t_policy / t_preview:.2f}")


if __name__ == "__main__":
    main()
