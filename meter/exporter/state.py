"""What the exporter knows between scrapes: each GPU's latest reading, health, owners and cost.

Readings arrive from the sampler thread, health, processes and owners from the slower poll, runs
from the push endpoint; all of it is kept under one lock. A scrape takes a :class:`Snapshot`, a
frozen copy, and never calls the GPU library itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meter.cost.run_costs import RunCosts
from meter.cost.views import ServingCost, TrainingCost
from meter.device.gpu import GpuDevice, GpuHealth, GpuIdentity, GpuLost
from meter.device.jobs import PROC, JobRef, job_of
from meter.device.kubelet import Owner
from meter.device.reading import Reading
from meter.results import RunDocument
from meter.telemetry.sampler import Sampler
from meter.telemetry.sources import GpuSource

RING_CAPACITY = 16  # the exporter exports the latest reading; it keeps no history


@dataclass(frozen=True)
class Attribution:
    """Who holds a GPU, as label values; several holders of a shared GPU are listed, sorted, with commas."""

    namespace: str = ""
    pod: str = ""
    container: str = ""

    @classmethod
    def of(cls, owners: Sequence[Owner]) -> Attribution:
        if not owners:
            return cls()
        return cls(
            namespace=",".join(sorted({o.namespace for o in owners})),
            pod=",".join(sorted({o.pod for o in owners})),
            container=",".join(sorted({o.container for o in owners})),
        )


@dataclass(frozen=True)
class ProcessView:
    pid: int
    used_memory_bytes: int | None
    job: JobRef | None


@dataclass
class GpuAccount:
    """One GPU: identity, price, and what has been learnt about it since it was attached."""

    gpu: GpuDevice
    key: str
    hardware_config: str | None
    usd_per_hour: float | None
    price_source: str | None
    attached_t: float = field(default_factory=time.monotonic)
    last_energy_j: float | None = None
    energy_since_start_j: float = 0.0
    counter_resets: int = 0
    reading: Reading | None = None
    health: GpuHealth | None = None
    processes: tuple[ProcessView, ...] = ()
    attribution: Attribution = Attribution()
    lost: str | None = None
    lost_t: float | None = None


@dataclass(frozen=True)
class GpuView:
    """One GPU as a scrape sees it."""

    identity: GpuIdentity
    architecture: str
    power_semantics: str
    hardware_config: str | None
    usd_per_hour: float | None
    price_source: str | None
    reading: Reading | None
    health: GpuHealth | None
    processes: tuple[ProcessView, ...]
    attribution: Attribution
    lost: str | None
    energy_since_start_j: float | None  # None: the GPU has no energy counter
    counter_resets: int
    rental_usd: float | None  # accrued while the GPU answered; None without a price


@dataclass(frozen=True)
class RunOrigin:
    """Where a result was measured: a second GPU type or host never replaces the first one's figures."""

    hostname: str
    uuid: str  # the GPU's UUID; "" for a CPU run
    device: str  # the device's label (a CPU is called one)

    @classmethod
    def of(cls, doc: RunDocument) -> RunOrigin:
        return cls(doc.metadata.host.hostname or "", doc.metadata.device.uuid or "", doc.metadata.device.label)


@dataclass(frozen=True)
class CaseFigures:
    origin: RunOrigin
    model: str
    case: str
    phase: str
    tflops: float
    mfu: float | None
    tokens_per_second: float
    joules_per_token: float | None


@dataclass(frozen=True)
class ProjectionFigures:
    origin: RunOrigin
    model: str
    phase: str
    shape: str
    tokens_per_second: float
    mfu: float | None


@dataclass(frozen=True)
class CostFigures:
    origin: RunOrigin
    kind: str  # train or serve
    scenario: str
    model: str
    hardware: str
    cost: TrainingCost | ServingCost


@dataclass(frozen=True)
class ResultsView:
    cases: tuple[CaseFigures, ...]
    projections: tuple[ProjectionFigures, ...]
    costs: tuple[CostFigures, ...]
    runs_ingested: int
    last_run_timestamp: float | None


@dataclass(frozen=True)
class Snapshot:
    hostname: str
    library_up: bool
    driver_version: str | None
    gpus: tuple[GpuView, ...]
    results: ResultsView
    uptime_s: float
    sampler_ticks: int
    usd_per_kwh: float | None
    pue: float


@dataclass
class Results:
    """The latest benchmark results, projections and priced scenarios, by host, GPU, model and case."""

    cases: dict[tuple, CaseFigures] = field(default_factory=dict)
    projections: dict[tuple, ProjectionFigures] = field(default_factory=dict)
    costs: dict[tuple, CostFigures] = field(default_factory=dict)
    runs_ingested: int = 0
    last_run_timestamp: float | None = None


