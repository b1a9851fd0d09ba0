#!/usr/bin/env python3
"""How fast the cost Monte Carlo is: seconds for N samples of a whole estimate, on this machine.

    taskset -c 0 python scripts/bench_montecarlo.py [--samples 1000000] [--repeats 5] [--from-run RUN.json]

Times ``load_and_estimate_train`` of the ``deepseek-v3`` scenario (the figure docs/cost.md quotes), and,
with ``--from-run``, the same estimate and the ``deepseek-v3-day6`` serving estimate drawing their
measured inputs from the run's case timing. Pin it to one core (``taskset -c 0``) for the
one-core figure; each line is the median of the repeats after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def timed(label: str, fn: Callable[[], object], samples: int, repeats: int) -> None:
    fn()  # warm-up: imports, configs, caches
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    print(
        f"{label}: {median:.3f} s for {samples:,} samples ({samples / median / 1e6:.2f}M samples/s; "
        f"min {min(seconds):.3f}, max {max(seconds):.3f})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--from-run", metavar="RUN.json")
    args = p.parse_args()

    from meter.config.scenarios import load_scenario
    from meter.cost.configs import load_and_estimate_serve, load_and_estimate_train

    train = load_scenario("deepseek-v3")
    n = args.samples
    timed("cost train --scenario deepseek-v3", lambda: load_and_estimate_train(train, samples=n), n, args.repeats)
    if args.from_run:
        from meter.cost.measured.run import load_measured

        run = load_measured(args.from_run)
        serve = load_scenario("deepseek-v3-day6")
        timed(
            "  ... --from-run (measured efficiency)",
            lambda: load_and_estimate_train(train, run=run, samples=n),
            n,
            args.repeats,
        )
        timed(
            "cost serve --scenario deepseek-v3-day6 --from-run",
            lambda: load_and_estimate_serve(serve, run=run, samples=n),
            n,
            args.repeats,
        )


if __name__ == "__main__":
    main()
