"""The Prometheus collector: builds fresh metric families from the exporter's state at each scrape.

Names follow Prometheus's rules: a ``meter_`` prefix, base units (ratio, watts, joules, hertz,
bytes, celsius, seconds), ``_total`` on counters, ``_info`` for metadata; money in ``_usd``. A field
a GPU does not support is absent for that GPU, never 0; a lost GPU keeps only ``meter_gpu_up 0``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from meter import __version__
from meter.device.nvml import CLOCK_EVENT_REASONS, THROTTLING_REASONS
from meter.exporter.state import ExporterState

GPU_LABELS = ["gpu", "uuid", "model", "hostname"]

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
]


class MeterCollector:
    """A prometheus_client collector (``collect()`` yields metric families) over an ExporterState."""

    def __init__(self, state: ExporterState):
        self.state = state

    def describe(self) -> list:
        return []  # no describe-time collect: registering must not read the state

    def collect(self) -> Iterator[Metric]:
        s = self.state
        with s.lock:
            accounts = [
                (
                    a,
                    s.sampler.rings[a.key].latest(),
                    s.sampler.lost.get(a.key),
                    a.energy_since_start_j,
                    a.counter_resets,
                    a.last_energy_j is not None,
                )
                for a in s.accounts.values()
            ]
            results = {
                "cases": dict(s.results.cases),
                "projections": dict(s.results.projections),
                "costs": dict(s.results.costs),
                "runs": s.results.runs_ingested,
                "last": s.results.last_run_timestamp,
            }
        uptime = s.uptime_s()
        yield from self._gpus(accounts, uptime)
        yield from self._results(results)
        info = InfoMetricFamily("meter_exporter_build", "gpu-cost-meter exporter version", labels=["version"])
        info.add_metric([__version__], {})
        yield info
        yield GaugeMetricFamily("meter_exporter_uptime_seconds", "Seconds since the exporter started", value=uptime)
        yield CounterMetricFamily(
            "meter_exporter_sampler_ticks", "Telemetry sampling rounds done", value=s.sampler.ticks
        )

    def _gpus(self, accounts, uptime: float) -> Iterator[Metric]:
        s = self.state
        up = GaugeMetricFamily("meter_gpu_up", "1 while the GPU answers NVML, 0 once it is lost", labels=GPU_LABELS)
        info = InfoMetricFamily(
            "meter_gpu",
            "The GPU's identity",
            labels=GPU_LABELS
            + ["pci_bus_id", "driver_version", "hardware_config", "architecture", "power_semantics", "mig"],
        )
        gauges = {name: GaugeMetricFamily(name, help_, labels=GPU_LABELS) for name, help_, _ in READING_GAUGES}
        energy = CounterMetricFamily(
            "meter_gpu_energy_joules", "The driver's energy counter (since the driver loaded)", labels=GPU_LABELS
        )
        events = GaugeMetricFamily(
            "meter_gpu_clock_event_reason_active",
            "1 while a clock-event (throttle) reason is active, 0 otherwise",
            labels=GPU_LABELS + ["reason", "throttling"],
        )
        age = GaugeMetricFamily("meter_gpu_sample_age_seconds", "Age of the latest telemetry sample", labels=GPU_LABELS)
        price = GaugeMetricFamily(
            "meter_gpu_price_usd_per_hour",
            "Configured rental price of this GPU per hour",
            labels=GPU_LABELS + ["source"],
        )
        rental = CounterMetricFamily(
            "meter_gpu_rental_usd", "Rental dollars accrued since the exporter started", labels=GPU_LABELS
        )
        energy_usd = CounterMetricFamily(
            "meter_gpu_energy_usd",
            "Electricity dollars since the exporter started (energy x $/kWh x PUE)",
            labels=GPU_LABELS,
        )
        resets = CounterMetricFamily(
            "meter_gpu_energy_resets", "Times the driver's energy counter restarted (driver reloads)", labels=GPU_LABELS
        )
        now = time.monotonic()
        for account, reading, lost, since_start_j, counter_resets, has_energy in accounts:
            ident = account.gpu.identity
            labels = [str(account.gpu.index), ident.uuid, ident.name, s.hostname]
            up.add_metric(labels, 0.0 if lost else 1.0)
            info.add_metric(
                labels
                + [
                    ident.pci_bus_id or "",
                    s.driver_version or "",
                    account.hardware_config or "",
                    account.gpu.architecture,
                    account.gpu.power_semantics,
                    "true" if ident.mig_enabled else "false",
                ],
                {},
            )
            if account.usd_per_hour is not None:
                price.add_metric(labels + [account.price_source or ""], account.usd_per_hour)
                rental.add_metric(labels, account.usd_per_hour * uptime / 3600.0)
            if s.usd_per_kwh is not None and has_energy:
                energy_usd.add_metric(labels, since_start_j / 3.6e6 * s.usd_per_kwh * s.pue)
            resets.add_metric(labels, counter_resets)
            if lost or reading is None:
                continue
            age.add_metric(labels, now - reading.t_s)
            for name, _, attr in READING_GAUGES:
                value = getattr(reading, attr)
                if value is not None:
                    gauges[name].add_metric(labels, float(value))
            if reading.energy_j is not None:
                energy.add_metric(labels, reading.energy_j)
            if reading.clock_event_mask is not None:
                for bit, reason in CLOCK_EVENT_REASONS.items():
                    throttling = "true" if reason in THROTTLING_REASONS else "false"
                    events.add_metric(labels + [reason, throttling], 1.0 if reading.clock_event_mask & bit else 0.0)
        yield from [up, info, *gauges.values(), energy, events, age, price, rental, energy_usd, resets]

    def _results(self, r) -> Iterator[Metric]:
        labels = ["model", "case", "phase", "device"]
        fams = {
            "flops": GaugeMetricFamily(
                "meter_benchmark_achieved_flops_per_second",
                "Achieved FLOP/s of a benchmark case (analytic FLOPs / median time)",
                labels=labels,
            ),
            "mfu": GaugeMetricFamily(
                "meter_benchmark_mfu_ratio", "MFU of a case against the dense bf16 peak", labels=labels
            ),
            "tps": GaugeMetricFamily("meter_benchmark_tokens_per_second", "Tokens per second of a case", labels=labels),
            "jpt": GaugeMetricFamily("meter_benchmark_joules_per_token", "Energy per token of a case", labels=labels),
        }
        for (model, case, phase), v in sorted(r["cases"].items()):
            values = [model, case, phase, v["device"]]
            fams["flops"].add_metric(values, v["tflops"] * 1e12)
            fams["tps"].add_metric(values, v["tokens_per_second"])
            if v["mfu"] is not None:
                fams["mfu"].add_metric(values, v["mfu"])
            if v["joules_per_token"] is not None:
                fams["jpt"].add_metric(values, v["joules_per_token"])
        yield from fams.values()
        p_labels = ["model", "phase", "shape", "device"]
        p_tps = GaugeMetricFamily(
            "meter_projection_tokens_per_second",
            "Whole-model tokens per second per GPU, projected from per-layer results",
            labels=p_labels,
        )
        p_mfu = GaugeMetricFamily("meter_projection_mfu_ratio", "Projected whole-model MFU", labels=p_labels)
        for (model, phase, shape), v in sorted(r["projections"].items()):
            p_tps.add_metric([model, phase, shape, v["device"]], v["tokens_per_second"])
            if v["mfu"] is not None:
                p_mfu.add_metric([model, phase, shape, v["device"]], v["mfu"])
        yield from (p_tps, p_mfu)
        c_labels = ["scenario", "model", "hardware"]
        train_usd = GaugeMetricFamily(
            "meter_projection_training_usd", "Projected training cost of a scenario (rental)", labels=c_labels
        )
        train_h = GaugeMetricFamily(
            "meter_projection_training_gpu_hours", "Projected training GPU-hours of a scenario", labels=c_labels
        )
        serve = GaugeMetricFamily(
            "meter_projection_serving_usd_per_million_tokens",
            "Projected serving cost per million tokens",
            labels=c_labels + ["direction"],
        )
        for (kind, scenario), v in sorted(r["costs"].items()):
            base, out = [scenario, v["model"], v["hardware"]], v["outputs"]
            if kind == "train":
                if "total_usd" in out:
                    train_usd.add_metric(base, out["total_usd"])
                if "total_gpu_hours" in out:
                    train_h.add_metric(base, out["total_gpu_hours"])
            else:
                for direction, key in (("input", "usd_per_m_input_tokens"), ("output", "usd_per_m_output_tokens")):
                    if key in out:
                        serve.add_metric(base + [direction], out[key])
        yield from (train_usd, train_h, serve)
        yield CounterMetricFamily("meter_results_runs_ingested", "Run files taken in", value=r["runs"])
        if r["last"] is not None:
            yield GaugeMetricFamily(
                "meter_results_last_run_timestamp_seconds", "When the latest run file was taken in", value=r["last"]
            )
