"""Build deploy/grafana/dashboards/gpu-cost-meter.json (run: python deploy/grafana/build_dashboard.py).

The committed JSON is this script's output; tests/deploy checks that they agree, that every query
parses and returns data from a real Prometheus scraping the exporter, and the linter rules below.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("dashboards") / "gpu-cost-meter.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
GPU = 'hostname=~"$hostname", gpu=~"$gpu"'
HOST = 'hostname=~"$hostname"'

_ids = iter(range(1, 1000))


def target(expr: str, legend: str = "", *, instant: bool = False, ref: str = "A") -> dict:
    t = {
        "refId": ref,
        "datasource": DS,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
    }
    if instant:
        t["format"] = "table"
    return t


def panel(
    kind: str,
    title: str,
    targets: list[dict],
    *,
    x: int,
    y: int,
    w: int,
    h: int,
    unit: str = "short",
    description: str = "",
    options: dict | None = None,
    overrides: list | None = None,
) -> dict:
    return {
        "id": next(_ids),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": overrides or []},
        "options": options or {},
    }


def row(title: str, y: int) -> dict:
    return {
        "id": next(_ids),
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
    }


def stat(title: str, expr: str, unit: str, *, x: int, y: int, description: str) -> dict:
    return panel(
        "stat",
        title,
        [target(expr)],
        x=x,
        y=y,
        w=4,
        h=4,
        unit=unit,
        description=description,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
        },
    )


def timeseries(
    title: str, targets: list[dict], unit: str, *, x: int, y: int, w: int = 12, description: str = ""
) -> dict:
    return panel(
        "timeseries",
        title,
        targets,
        x=x,
        y=y,
        w=w,
        h=8,
        unit=unit,
        description=description,
        options={
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi"},
        },
    )


def table(title: str, targets: list[dict], *, x: int, y: int, w: int = 24, h: int = 8, description: str = "") -> dict:
    return panel("table", title, targets, x=x, y=y, w=w, h=h, description=description, options={"showHeader": True})


def variable(name: str, label: str, query: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": name},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
        "hide": 0,
    }


def build() -> dict:
    y = 0
    panels = [row("Fleet cost", y)]
    y += 1
    panels += [
        stat(
            "Fleet $ per hour",
            f"sum(meter_gpu_price_usd_per_hour{{{HOST}}})",
            "currencyUSD",
            x=0,
            y=y,
            description="Rental price of every GPU answering on the selected hosts, per hour.",
        ),
        stat(
            "Rental $ so far",
            f"sum(increase(meter_gpu_rental_usd_total{{{HOST}}}[$__range]))",
            "currencyUSD",
            x=4,
            y=y,
            description="Rental dollars accrued over the dashboard's time range (survives exporter restarts).",
        ),
        stat(
            "Idle GPUs $ per hour",
            f"sum(meter:gpu_idle_usd_per_hour:sum_by_owner{{{HOST}}}) or vector(0)",
            "currencyUSD",
            x=8,
            y=y,
            description="Price of every GPU under 5% busy (MIG GPUs: without a process): what idleness costs.",
        ),
        stat(
            "Electricity $ per hour",
            f"sum(rate(meter_gpu_energy_usd_total{{{HOST}}}[$__rate_interval])) * 3600",
            "currencyUSD",
            x=12,
            y=y,
            description="Energy x $/kWh x PUE, as configured on the exporters.",
        ),
        stat(
            "Fleet power",
            f"sum(meter:gpu_power_watts:rate5m{{{HOST}}})",
            "watt",
            x=16,
            y=y,
            description="From the energy counters, averaged over 5 minutes.",
        ),
        stat(
            "GPUs up",
            f"sum(meter_gpu_up{{{HOST}}})",
            "short",
            x=20,
            y=y,
            description="GPUs answering NVML; a lost GPU counts 0 and fires MeterGpuLost.",
        ),
    ]
    y += 4
    panels.append(
        timeseries(
            "Dollars per hour by host",
            [
                target(f"sum by (hostname) (meter_gpu_price_usd_per_hour{{{HOST}}})", "{{hostname}} rental", ref="A"),
                target(
                    f"sum by (hostname) (rate(meter_gpu_energy_usd_total{{{HOST}}}[$__rate_interval])) * 3600",
                    "{{hostname}} electricity",
                    ref="B",
                ),
            ],
            "currencyUSD",
            x=0,
            y=y,
            description="Rental rate and electricity per host.",
        )
    )
    panels.append(
        timeseries(
            "Dollars so far by host",
            [
                target(
                    f"sum by (hostname) (increase(meter_gpu_rental_usd_total{{{HOST}}}[$__range]))",
                    "{{hostname}} rental",
                    ref="A",
                ),
                target(
                    f"sum by (hostname) (increase(meter_gpu_energy_usd_total{{{HOST}}}[$__range]))",
                    "{{hostname}} electricity",
                    ref="B",
                ),
            ],
            "currencyUSD",
            x=12,
            y=y,
            description="Increase over the dashboard's time range of the dollars accrued.",
        )
    )
    y += 8
    panels += [
        timeseries(
            "Idle dollars by namespace",
            [
                target(
                    f"sum by (namespace) (meter:gpu_idle_usd_per_hour:sum_by_owner{{{HOST}}})",
                    "{{namespace}}",
                )
            ],
            "currencyUSD",
            x=0,
            y=y,
            description="Per hour, the price of idle GPUs held by each namespace's pods (kubelet pod-resources); "
            "no namespace: GPUs no pod holds.",
        ),
        timeseries(
            "Rental dollars by namespace",
            [
                target(
                    f"sum by (namespace) (meter:gpu_rental_usd_per_hour:sum_by_owner{{{HOST}}})",
                    "{{namespace}}",
                )
            ],
            "currencyUSD",
            x=12,
            y=y,
            description="Per hour, the price of the GPUs each namespace's pods hold.",
        ),
    ]
    y += 8
    panels.append(row("GPUs", y))
    y += 1
    panels += [
        timeseries(
            "Utilization",
            [target(f"meter_gpu_utilization_ratio{{{GPU}}}", "{{hostname}} gpu {{gpu}}")],
            "percentunit",
            x=0,
            y=y,
            description="Share of time a kernel ran (NVML), not SM occupancy: see Tensor-core activity.",
        ),
        timeseries(
            "Power",
            [
                target(f"meter_gpu_power_watts{{{GPU}}}", "{{hostname}} gpu {{gpu}}", ref="A"),
                target(f"meter_gpu_power_limit_watts{{{GPU}}}", "{{hostname}} gpu {{gpu}} limit", ref="B"),
            ],
            "watt",
            x=12,
            y=y,
        ),
    ]
    y += 8
    panels += [
        timeseries(
            "Energy (power from the counter)",
            [target(f"rate(meter_gpu_energy_joules_total{{{GPU}}}[$__rate_interval])", "{{hostname}} gpu {{gpu}}")],
            "watt",
            x=0,
            y=y,
            description="Joules per second from NVML's energy counter.",
        ),
        timeseries(
            "SM clock",
            [target(f"meter_gpu_sm_clock_hertz{{{GPU}}}", "{{hostname}} gpu {{gpu}}")],
            "hertz",
            x=12,
            y=y,
            description="Clocks drop under power or thermal limits: see Throttling.",
        ),
    ]
    y += 8
    panels += [
        timeseries(
            "Throttling",
            [
                target(
                    f'meter_gpu_clock_event_reason_active{{{GPU}, throttling="true"}} == 1',
                    "{{hostname}} gpu {{gpu}} {{reason}}",
                )
            ],
            "short",
            x=0,
            y=y,
            description="Active clock-event reasons that mean power or heat pulled the clocks down.",
        ),
        timeseries(
            "Memory used",
            [
                target(
                    f"meter_gpu_memory_used_bytes{{{GPU}}} / meter_gpu_memory_total_bytes{{{GPU}}}",
                    "{{hostname}} gpu {{gpu}}",
                )
            ],
            "percentunit",
            x=12,
            y=y,
        ),
    ]
    y += 8
    panels += [
        timeseries(
            "Tensor-core and SM activity (GPM)",
            [
                target(f"meter_gpu_tensor_activity_ratio{{{GPU}}}", "{{hostname}} gpu {{gpu}} tensor", ref="A"),
                target(f"meter_gpu_sm_activity_ratio{{{GPU}}}", "{{hostname}} gpu {{gpu}} SM", ref="B"),
                target(
                    f"meter_gpu_dram_bandwidth_utilization_ratio{{{GPU}}}", "{{hostname}} gpu {{gpu}} DRAM", ref="C"
                ),
            ],
            "percentunit",
            x=0,
            y=y,
            description="NVML GPU Performance Monitoring (Hopper and newer): what 100% utilization is doing.",
        ),
        table(
            "GPU health",
            [
                target(f"meter_gpu_xid_events_total{{{GPU}}}", instant=True, ref="A"),
                target(f"meter_gpu_ecc_errors_total{{{GPU}}}", instant=True, ref="B"),
                target(f"meter_gpu_remapped_rows_total{{{GPU}}}", instant=True, ref="C"),
                target(f"meter_gpu_row_remap_pending{{{GPU}}}", instant=True, ref="D"),
            ],
            x=12,
            y=y,
            w=12,
            description="XID events, ECC errors and remapped memory rows (alerts: MeterGpuXidErrors, ...).",
        ),
    ]
    y += 8
    panels += [
        timeseries(
            "Temperature",
            [target(f"meter_gpu_temperature_celsius{{{GPU}}}", "{{hostname}} gpu {{gpu}}")],
            "celsius",
            x=0,
            y=y,
        ),
        table(
            "GPU inventory",
            [target(f"meter_gpu_info{{{GPU}}}", instant=True)],
            x=12,
            y=y,
            w=12,
            description="Model, UUID, driver, hardware config and how power is read.",
        ),
    ]
    y += 8
    panels.append(row("Benchmarks and projections", y))
    y += 1
    panels += [
        table(
            "Benchmark cases",
            [
                target("meter_benchmark_achieved_flops_per_second", instant=True, ref="A"),
                target("meter_benchmark_mfu_ratio", instant=True, ref="B"),
                target("meter_benchmark_tokens_per_second", instant=True, ref="C"),
                target("meter_benchmark_joules_per_token", instant=True, ref="D"),
            ],
            x=0,
            y=y,
            description="The latest run handed to the exporters (meter bench --push).",
        ),
    ]
    y += 8
    panels += [
        table(
            "Projected whole model",
            [
                target("meter_projection_tokens_per_second", instant=True, ref="A"),
                target("meter_projection_mfu_ratio", instant=True, ref="B"),
            ],
            x=0,
            y=y,
            w=12,
            description="Layers x measured per-layer time; per GPU.",
        ),
        table(
            "Projected cost of the configured scenarios",
            [
                target("meter_cost_training_usd", instant=True, ref="A"),
                target("meter_cost_training_gpu_hours", instant=True, ref="B"),
                target("meter_cost_serving_usd_per_million_tokens", instant=True, ref="C"),
            ],
            x=12,
            y=y,
            w=12,
            description="What the latest run implies for the exporter's --scenario and --serve-scenario.",
        ),
    ]
    return {
        "title": "gpu-cost-meter: GPU fleet, power and cost",
        "uid": "gpu-cost-meter-fleet",
        "description": "Utilization, power, energy, throttling, dollars per hour and so far, benchmark results "
        "and projections, from gpu-cost-meter exporters.",
        "tags": ["gpu", "cost", "gpu-cost-meter"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                },
                variable("hostname", "host", "label_values(meter_gpu_up, hostname)"),
                variable("gpu", "GPU", 'label_values(meter_gpu_up{hostname=~"$hostname"}, gpu)'),
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT}")
