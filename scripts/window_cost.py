#!/usr/bin/env python3
"""What one empty window costs: ``meter.Meter`` and Zeus's ``ZeusMonitor`` side by side on the fake driver.

    pip install zeus            # Zeus 0.16 (optional: without it only meter is timed)
    python scripts/window_cost.py [--gpus 1 8] [--pairs 500] [--rounds 15] [--json]

Builds the test suite's fake ``libnvidia-ml.so.1`` (tests/fake_nvml, needs a C compiler) and, for
each GPU count, starts one interpreter that sees that many fake GPUs. There both meters time
back-to-back empty begin/end pairs, interleaved round by round (meter's ``pairs``, then Zeus's,
then meter's again ...), so a machine whose load changes during the run slows both alike. Each
round's figure is the median over its pairs; the line printed is the median of the rounds. Neither
waits for a GPU (``sync=None``, ``sync_execution=False``): what is timed is the meters' own work
and their NVML calls. Counting NVML calls: ``--count-calls`` wraps pynvml's function lookup and
reports calls per pair for each meter. meter works a window's summary out when its figures are
first read (a minute later at the latest); that cost is printed apart, per window.

The figures are this machine's: the fake driver answers a call in about a microsecond; a real
driver's calls take longer and add the same to both meters.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _pairs(begin, end, n: int) -> list[float]:
    """Seconds per begin/end pair of empty windows, one figure per pair."""
    out = []
    for i in range(n):
        name = f"w{i}"
        t0 = time.perf_counter()
        begin(name)
        end(name)
        out.append(time.perf_counter() - t0)
    return out


def _meter_fns(m):
    return m.begin_window, lambda name: m.end_window(name, tokens=1)


def _zeus_fns(z):
    return (
        lambda name: z.begin_window(name, sync_execution=False),
        lambda name: z.end_window(name, sync_execution=False),
    )


class _CallCounter:
    """Counts calls into the NVML library through pynvml's cached function pointers."""

    def __init__(self) -> None:
        import pynvml

        self.count = 0
        self._pynvml = pynvml
        self._original = pynvml._nvmlGetFunctionPointer  # noqa: SLF001 (pynvml's one lookup)
        self._wrapped: dict[str, Any] = {}

        def lookup(name: str):
            fn = self._original(name)

            def counted(*args):
                self.count += 1
                return fn(*args)

            return counted

        pynvml._nvmlGetFunctionPointer = lookup  # noqa: SLF001
        pynvml._nvmlGetFunctionPointer_cache.clear()  # noqa: SLF001


def child(pairs: int, rounds: int, count_calls: bool, zeus: bool = True) -> dict[str, Any]:
    """In an interpreter that sees the fake driver: both meters' figures per pair."""
    counter = _CallCounter() if count_calls else None
    import meter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = meter.Meter(price_usd_per_gpu_hour=1.0, sync=None, max_windows=pairs * rounds + 200)
    out: dict[str, Any] = {"gpus": len(m._meter.gpus), "pairs": pairs, "rounds": rounds}  # noqa: SLF001
    contenders: dict[str, tuple[Any, Any]] = {"meter": _meter_fns(m)}
    try:
        if not zeus:
            raise ImportError("left out (--without-zeus)")
        from zeus.monitor import ZeusMonitor

        zeus = ZeusMonitor(cpu_indices=[], sync_execution_with="torch")
        contenders["zeus"] = _zeus_fns(zeus)
        out["zeus_version"] = _version("zeus")
    except ImportError as exc:
        out["zeus"] = str(exc) if not zeus else "not installed (pip install zeus)"
    per_round: dict[str, list[float]] = {name: [] for name in contenders}
    every: dict[str, list[float]] = {name: [] for name in contenders}
    for begin, end in contenders.values():
        _pairs(begin, end, 50)  # warm-up: imports, caches, the first samples
    for _ in range(rounds):
        for name, (begin, end) in contenders.items():
            seconds = _pairs(begin, end, pairs)
            per_round[name].append(statistics.median(seconds))
            every[name] += seconds
    for name in contenders:
        ordered = sorted(every[name])
        out[name] = {
            "median_us": statistics.median(per_round[name]) * 1e6,
            "round_medians_us": [round(s * 1e6, 2) for s in per_round[name]],
            "p99_us": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e6,
        }
    if counter is not None:
        for name, (begin, end) in contenders.items():
            before = counter.count
            _pairs(begin, end, 100)
            out[name]["nvml_calls_per_pair"] = (counter.count - before) / 100
    # meter defers each window's summary until its figures are read: time that apart, for the windows
    # not yet worked out (the rest were, a minute after they ended or 4096 windows on, on the way)
    from meter.measure.record import DeferredWindow

    pending = [w for w in m._ledger.kept if type(w) is DeferredWindow]  # noqa: SLF001
    t0 = time.perf_counter()
    for w in pending:
        w.energy_j  # noqa: B018 (the first read works the figures out)
    out["meter"]["summary_us"] = (time.perf_counter() - t0) / max(1, len(pending)) * 1e6
    out["meter"]["summaries_timed"] = len(pending)
    out["meter"]["windows"] = len(m.result().windows)
    m.close()
    return out


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def run(
    gpus: list[int], pairs: int, rounds: int, count_calls: bool, *, zeus: bool = True, lib_dir: Path | None = None
) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO))
    from tests.fake_nvml import FakeGpu, Scenario, build, env

    results = []
    with tempfile.TemporaryDirectory(prefix="window-cost-") as tmp:
        lib = lib_dir if lib_dir is not None else build(Path(tmp) / "lib")
        for n in gpus:
            scenario = Scenario(gpus=[FakeGpu() for _ in range(n)]).write(Path(tmp) / f"gpus{n}.ini")
            argv = [sys.executable, __file__, "--child", "--pairs", str(pairs), "--rounds", str(rounds)]
            if count_calls:
                argv.append("--count-calls")
            if not zeus:
                argv.append("--without-zeus")
            done = subprocess.run(
                argv, capture_output=True, text=True, env={**os.environ, **env(lib, scenario)}, cwd=REPO, check=False
            )
            if done.returncode != 0:
                raise SystemExit(f"the {n}-GPU run failed:\n{done.stderr}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8], help="fake GPU counts, one run each")
    parser.add_argument("--pairs", type=int, default=500, help="begin/end pairs per round")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--count-calls", action="store_true", help="also count NVML calls per pair")
    parser.add_argument("--without-zeus", action="store_true", help="time meter alone")
    parser.add_argument("--lib-dir", type=Path, help="a fake libnvidia-ml.so.1 built already (tests/fake_nvml)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(max(1, args.pairs), max(1, args.rounds), args.count_calls, not args.without_zeus)))
        return 0
    results = run(
        args.gpus,
        max(1, args.pairs),
        max(1, args.rounds),
        args.count_calls,
        zeus=not args.without_zeus,
        lib_dir=args.lib_dir,
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        for name in ("meter", "zeus"):
            s = r.get(name)
            if isinstance(s, str):
                print(f"{r['gpus']} GPU(s)  {name:5s}  {s}")
                continue
            calls = f"  {s['nvml_calls_per_pair']:.0f} NVML calls" if "nvml_calls_per_pair" in s else ""
            later = f"; {s['summary_us']:.1f} µs more when its figures are read" if "summary_us" in s else ""
            print(
                f"{r['gpus']} GPU(s)  {name:5s}  {s['median_us']:8.1f} µs median of {r['rounds']} rounds"
                f"  (rounds {min(s['round_medians_us']):.1f}-{max(s['round_medians_us']):.1f}){calls}{later}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
