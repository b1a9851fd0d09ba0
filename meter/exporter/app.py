"""Assemble and run the exporter: NVML, prices, the collector, HTTP, run ingestion, scheduled benchmarks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from meter.config.hardware import list_hardware, match_nvml_name
from meter.config.paths import ConfigLocator
from meter.config.pricing import load_prices
from meter.device.nvml import NvmlSession
from meter.device.nvml_gpu import NvmlGpu
from meter.device.visible import visible_nvml_indices
from meter.exporter.collector import MeterCollector
from meter.exporter.http import BasicAuth, MeterApp, serve
from meter.exporter.state import ExporterState
from meter.results.document import RunDocument
from meter.results.load import load_run


@dataclass(frozen=True)
class ExporterConfig:
    host: str = "127.0.0.1"
    port: int = 9401
    interval_s: float = 1.0
    price_usd_per_hour: float | None = None
    tier: str | None = None
    usd_per_kwh: float | None = None
    pue: float | None = None
    hostname: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    basic_auth_file: str | None = None
    train_scenario: str | None = "deepseek-v3"
    serve_scenario: str | None = "deepseek-v3-day6"
    runs_dir: str | None = None
    bench_suite: str | None = None
    bench_every_s: float | None = None


def gpu_prices(
    gpus: list[NvmlGpu], config: ExporterConfig, locator: ConfigLocator
) -> tuple[dict[str, tuple[float | None, str | None]], dict[str, str | None]]:
    """Per GPU UUID: (price per hour, where it came from), and the matched hardware config."""
    specs = list_hardware(locator)
    table = load_prices(locator=locator)
    prices, configs = {}, {}
    for gpu in gpus:
        spec = match_nvml_name(gpu.identity.name, specs)
        configs[gpu.identity.uuid] = spec.name if spec else None
        if config.price_usd_per_hour is not None:
            prices[gpu.identity.uuid] = (config.price_usd_per_hour, "--price")
            continue
        quote = table.rental_quote(spec.name, config.tier) if spec else None
        if quote is not None:
            prices[gpu.identity.uuid] = (
                quote.median,
                f"price table {table.name} v{table.version}: median of "
                f"{len(quote.prices)} {config.tier or 'any-tier'} prices",
            )
        else:
            prices[gpu.identity.uuid] = (None, None)
    return prices, configs


class Exporter:
    def __init__(self, config: ExporterConfig, locator: ConfigLocator | None = None):
        self.config = config
        self.locator = locator or ConfigLocator.from_env()
        self.session = NvmlSession().__enter__()  # NvmlUnavailable propagates: one clear line, exit 2
        try:
            indices = visible_nvml_indices(self.session, os.environ.get("CUDA_VISIBLE_DEVICES"))
            gpus = [NvmlGpu(self.session, i) for i in indices]
            prices, configs = gpu_prices(gpus, config, self.locator)
            table = load_prices(locator=self.locator)
            self.state = ExporterState(
                gpus,
                hostname=config.hostname or os.environ.get("NODE_NAME") or socket.gethostname(),
                prices=prices,
                hardware_configs=configs,
                usd_per_kwh=config.usd_per_kwh
                if config.usd_per_kwh is not None
                else table.default_electricity().usd_per_kwh,
                pue=config.pue if config.pue is not None else table.default_pue().pue,
                interval_s=config.interval_s,
                driver_version=self.session.driver_version(),
            )
        except BaseException:
            self.session.__exit__(None, None, None)
            raise
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MeterCollector(self.state))
        auth = BasicAuth.from_file(Path(config.basic_auth_file)) if config.basic_auth_file else None
        self.app = MeterApp(self.registry, self.ingest, auth)
        self.server = None
        self._stop = threading.Event()

    def ingest(self, doc: RunDocument, where: str = "posted run") -> dict[str, Any]:
        """Take a run document: its results, and what it implies for the configured scenarios."""
        from meter.cost.for_run import costs_for_run, summary

        estimates, problems = costs_for_run(
            Path(where),
            self.locator,
            samples=0,
            doc=doc,
            train_scenario=self.config.train_scenario,
            serve_scenario=self.config.serve_scenario,
        )
        taken = self.state.ingest(doc, summary(estimates))
        return {"accepted_cases": taken, "priced": sorted(estimates), "problems": problems}

    def ingest_file(self, path: Path) -> dict[str, Any]:
        return self.ingest(load_run(path), str(path))

    def start(self) -> None:
        self.state.start()
        if self.config.runs_dir:
            for path in sorted(Path(self.config.runs_dir).glob("*.json")):
                try:
                    self.ingest_file(path)
                except Exception as exc:  # a bad file in the directory must not stop the exporter
                    print(f"meter serve: skipped {path}: {exc}", file=sys.stderr)
        self.server = serve(
            self.app, self.config.host, self.config.port, certfile=self.config.tls_cert, keyfile=self.config.tls_key
        )
        if self.config.bench_suite and self.config.bench_every_s:
            threading.Thread(target=self._bench_loop, name="meter-bench-schedule", daemon=True).start()

    @property
    def address(self) -> tuple[str, int]:
        return self.server.server_address[:2]

    def serve_forever(self) -> None:
        try:
            self.server.serve_forever(poll_interval=0.5)
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.server_close()
        self.state.stop()
        self.session.__exit__(None, None, None)

    def _bench_loop(self) -> None:
        """Run the configured suite in a subprocess on a schedule, and take in its run file."""
        out_dir = Path(self.config.runs_dir or Path.cwd() / "runs")
        while not self._stop.is_set():
            path = out_dir / f"scheduled-{int(time.time())}.json"
            command = [
                sys.executable,
                "-m",
                "meter",
                "bench",
                "--suite",
                self.config.bench_suite,
                "--output",
                str(path),
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode == 0 and path.exists():
                try:
                    self.ingest_file(path)
                except Exception as exc:
                    print(f"meter serve: scheduled run {path} not taken in: {exc}", file=sys.stderr)
            else:
                tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"meter serve: scheduled benchmark failed ({result.returncode}): {tail}", file=sys.stderr)
            self._stop.wait(self.config.bench_every_s)


def push_run(url: str, path: Path, *, timeout: float = 30.0) -> dict[str, Any]:
    """POST a run file to a running exporter (``http(s)://[user:password@]host:port``)."""
    import base64
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url.rstrip("/"))
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    target = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path + "/api/v1/runs", "", ""))
    request = urllib.request.Request(
        target, data=Path(path).read_bytes(), method="POST", headers={"Content-Type": "application/json"}
    )
    user = parts.username or os.environ.get("METER_PUSH_USER")
    password = parts.password or os.environ.get("METER_PUSH_PASSWORD")
    if user:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        raise OSError(f"{target} answered {exc.code}: {body[:200]}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise OSError(f"{target}: {getattr(exc, 'reason', exc)}") from None
