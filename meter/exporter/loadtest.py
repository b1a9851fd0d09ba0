"""Scrape an exporter at a fixed rate and report errors and scrape-time percentiles.

    python -m meter.exporter.loadtest http://127.0.0.1:9401/metrics --rate 100 --seconds 30

Requests are spread over a few threads, each on its own schedule; the run is bounded in count and
time and stops by itself. Only point it at an exporter of your own (loopback in the tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.request

from meter.bench.stats import quantile


def scrape_load(url: str, *, rate_hz: float, seconds: float, threads: int = 4, timeout_s: float = 5.0) -> dict:
    """Scrape ``url`` ``rate_hz`` times a second for ``seconds``; returns counts and latencies (s)."""
    total = int(rate_hz * seconds)
    per_thread = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.perf_counter()

    def worker(i: int, count: int) -> None:
        interval = threads / rate_hz
        first = start + i / rate_hz
        for k in range(count):
            wait = first + k * interval - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response:
                    body = response.read()
                    ok = response.status == 200 and body.startswith(b"# HELP")
            except Exception as exc:  # every failure counts; none may stop the run
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - t0
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors.append("unexpected response")

    pool = [threading.Thread(target=worker, args=(i, n), daemon=True) for i, n in enumerate(per_thread)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 60)
    wall = time.perf_counter() - start
    xs = sorted(latencies)
    return {
        "url": url,
        "requested": total,
        "succeeded": len(xs),
        "errors": len(errors),
        "error_examples": errors[:5],
        "wall_s": wall,
        "achieved_rate_hz": len(xs) / wall if wall else 0.0,
        "p50_s": quantile(xs, 0.5) if xs else None,
        "p99_s": quantile(xs, 0.99) if xs else None,
        "max_s": xs[-1] if xs else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scrape an exporter at a fixed rate; report p50/p99 scrape time.")
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=100.0, help="scrapes per second (default 100)")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration (default 30)")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    result = scrape_load(args.url, rate_hz=args.rate, seconds=args.seconds, threads=args.threads)
    print(json.dumps(result, indent=2))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
