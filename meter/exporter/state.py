"""What the exporter knows between scrapes: the GPUs' latest readings, what they cost, latest results.

Everything a scrape needs is computed as samples and runs arrive, under one lock; a scrape only
copies it (it never calls NVML).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from meter.device.nvml_gpu import NvmlGpu
from meter.device.reading import Reading
from meter.results.document import RunDocument
from meter.telemetry.sampler import Sampler
from meter.telemetry.sources import GpuSource


@dataclass
class GpuAccount:
    """One GPU: identity, price, and energy accumulated since the exporter started."""

    gpu: NvmlGpu
    key: str
    hardware_config: str | None
    usd_per_hour: float | None
    price_source: str | None
    last_energy_j: float | None = None
    energy_since_start_j: float = 0.0
    counter_resets: int = 0


@dataclass
class Results:
    """The latest benchmark results and projections, from run files."""

    cases: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    projections: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    costs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    runs_ingested: int = 0
    last_run_timestamp: float | None = None


class ExporterState:
    def __init__(
        self,
        gpus: list[NvmlGpu],
        *,
        hostname: str,
        prices: dict[str, tuple[float | None, str | None]],
        hardware_configs: dict[str, str | None],
        usd_per_kwh: float | None,
        pue: float,
        interval_s: float = 1.0,
        driver_version: str | None = None,
    ):
        self.hostname = hostname
        self.usd_per_kwh = usd_per_kwh
        self.pue = pue
        self.driver_version = driver_version
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.accounts: dict[str, GpuAccount] = {}
        sources = []
        for gpu in gpus:
            source = GpuSource(gpu)
            price, why = prices.get(gpu.identity.uuid, (None, None))
            self.accounts[source.key] = GpuAccount(gpu, source.key, hardware_configs.get(gpu.identity.uuid), price, why)
            sources.append(source)
        self.sampler = Sampler(sources, interval_s, on_reading=self._on_reading)
        self.results = Results()

    def _on_reading(self, key: str, reading: Reading) -> None:
        if reading.energy_j is None:
            return
        with self.lock:
            account = self.accounts[key]
            if account.last_energy_j is not None:
                delta = reading.energy_j - account.last_energy_j
                if delta < 0:  # the driver's counter restarted: what it shows now is new energy
                    account.counter_resets += 1
                    delta = reading.energy_j
                account.energy_since_start_j += delta
            account.last_energy_j = reading.energy_j

    def uptime_s(self) -> float:
        return time.monotonic() - self.started

    def start(self) -> None:
        self.sampler.start()

    def stop(self) -> None:
        self.sampler.stop()

    def ingest(self, doc: RunDocument, costs: dict[str, dict[str, Any]] | None = None) -> int:
        """Take a run document's results (and its priced scenarios); returns the cases taken."""
        device = doc.metadata.device.label  # a CPU figure never passes for a GPU one
        taken = 0
        with self.lock:
            for case in doc.ok_cases():
                m, tele = case.metrics, case.telemetry
                self.results.cases[(case.case.model, case.id, case.case.phase)] = {
                    "device": device,
                    "tflops": m.achieved_tflops,
                    "mfu": m.mfu,
                    "tokens_per_second": m.tokens_per_s,
                    "joules_per_token": tele.joules_per_token if tele else None,
                }
                taken += 1
            for p in doc.projections:
                shape = f"b{p.batch}-ctx{p.context}" if p.phase == "decode" else f"b{p.batch}-s{p.seq}"
                self.results.projections[(p.model, p.phase, shape)] = {
                    "device": device,
                    "tokens_per_second": p.tokens_per_s,
                    "mfu": p.mfu,
                }
            for kind, estimate in (costs or {}).items():
                self.results.costs[(kind, estimate["scenario"])] = {
                    "model": estimate["model"],
                    "hardware": estimate["hardware"],
                    "outputs": {k: v["point"] for k, v in estimate["outputs"].items()},
                }
            self.results.runs_ingested += 1
            self.results.last_run_timestamp = time.time()
        return taken
