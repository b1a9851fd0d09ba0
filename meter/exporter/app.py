"""Assemble and run the exporter: the GPUs, prices, the collector, HTTP, run ingestion, scheduled benchmarks.

The exporter never exits because the GPU library cannot start (no driver yet, a version mismatch
after an upgrade): it serves ``meter_nvml_up 0``, logs why, and tries again every
``gpu_retry_s`` until it can.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from meter.config.hardware import list_hardware, match_device_name
from meter.config.paths import ConfigLocator
from meter.config.pricing import load_prices
from meter.cost.run_costs import RunCosts
from meter.device.gpu import GpuDevice, GpuFleet, GpuUnavailable, open_gpus
from meter.errors import MeterError
from meter.exporter.attribution import Attributor
from meter.exporter.collector import MeterCollector
from meter.exporter.http import MAX_RUN_BYTES, BasicAuth, MeterApp, serve
from meter.exporter.runstore import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, RunStore
from meter.exporter.state import ExporterState
from meter.exporter.tlsserver import serve_tls
from meter.exporter.webconfig import WebConfig, legacy_web_config, load_web_config
from meter.exporter.webguard import GuardedApp, WebConfigWatcher
from meter.exporter.webmetrics import WebConfigCollector
from meter.results import RunDocument, load_run
from meter.results.load import RunFileError


def check_renderable(doc: RunDocument, costs: RunCosts | None, hostname: str, where: str | Path) -> None:
    """Render the run's series alone, in every exposition format, before the run is taken in.

    A run that the loader accepts but /metrics cannot encode (a string Prometheus cannot carry)
    would make every later scrape fail, also after a restart; it is refused here instead.
    """
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    state = ExporterState(hostname=hostname, usd_per_kwh=None, pue=1.0)
    state.ingest(doc, costs)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MeterCollector(state))
    try:
        generate_latest(registry)
        generate_openmetrics(registry)
    except Exception as exc:  # whatever the encoder cannot take, the run is refused for it
        raise RunFileError(
            where, None, f"cannot be exported to /metrics ({type(exc).__name__}: {' '.join(str(exc).split())})"
        ) from None


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
    web_config_file: str | None = None  # exporter-toolkit's web config: TLS, bcrypt users, rate limit
    train_scenario: str | None = "deepseek-v3"
    serve_scenario: str | None = "deepseek-v3-day6"
    runs_dir: str | None = None
    bench_suite: str | None = None
    bench_every_s: float | None = None
    gpu_retry_s: float = 30.0
    max_run_bytes: int = MAX_RUN_BYTES
    runs_keep: int = DEFAULT_MAX_FILES
    runs_max_bytes: int = DEFAULT_MAX_BYTES
    pod_resources_socket: str | None = None  # None/"auto": the kubelet's socket if present; "off"; or a path

    @property
    def poll_s(self) -> float:
        """Health counters, processes and owners change slowly: read them every few samples."""
        return min(30.0, max(1.0, 5 * self.interval_s))


# The exporter's log: ``meter serve --log-level/--log-format`` decide what reaches stderr and how.
log = logging.getLogger("meter.serve")


def say(message: str) -> None:
    """A callback for the parts that report through one (pod attribution, the runs dir, the sampler)."""
    log.warning(message)


def gpu_prices(
    gpus: list[GpuDevice], config: ExporterConfig, locator: ConfigLocator
) -> tuple[dict[str, tuple[float | None, str | None]], dict[str, str | None]]:
    """Per GPU UUID: (price per hour, where it came from), and the matched hardware config."""
    specs = list_hardware(locator)
    table = load_prices(locator=locator)
    prices, configs = {}, {}
    for gpu in gpus:
        spec = match_device_name(gpu.identity.name, specs)
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
    def __init__(self, config: ExporterConfig, locator: ConfigLocator | None = None, web: WebConfig | None = None):
        self.config = config
        self.locator = locator or ConfigLocator.from_env()
        table = load_prices(locator=self.locator)
        self.state = ExporterState(
            hostname=config.hostname or os.environ.get("NODE_NAME") or socket.gethostname(),
            usd_per_kwh=config.usd_per_kwh
            if config.usd_per_kwh is not None
            else table.default_electricity().usd_per_kwh,
            pue=config.pue if config.pue is not None else table.default_pue().pue,
            interval_s=config.interval_s,
        )
        self.fleet: GpuFleet | None = None
        self.attributor = Attributor.from_setting(config.pod_resources_socket, say)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MeterCollector(self.state))
        auth = BasicAuth.from_file(Path(config.basic_auth_file)) if config.basic_auth_file else None
        self.store = (
            RunStore(Path(config.runs_dir), max_files=config.runs_keep, max_bytes=config.runs_max_bytes, say=say)
            if config.runs_dir
            else None
        )
        self.app = MeterApp(
            self.registry, self.push, auth, version=self.state.version, max_run_bytes=config.max_run_bytes
        )
        if web is None:
            web = (
                load_web_config(Path(config.web_config_file))
                if config.web_config_file
                else legacy_web_config(config.tls_cert, config.tls_key)
            )
        self.web = WebConfigWatcher(web)
        self.registry.register(WebConfigCollector(self.web))
        self.wsgi = GuardedApp(self.app, self.web)
        self.server = None
        self._stop = threading.Event()
        self._last_gpu_problem: str | None = None

    def connect(self) -> bool:
        """Open the GPUs; on failure serve ``meter_nvml_up 0`` and say why (once per distinct reason)."""
        try:
            fleet = open_gpus()
        except GpuUnavailable as exc:
            if str(exc) != self._last_gpu_problem:
                log.warning(f"GPU telemetry unavailable, retrying every {self.config.gpu_retry_s:g} s: {exc}")
                self._last_gpu_problem = str(exc)
            return False
        for index, why in fleet.unopened:
            log.warning(f"GPU {index} did not answer when opened, not exported: {why}")
        prices, configs = gpu_prices(list(fleet.gpus), self.config, self.locator)
        sampler = self.state.attach(
            fleet.gpus, prices=prices, hardware_configs=configs, driver_version=fleet.system().driver_version
        )
        self.fleet = fleet
        sampler.start()
        if self._last_gpu_problem is not None:
            log.info(f"GPU telemetry up: {len(fleet.gpus)} GPU(s)")
        return True

    def _poll_loop(self) -> None:
        """Retry the GPU library while it is down; read health, processes and owners while it is up."""
        next_retry = time.monotonic() + self.config.gpu_retry_s
        while not self._stop.wait(self.config.poll_s):
            if self.fleet is None:
                if time.monotonic() >= next_retry:
                    next_retry = time.monotonic() + self.config.gpu_retry_s
                    self.connect()
                continue
            try:
                self.state.poll(self.attributor.owners())
            except Exception as exc:  # a bug here must cost the health series, never the exporter
                log.error(f"health poll failed: {type(exc).__name__}: {exc}")

    def ingest(self, doc: RunDocument, where: str = "posted run", source: Path | None = None) -> dict[str, Any]:
        """Take a run document: its results, and what it implies for the configured scenarios."""
        from meter.cost.run_costs import costs_for_run

        costs = costs_for_run(
            Path(where),
            self.locator,
            samples=0,
            doc=doc,
            train_scenario=self.config.train_scenario,
            serve_scenario=self.config.serve_scenario,
        )
        check_renderable(doc, costs, self.state.hostname, where)  # before it can reach a scrape
        keys = self.state.ingest(doc, costs)
        if self.store is not None and source is not None:
            self.store.record(source, keys)
        return {
            "accepted_cases": sum(1 for k in keys if k[0] == "case"),
            "priced": sorted(kind for kind, _ in costs.priced()),
            "problems": costs.problems,
        }

    def push(self, doc: RunDocument, body: bytes) -> dict[str, Any]:
        """A run POSTed to /api/v1/runs: stored under --runs-dir (when set), then taken in."""
        stored, problems = None, []
        check_renderable(doc, None, self.state.hostname, "posted run")  # never store what no scrape can show
        if self.store is not None:
            try:
                stored = self.store.save(doc, body)
            except MeterError as exc:  # a full or read-only disk: the results still count until a restart
                problems.append(f"not kept across restarts: {exc}")
                log.warning(str(exc))
        answer = self.ingest(doc, "posted run", stored)
        if self.store is not None:
            for path in self.store.prune():
                log.info(f"runs dir: removed {path.name} (over --runs-keep/--runs-max-bytes)")
        answer["stored"] = stored.name if stored else None
        answer["problems"] = problems + answer["problems"]
        return answer

    def ingest_file(self, path: Path) -> dict[str, Any]:
        return self.ingest(load_run(path), str(path), path)

    def _render_loop(self) -> None:
        """Render /metrics after each sampling round, off the sampler's and the scrapers' threads."""
        while not self._stop.is_set():
            if self.state.ticked.wait(1.0):
                self.state.ticked.clear()
                try:
                    self.app.exposition.refresh()
                except Exception as exc:  # a scrape would show the same problem as a 500; never stop rendering
                    log.error(f"rendering /metrics failed: {type(exc).__name__}: {exc}")

    def start(self) -> None:
        # Scrape threads wait at most 1 ms for the interpreter lock while the renderer or the sampler
        # holds it (the default 5 ms is most of a scrape's latency budget under load).
        sys.setswitchinterval(0.001)
        threading.Thread(target=self._render_loop, name="meter-render", daemon=True).start()
        if self.connect():
            self.state.poll(self.attributor.owners())  # the first scrape already has health and owners
        threading.Thread(target=self._poll_loop, name="meter-poll", daemon=True).start()
        if self.store is not None:
            for path in self.store.files():  # oldest first: the newest run of each key wins, as before
                try:
                    self.ingest_file(path)
                except MeterError as exc:  # a bad file in the directory must not stop the exporter
                    log.warning(f"skipped {path}: {' '.join(str(exc).split())}")
            self.store.prune()
        if self.web.guard.config.tls is not None:
            self.server = serve_tls(self.wsgi, self.config.host, self.config.port, self.web)
        else:
            self.server = serve(self.wsgi, self.config.host, self.config.port)
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
        if self.state.sampler is not None:
            self.state.sampler.stop()
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None
        self.attributor.close()

    def _bench_loop(self) -> None:
        """Run the configured suite in a subprocess on a schedule, and take in its run file."""
        out_dir = self.store.directory if self.store is not None else Path.cwd() / "runs"
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
                except MeterError as exc:
                    log.warning(f"scheduled run {path} not taken in: {exc}")
                if self.store is not None:
                    self.store.prune()
            else:
                tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
                log.error(f"scheduled benchmark failed ({result.returncode}): {tail}")
            self._stop.wait(self.config.bench_every_s)


def push_tls_context() -> ssl.SSLContext | None:
    """For an exporter behind a web config: its CA (``METER_PUSH_CA``) and a client certificate
    (``METER_PUSH_CERT``, ``METER_PUSH_KEY``) for ``client_auth_type: RequireAndVerifyClientCert``."""
    ca, cert, key = (os.environ.get(f"METER_PUSH_{n}") for n in ("CA", "CERT", "KEY"))
    if not (ca or cert):
        return None  # the system's trust store, no client certificate
    try:
        context = ssl.create_default_context(cafile=ca or None)
        if cert:
            context.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise OSError(f"METER_PUSH_CA/METER_PUSH_CERT/METER_PUSH_KEY: {exc}") from None
    return context


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
        with urllib.request.urlopen(request, timeout=timeout, context=push_tls_context()) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        raise OSError(f"{target} answered {exc.code}: {body[:200]}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise OSError(f"{target}: {getattr(exc, 'reason', exc)}") from None
