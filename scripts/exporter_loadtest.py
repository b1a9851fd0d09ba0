#!/usr/bin/env python3
"""Load an exporter's /metrics and report errors and scrape-time percentiles.

    python scripts/exporter_loadtest.py http://127.0.0.1:9401/metrics --rate 100 --seconds 30
    python scripts/exporter_loadtest.py http://127.0.0.1:9401/metrics --clients 20 --scrapes 100

The first form scrapes at a fixed total rate, spread over a few threads. The second is many
scrapers at once: ``--clients`` client processes (each its own interpreter, as separate
Prometheus servers would be) each scrape ``--scrapes`` times at ``--rate-per-client`` (or back to
back with 0), all starting together.
Runs are bounded in count and time and stop by themselves. Only point it at an exporter of your
own (loopback in the tests).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import queue
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: its meter

from meter.bench.stats import quantile  # noqa: E402


def _scrape(url: str, timeout_s: float) -> tuple[float | None, str | None]:
    """(seconds, None) for a good scrape, (None, why) otherwise; never raises.

    A plain http.client request, as lean as a client gets in Python: on a small machine the
    client's own CPU time is part of what is measured.
    """
    parts = urllib.parse.urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    t0 = time.perf_counter()
    try:
        connection = connection_class(parts.hostname, parts.port, timeout=timeout_s)
        try:
            connection.request("GET", parts.path or "/", headers={"Accept-Encoding": "identity"})
            response = connection.getresponse()
            body = response.read()
            ok = response.status == 200 and body.startswith(b"# HELP")
        finally:
            connection.close()
    except Exception as exc:  # every failure counts; none may stop the run
        return None, f"{type(exc).__name__}: {exc}"
    return (time.perf_counter() - t0, None) if ok else (None, "unexpected response")


def _summary(url: str, requested: int, latencies: list[float], errors: list[str], wall: float, **extra) -> dict:
    xs = sorted(latencies)
    return {
        "url": url,
        **extra,
        "requested": requested,
        "succeeded": len(xs),
        "errors": len(errors),
        "error_examples": errors[:5],
        "wall_s": wall,
        "achieved_rate_hz": len(xs) / wall if wall else 0.0,
        "p50_s": quantile(xs, 0.5) if xs else None,
        "p99_s": quantile(xs, 0.99) if xs else None,
        "max_s": xs[-1] if xs else None,
    }


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
            elapsed, error = _scrape(url, timeout_s)
            with lock:
                if error is None:
                    latencies.append(elapsed)
                else:
                    errors.append(error)

    pool = [threading.Thread(target=worker, args=(i, n), daemon=True) for i, n in enumerate(per_thread)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 60)
    return _summary(url, total, latencies, errors, time.perf_counter() - start)


def _client(url: str, scrapes: int, timeout_s: float, start, offset_s: float, period_s: float, ready, out) -> None:
    """One scraper process: say it is up, wait for the common start, scrape every ``period_s`` from
    ``offset_s`` after it (0: back to back), send the results home."""
    ready.put(True)
    while start.value == 0.0:
        time.sleep(0.005)
    start_at = start.value + offset_s
    latencies, errors = [], []
    for k in range(scrapes):
        time.sleep(max(0.0, start_at + k * period_s - time.time()))
        elapsed, error = _scrape(url, timeout_s)
        if error is None:
            latencies.append(elapsed)
        else:
            errors.append(error)
    out.put((latencies, errors))


def concurrent_load(
    url: str, *, clients: int, scrapes: int, rate_per_client_hz: float = 0.0, timeout_s: float = 5.0
) -> dict:
    """``clients`` processes each scrape ``scrapes`` times, all at once.

    ``rate_per_client_hz`` 0: back to back (a closed loop: on a small machine the clients' own
    CPU time then dominates, see docs/operations.md); otherwise each client scrapes at that rate,
    the clients' phases spread evenly over one period.
    """
    if not (1 <= clients <= 256 and 1 <= scrapes <= 100_000 and 0 <= rate_per_client_hz <= 1000):
        raise ValueError("clients must be 1-256, scrapes 1-100000 and the rate per client 0-1000 Hz")
    context = multiprocessing.get_context("spawn")
    results, ready = context.Queue(), context.Queue()
    start = context.Value("d", 0.0)
    period = 1.0 / rate_per_client_hz if rate_per_client_hz else 0.0
    procs = [
        context.Process(
            target=_client, args=(url, scrapes, timeout_s, start, i * period / clients, period, ready, results)
        )
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    for _ in procs:  # every interpreter is up (imports done) before anyone scrapes
        try:
            ready.get(timeout=60)
        except queue.Empty:
            break
    start_at = time.time() + 0.5
    start.value = start_at
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + 60 + scrapes * timeout_s
    reported = 0
    while reported < clients and time.monotonic() < deadline:
        try:
            got, bad = results.get(timeout=0.5)
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and results.empty():
                break  # a client died without reporting: stop waiting for it
            continue
        reported += 1
        latencies += got
        errors += bad
    errors += ["a client did not report"] * (clients - reported)
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
    wall = time.time() - start_at
    return _summary(
        url,
        clients * scrapes,
        latencies,
        errors,
        wall,
        clients=clients,
        scrapes_per_client=scrapes,
        rate_per_client_hz=rate_per_client_hz,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load an exporter's /metrics; report p50/p99 scrape time.")
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=100.0, help="fixed-rate mode: scrapes per second (default 100)")
    parser.add_argument("--seconds", type=float, default=30.0, help="fixed-rate mode: duration (default 30)")
    parser.add_argument("--threads", type=int, default=4, help="fixed-rate mode: client threads")
    parser.add_argument("--clients", type=int, help="concurrent mode: this many client processes at once")
    parser.add_argument("--scrapes", type=int, default=100, help="concurrent mode: scrapes per client (default 100)")
    parser.add_argument(
        "--rate-per-client",
        type=float,
        default=10.0,
        metavar="HZ",
        help="concurrent mode: each client's scrape rate (default 10; 0: back to back)",
    )
    args = parser.parse_args(argv)
    if args.clients is not None:
        try:
            result = concurrent_load(
                args.url, clients=args.clients, scrapes=args.scrapes, rate_per_client_hz=args.rate_per_client
            )
        except ValueError as exc:
            parser.error(str(exc))
    else:
        result = scrape_load(args.url, rate_hz=args.rate, seconds=args.seconds, threads=args.threads)
    print(json.dumps(result, indent=2))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
