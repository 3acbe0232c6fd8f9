"""How long `meshstack plan` takes to answer the README's question, end to end as a process.

Target (issue: `meshstack plan`): under 2 s on the 2-core development machine, for the training
question and the serving question each. Every figure is a median of --repeat runs made in this run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

QUESTIONS = {
    "train 70B on 2T tokens within 14 days": [
        "--preset", "llama-2-70b", "--mode", "train", "--tokens", "2e12", "--deadline", "14d",
    ],
    "serve 70B at 50 requests/s in int8": [
        "--preset", "llama-2-70b", "--mode", "serve", "--requests-per-s", "50", "--quantization", "int8",
    ],
}  # fmt: skip


def seconds(args: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "meshstack.cli", "plan", *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    for question, args in QUESTIONS.items():
        took = seconds(args, repeat)
        print(f"[plan] {question}: {took:.2f} s, {took / 2.0:.2f} of the 2 s target")


if __name__ == "__main__":
    main()