class ExporterState:
    def __init__(
        self,
        *,
        hostname: str,
        usd_per_kwh: float | None,
        pue: float,
        interval_s: float = 1.0,
        proc_root: Path = PROC,
    ):
        self.hostname = hostname
        self.proc_root = proc_root
        self.usd_per_kwh = usd_per_kwh
        self.pue = pue
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.accounts: dict[str, GpuAccount] = {}
        self.library_up = False
        self.driver_version: str | None = None
        self.sampler: Sampler | None = None
        self.results = Results()
        self._version = 0  # bumped under the lock by every change a scrape would show
        self.ticked = threading.Event()  # set after each sampling round (the exporter re-renders then)

    def version(self) -> int:
        return self._version

    # --- GPUs ---

    def attach(
        self,
        gpus: Sequence[GpuDevice],
        *,
        prices: dict[str, tuple[float | None, str | None]],
        hardware_configs: dict[str, str | None],
        driver_version: str | None,
    ) -> Sampler:
        """Take the GPUs the library opened; returns their sampler (not started)."""
        sources = []
        with self.lock:
            for gpu in gpus:
                source = GpuSource(gpu)
                price, why = prices.get(gpu.identity.uuid, (None, None))
                self.accounts[source.key] = GpuAccount(
                    gpu, source.key, hardware_configs.get(gpu.identity.uuid), price, why
                )
                sources.append(source)
            self.library_up = True
            self.driver_version = driver_version
            self._version += 1
            self.sampler = Sampler(
                sources,
                self.interval_s,
                capacity=RING_CAPACITY,
                on_reading=self._on_reading,
                on_lost=self._on_lost,
                on_tick=self._on_tick,
                # no on_event: the sampler logs its events to meter.telemetry.sampler, which serve shows
            )
        return self.sampler

    def _on_reading(self, key: str, reading: Reading) -> None:
        with self.lock:
            account = self.accounts[key]
            account.reading = reading
            if reading.energy_j is None:
                return
            if account.last_energy_j is not None:
                delta = reading.energy_j - account.last_energy_j
                if delta < 0:  # the driver's counter restarted: what it shows now is new energy
                    account.counter_resets += 1
                    delta = reading.energy_j
                account.energy_since_start_j += delta
            account.last_energy_j = reading.energy_j

    def _on_tick(self) -> None:
        with self.lock:
            self._version += 1  # once per sampling round: a scrape shows whole rounds
        self.ticked.set()

    def _on_lost(self, key: str, why: str) -> None:
        with self.lock:
            account = self.accounts[key]
            if account.lost is None:
                account.lost, account.lost_t = why, time.monotonic()
                self._version += 1

    def poll(self, owners: dict[str, list[Owner]] | None) -> None:
        """The slow part of telemetry: health counters, processes and owners of every live GPU."""
        for key, account in list(self.accounts.items()):
            if account.lost is not None:
                continue
            try:
                health = account.gpu.health()
                processes = tuple(
                    ProcessView(p.pid, p.used_memory_bytes, job_of(p.pid, self.proc_root))
                    for p in account.gpu.processes()
                )
            except GpuLost as exc:
                if self.sampler is not None:
                    self.sampler.mark_lost(key, str(exc))
                continue
            attribution = Attribution.of((owners or {}).get(account.gpu.identity.uuid, []))
            with self.lock:
                account.health, account.processes, account.attribution = health, processes, attribution
                self._version += 1

    # --- results ---

    def uptime_s(self) -> float:
        return time.monotonic() - self.started

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        with self.lock:
            gpus = tuple(self._view(a, now) for a in self.accounts.values())
            r = self.results
            results = ResultsView(
                tuple(r.cases.values()),
                tuple(r.projections.values()),
                tuple(r.costs.values()),
                r.runs_ingested,
                r.last_run_timestamp,
            )
            library_up, driver = self.library_up, self.driver_version
        ticks = self.sampler.ticks if self.sampler is not None else 0
        return Snapshot(
            self.hostname, library_up, driver, gpus, results, now - self.started, ticks, self.usd_per_kwh, self.pue
        )

    @staticmethod
    def _view(a: GpuAccount, now: float) -> GpuView:
        billed_s = (a.lost_t if a.lost_t is not None else now) - a.attached_t
        return GpuView(
            identity=a.gpu.identity,
            architecture=a.gpu.architecture,
            power_semantics=a.gpu.power_semantics,
            hardware_config=a.hardware_config,
            usd_per_hour=a.usd_per_hour,
            price_source=a.price_source,
            reading=a.reading,
            health=a.health,
            processes=a.processes,
            attribution=a.attribution,
            lost=a.lost,
            energy_since_start_j=a.energy_since_start_j if a.last_energy_j is not None else None,
            counter_resets=a.counter_resets,
            rental_usd=a.usd_per_hour * billed_s / 3600.0 if a.usd_per_hour is not None else None,
        )

    def ingest(self, doc: RunDocument, costs: RunCosts | None = None) -> list[tuple]:
        """Take a run's results (and its priced scenarios); returns the keys it set, one per result."""
        origin = RunOrigin.of(doc)
        where = (origin.hostname, origin.uuid)
        figures: dict[tuple, Any] = {}
        for case in doc.ok_cases():
            m, tele = case.metrics, case.telemetry
            key = ("case", *where, case.case.model, case.id, case.case.phase)
            figures[key] = CaseFigures(
                origin,
                case.case.model,
                case.id,
                case.case.phase,
                m.achieved_tflops,
                m.mfu,
                m.tokens_per_s,
                tele.joules_per_token if tele else None,
            )
        for p in doc.projections:
            shape = f"b{p.batch}-ctx{p.context}" if p.phase == "decode" else f"b{p.batch}-s{p.seq}"
            figures[("projection", *where, p.model, p.phase, shape)] = ProjectionFigures(
                origin, p.model, p.phase, shape, p.tokens_per_s, p.mfu
            )
        for kind, estimate in costs.priced() if costs is not None else ():
            cost = estimate.training if kind == "train" else estimate.serving
            figures[("cost", *where, kind, estimate.scenario.name)] = CostFigures(
                origin, kind, estimate.scenario.name, estimate.model.name, estimate.hardware.name, cost
            )
        with self.lock:
            for key, value in figures.items():
                table = {"case": self.results.cases, "projection": self.results.projections, "cost": self.results.costs}
                table[key[0]][key] = value
            self.results.runs_ingested += 1
            self.results.last_run_timestamp = time.time()
            self._version += 1
        return list(figures)
