"""The Prometheus collector: builds fresh metric families from a snapshot of the exporter's state.

Names follow Prometheus's rules: a ``meter_`` prefix, base units (ratio, watts, joules, hertz,
bytes, celsius, seconds), ``_total`` on counters, ``_info`` for metadata; money in ``_usd``. A field
a GPU does not support is absent for that GPU, never 0. A lost GPU keeps ``meter_gpu_up 0`` and
``meter_gpu_info`` and nothing else: no reading, and no dollars accruing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from meter import __version__
from meter.cost.views import TrainingCost
from meter.device.clock_events import CLOCK_EVENT_REASONS, THROTTLING_REASONS
from meter.exporter.state import ExporterState, GpuView, ResultsView, Snapshot

GPU_LABELS = ["gpu", "uuid", "model", "hostname", "namespace", "pod", "container"]
INFO_LABELS = ["pci_bus_id", "driver_version", "hardware_config", "architecture", "power_semantics", "mig"]
PROCESS_LABELS = ["pid", "scheduler", "job_id"]

# (metric name, help, Reading attribute); all gauges in base units
READING_GAUGES = [
    (
        "meter_gpu_utilization_ratio",
        "Share of the last sample period with a kernel running (NVML), 0-1",
        "utilization_ratio",
    ),
    (
        "meter_gpu_memory_utilization_ratio",
        "Share of the last sample period with device memory being read or written",
        "memory_utilization_ratio",
    ),
    ("meter_gpu_power_watts", "Power draw: the instant reading where the GPU has one, else the 1 s average", "power_w"),
    ("meter_gpu_sm_clock_hertz", "SM clock", "sm_clock_hz"),
    ("meter_gpu_memory_clock_hertz", "Memory clock", "mem_clock_hz"),
    ("meter_gpu_memory_used_bytes", "Device memory in use", "memory_used_bytes"),
    ("meter_gpu_memory_total_bytes", "Device memory in total", "memory_total_bytes"),
    ("meter_gpu_temperature_celsius", "GPU temperature", "temperature_c"),
    ("meter_gpu_power_limit_watts", "Enforced power limit", "power_limit_w"),
    ("meter_gpu_sm_activity_ratio", "Share of SMs busy over the last sample period (GPM), 0-1", "sm_activity_ratio"),
    (
        "meter_gpu_tensor_activity_ratio",
        "Share of time the SMs ran tensor-core work over the last sample period (GPM), 0-1",
        "tensor_activity_ratio",
    ),
    (
        "meter_gpu_dram_bandwidth_utilization_ratio",
        "DRAM bandwidth used over its peak in the last sample period (GPM), 0-1",
        "dram_bandwidth_ratio",
    ),
]
# (ECC counter attribute of GpuHealth, error_type label, counter label)
ECC_COUNTERS = [
    ("ecc_corrected_volatile", "corrected", "volatile"),
    ("ecc_uncorrected_volatile", "uncorrected", "volatile"),
    ("ecc_corrected_aggregate", "corrected", "aggregate"),
    ("ecc_uncorrected_aggregate", "uncorrected", "aggregate"),
]


def gpu_labels(g: GpuView, hostname: str) -> list[str]:
    a = g.attribution
    return [str(g.identity.index), g.identity.uuid, g.identity.name, hostname, a.namespace, a.pod, a.container]


class MeterCollector:
    """A prometheus_client collector (``collect()`` yields metric families) over an ExporterState."""

    def __init__(self, state: ExporterState):
        self.state = state

    def describe(self) -> list:
        return []  # no describe-time collect: registering must not read the state

    def collect(self) -> Iterator[Metric]:
        snap = self.state.snapshot()
        families = self._families()
        library_up = GaugeMetricFamily(
            "meter_nvml_up",
            "1 while the GPU library (NVML) is initialised, 0 while it cannot be (the exporter's log says why)",
            labels=["hostname"],
        )
        library_up.add_metric([snap.hostname], 1.0 if snap.library_up else 0.0)
        now = time.monotonic()
        for g in snap.gpus:
            self._gpu(families, g, snap, now)
        yield library_up
        yield from families.values()
        yield from self._results(snap.results)
        info = InfoMetricFamily("meter_exporter_build", "gpu-cost-meter exporter version", labels=["version"])
        info.add_metric([__version__], {})
        yield info
        yield GaugeMetricFamily(
            "meter_exporter_uptime_seconds", "Seconds since the exporter started", value=snap.uptime_s
        )
        yield CounterMetricFamily(
            "meter_exporter_sampler_ticks", "Telemetry sampling rounds done", value=snap.sampler_ticks
        )

    @staticmethod
    def _families() -> dict[str, Metric]:
        gl, pl = GPU_LABELS, GPU_LABELS + PROCESS_LABELS
        fams: dict[str, Metric] = {
            "up": GaugeMetricFamily("meter_gpu_up", "1 while the GPU answers, 0 once it is lost", labels=gl),
            "info": InfoMetricFamily("meter_gpu", "The GPU's identity", labels=gl + INFO_LABELS),
        }
        for name, help_, _ in READING_GAUGES:
            fams[name] = GaugeMetricFamily(name, help_, labels=gl)
        fams.update(
            energy=CounterMetricFamily(
                "meter_gpu_energy_joules", "The driver's energy counter (since the driver loaded)", labels=gl
            ),
            events=GaugeMetricFamily(
                "meter_gpu_clock_event_reason_active",
                "1 while a clock-event (throttle) reason is active, 0 otherwise",
                labels=gl + ["reason", "throttling"],
            ),
            age=GaugeMetricFamily("meter_gpu_sample_age_seconds", "Age of the latest telemetry sample", labels=gl),
            price=GaugeMetricFamily(
                "meter_gpu_price_usd_per_hour", "Configured rental price of this GPU per hour", labels=gl + ["source"]
            ),
            rental=CounterMetricFamily(
                "meter_gpu_rental_usd",
                "Rental dollars accrued while the GPU answered, since the exporter started",
                labels=gl,
            ),
            gpu_energy_usd=CounterMetricFamily(
                "meter_gpu_energy_usd",
                "Electricity dollars since the exporter started (energy x $/kWh x PUE)",
                labels=gl,
            ),
            resets=CounterMetricFamily(
                "meter_gpu_energy_resets", "Times the driver's energy counter restarted (driver reloads)", labels=gl
            ),
            xid=CounterMetricFamily(
                "meter_gpu_xid_errors",
                "XID error events seen since the exporter started, by XID code",
                labels=gl + ["xid"],
            ),
            xid_events=CounterMetricFamily(
                "meter_gpu_xid_events", "XID error events of any code seen since the exporter started", labels=gl
            ),
            xid_last=GaugeMetricFamily(
                "meter_gpu_last_xid", "The code of the most recent XID error (as dcgm-exporter's XID_ERRORS)", labels=gl
            ),
            ecc=CounterMetricFamily(
                "meter_gpu_ecc_errors",
                "ECC errors counted by the driver (volatile: since driver load; aggregate: board lifetime)",
                labels=gl + ["error_type", "counter"],
            ),
            remapped=CounterMetricFamily(
                "meter_gpu_remapped_rows",
                "Memory rows remapped, by the kind of error that caused it",
                labels=gl + ["cause"],
            ),
            remap_pending=GaugeMetricFamily(
                "meter_gpu_row_remap_pending", "1 while a row remap waits for a GPU reset", labels=gl
            ),
            remap_failure=GaugeMetricFamily(
                "meter_gpu_row_remap_failure", "1 once a row remap has failed (the GPU needs service)", labels=gl
            ),
            processes=GaugeMetricFamily("meter_gpu_processes", "Compute processes on the GPU", labels=gl),
            process_info=InfoMetricFamily(
                "meter_gpu_process", "A compute process on the GPU, with its batch job where known", labels=pl
            ),
            process_memory=GaugeMetricFamily(
                "meter_gpu_process_memory_used_bytes", "Device memory a compute process holds", labels=pl
            ),
        )
        return fams

    def _gpu(self, f: dict, g: GpuView, snap: Snapshot, now: float) -> None:
        labels = gpu_labels(g, snap.hostname)
        ident = g.identity
        f["up"].add_metric(labels, 0.0 if g.lost else 1.0)
        mig = "true" if ident.mig_enabled else "false"
        f["info"].add_metric(
            labels
            + [
                ident.pci_bus_id or "",
                snap.driver_version or "",
                g.hardware_config or "",
                g.architecture,
                g.power_semantics,
                mig,
            ],
            {},
        )
        if g.lost:
            return  # lost: its identity stays, nothing it can no longer say, no dollars accruing
        if g.usd_per_hour is not None:
            f["price"].add_metric(labels + [g.price_source or ""], g.usd_per_hour)
            f["rental"].add_metric(labels, g.rental_usd)
        if g.energy_since_start_j is not None:
            if snap.usd_per_kwh is not None:
                f["gpu_energy_usd"].add_metric(labels, g.energy_since_start_j / 3.6e6 * snap.usd_per_kwh * snap.pue)
            f["resets"].add_metric(labels, g.counter_resets)
        if g.reading is not None:
            self._reading(f, labels, g.reading, now)
        if g.health is not None:
            self._health(f, labels, g.health)
        f["processes"].add_metric(labels, len(g.processes))
        for p in g.processes:
            values = labels + [str(p.pid), p.job.scheduler if p.job else "", p.job.job_id if p.job else ""]
            f["process_info"].add_metric(values, {})
            if p.used_memory_bytes is not None:
                f["process_memory"].add_metric(values, p.used_memory_bytes)

    @staticmethod
    def _reading(f: dict, labels: list[str], r, now: float) -> None:
        f["age"].add_metric(labels, now - r.t_s)
        for name, _, attr in READING_GAUGES:
            value = getattr(r, attr)
            if value is not None:
                f[name].add_metric(labels, float(value))
        if r.energy_j is not None:
            f["energy"].add_metric(labels, r.energy_j)
        if r.clock_event_mask is not None:
            for bit, reason in CLOCK_EVENT_REASONS.items():
                throttling = "true" if reason in THROTTLING_REASONS else "false"
                f["events"].add_metric(labels + [reason, throttling], 1.0 if r.clock_event_mask & bit else 0.0)

    @staticmethod
    def _health(f: dict, labels: list[str], h) -> None:
        if h.xid_errors is not None:  # the GPU reports XIDs: the total exists from 0, so increase() sees the first
            f["xid_events"].add_metric(labels, sum(h.xid_errors.values()))
            if h.last_xid is not None:
                f["xid_last"].add_metric(labels, h.last_xid)
        for code, count in sorted((h.xid_errors or {}).items()):
            f["xid"].add_metric(labels + [str(code)], count)
        for attr, error_type, counter in ECC_COUNTERS:
            value = getattr(h, attr)
            if value is not None:
                f["ecc"].add_metric(labels + [error_type, counter], value)
        for cause, value in (
            ("correctable", h.remapped_rows_correctable),
            ("uncorrectable", h.remapped_rows_uncorrectable),
        ):
            if value is not None:
                f["remapped"].add_metric(labels + [cause], value)
        if h.row_remap_pending is not None:
            f["remap_pending"].add_metric(labels, float(h.row_remap_pending))
        if h.row_remap_failure is not None:
            f["remap_failure"].add_metric(labels, float(h.row_remap_failure))

    def _results(self, r: ResultsView) -> Iterator[Metric]:
        """Benchmark figures by where they were measured: host, GPU UUID (and device label), model, case."""
        where = ["hostname", "uuid", "device"]
        labels = where + ["model", "case", "phase"]
        fams = {
            "flops": GaugeMetricFamily(
                "meter_benchmark_achieved_flops_per_second",
                "Achieved FLOP/s of a benchmark case (analytic FLOPs / median time)",
                labels=labels,
            ),
            "case_mfu": GaugeMetricFamily(
                "meter_benchmark_mfu_ratio", "MFU of a case against the dense bf16 peak", labels=labels
            ),
            "tps": GaugeMetricFamily("meter_benchmark_tokens_per_second", "Tokens per second of a case", labels=labels),
            "jpt": GaugeMetricFamily("meter_benchmark_joules_per_token", "Energy per token of a case", labels=labels),
        }
        for c in sorted(r.cases, key=_order):
            values = _where(c.origin) + [c.model, c.case, c.phase]
            fams["flops"].add_metric(values, c.tflops * 1e12)
            fams["tps"].add_metric(values, c.tokens_per_second)
            if c.mfu is not None:
                fams["case_mfu"].add_metric(values, c.mfu)
            if c.joules_per_token is not None:
                fams["jpt"].add_metric(values, c.joules_per_token)
        yield from fams.values()
        p_labels = where + ["model", "phase", "shape"]
        p_tps = GaugeMetricFamily(
            "meter_projection_tokens_per_second",
            "Whole-model tokens per second per GPU, projected from per-layer results",
            labels=p_labels,
        )
        p_mfu = GaugeMetricFamily("meter_projection_mfu_ratio", "Projected whole-model MFU", labels=p_labels)
        for p in sorted(r.projections, key=_order):
            values = _where(p.origin) + [p.model, p.phase, p.shape]
            p_tps.add_metric(values, p.tokens_per_second)
            if p.mfu is not None:
                p_mfu.add_metric(values, p.mfu)
        yield from (p_tps, p_mfu)
        c_labels = where + ["scenario", "model", "hardware"]
        train_usd = GaugeMetricFamily(
            "meter_cost_training_usd", "Training cost of a priced scenario (rental)", labels=c_labels
        )
        train_h = GaugeMetricFamily(
            "meter_cost_training_gpu_hours", "Training GPU-hours of a priced scenario", labels=c_labels
        )
        serve = GaugeMetricFamily(
            "meter_cost_serving_usd_per_million_tokens",
            "Serving cost per million tokens of a priced scenario",
            labels=c_labels + ["direction"],
        )
        for c in sorted(r.costs, key=_order):
            base, cost = _where(c.origin) + [c.scenario, c.model, c.hardware], c.cost
            if isinstance(cost, TrainingCost):
                if cost.total_usd is not None:
                    train_usd.add_metric(base, cost.total_usd.point)
                if cost.total_gpu_hours is not None:
                    train_h.add_metric(base, cost.total_gpu_hours.point)
            else:
                for direction, s in (("input", cost.usd_per_m_input_tokens), ("output", cost.usd_per_m_output_tokens)):
                    if s is not None:
                        serve.add_metric(base + [direction], s.point)
        yield from (train_usd, train_h, serve)
        yield CounterMetricFamily("meter_results_runs_ingested", "Run files taken in", value=r.runs_ingested)
        if r.last_run_timestamp is not None:
            yield GaugeMetricFamily(
                "meter_results_last_run_timestamp_seconds",
                "When the latest run file was taken in",
                value=r.last_run_timestamp,
            )


def _where(origin) -> list[str]:
    return [origin.hostname, origin.uuid, origin.device]


def _order(figures) -> tuple:
    return tuple(str(v) for v in dataclasses.astuple(figures))
