"""Cost scenarios: ``configs/scenarios/NAME.yaml``.

A scenario names a model and the hardware it ran on, the stages of a training run (in tokens or
GPU-hours) or the load of a serving day, every assumption with its source, date and confidence,
and the figures the authors reported, which the meter must reproduce from those inputs.

The input and output names below are the cost model's vocabulary: an assumption or a reported
figure with any other name is refused (with a did-you-mean), so a typo cannot silently drop out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from meter.config.paths import ConfigLocator
from meter.config.quantity import Quantity
from meter.config.schema import INTERNAL, build_dataclass, check_name_matches_file, gt, read_yaml
from meter.errors import ConfigError

Confidence = Literal["high", "medium", "low"]

# name: (unit, meaning). Units are in the names where the name carries one.
TRAIN_INPUTS: dict[str, tuple[str, str]] = {
    "usd_per_gpu_hour": ("USD", "rental price per GPU-hour"),
    "mfu": ("ratio", "achieved FLOP/s over the dense bf16 peak, end to end (used when no run is given)"),
    "compute_mfu": ("ratio", "FLOP/s of the compute alone over the dense bf16 peak (communication modelled apart)"),
    "ep_degree": ("GPUs", "expert-parallel group size: the GPUs one MoE layer's experts are spread over"),
    "gpus_per_node": ("GPUs", "GPUs per node sharing NVLink"),
    "max_nodes_per_token": ("nodes", "node-limited routing: the most nodes one token's experts may be on"),
    "dispatch_bytes_per_value": ("bytes", "bytes per value of the dispatch payload (fp8 with scales: 1.03125)"),
    "nvlink_bytes_per_s": (
        "bytes/s",
        "NVLink per GPU and direction (default: half the hardware's bidirectional figure)",
    ),
    "network_bytes_per_s": ("bytes/s", "scale-out network per GPU and direction (default: the hardware config's)"),
    "nvlink_efficiency": ("ratio", "achieved over datasheet NVLink bandwidth in the EP all-to-alls"),
    "network_efficiency": ("ratio", "achieved over datasheet scale-out bandwidth in the EP all-to-alls"),
    "comm_overlap": ("ratio", "share of the EP communication hidden behind compute"),
    "pipeline_bubble": ("ratio", "share of step time pipeline stages sit idle"),
    "exposed_communication": ("ratio", "communication not hidden by compute, as a share of compute time"),
    "recompute_factor": ("x", "compute multiplier for recomputed activations"),
    "mtp_overhead": ("ratio", "extra compute of the multi-token-prediction modules (default: analytic)"),
    "head_embedding_overhead": ("ratio", "output head and embedding compute over the layers' (default: analytic)"),
    "gpu_capex_usd": ("USD", "purchase price per GPU"),
    "server_network_overhead": ("ratio", "server, network and storage capex on top of the GPU's"),
    "depreciation_years": ("years", "useful life over which capex is spread"),
    "utilization": ("ratio", "share of owned GPU-hours doing useful work"),
    "avg_power_w": ("W", "average power per GPU while training (measured where available)"),
    "server_power_overhead": ("ratio", "host, network and cooling-free server power on top of the GPU's"),
    "pue": ("ratio", "power usage effectiveness of the data centre"),
    "usd_per_kwh": ("USD", "electricity price per kWh"),
    "colocation_usd_per_kw_month": ("USD", "colocation price per kW of IT load per month"),
    "experiment_multiplier": ("x", "compute of experiments and ablations, as multiples of the final run"),
    "data_usd": ("USD", "data acquisition and preparation"),
    "staff_count": ("people", "researchers and engineers on the programme"),
    "staff_usd_per_year": ("USD", "fully loaded cost per person-year"),
    "programme_years": ("years", "length of the programme"),
    "fleet_gpus": ("GPUs", "GPUs owned (the capex view)"),
    "fleet_capex_usd": ("USD", "capital spent on the GPU fleet (the capex view)"),
}
SERVE_INPUTS: dict[str, tuple[str, str]] = {
    "usd_per_gpu_hour": ("USD", "rental price per GPU-hour"),
    "gpus": ("GPUs", "GPUs deployed (when given; otherwise sized from the load)"),
    "prefill_tokens_per_s_per_gpu": ("tokens/s", "input tokens processed per GPU (cache hits included)"),
    "decode_tokens_per_s_per_gpu": ("tokens/s", "output tokens generated per GPU"),
    "input_tokens_per_day": ("tokens", "input tokens per day"),
    "output_tokens_per_day": ("tokens", "output tokens per day"),
    "cache_hit_rate": ("ratio", "share of input tokens served from the prompt (KV) cache"),
    "cache_hit_cost_ratio": ("ratio", "GPU cost of a cached input token relative to a computed one"),
    "serving_utilization": ("ratio", "share of GPU time doing useful work (load variation, headroom)"),
    "exposed_communication": ("ratio", "communication not hidden by compute, as a share of compute time"),
    "avg_power_w": ("W", "average power per GPU while serving"),
    "server_power_overhead": ("ratio", "server power on top of the GPU's"),
    "pue": ("ratio", "power usage effectiveness"),
    "usd_per_kwh": ("USD", "electricity price per kWh"),
    "price_input_hit_usd_per_m": ("USD", "list price per million cache-hit input tokens"),
    "price_input_miss_usd_per_m": ("USD", "list price per million cache-miss input tokens"),
    "price_output_usd_per_m": ("USD", "list price per million output tokens"),
}
# Where an input makes sense: (low, high, low inclusive, high inclusive); None is unbounded.
INPUT_DOMAINS: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "mfu": (0, 1, False, True),
    "compute_mfu": (0, 1, False, True),
    "pipeline_bubble": (0, 1, True, False),
    "exposed_communication": (0, None, True, True),
    "comm_overlap": (0, 1, True, True),
    "nvlink_efficiency": (0, 1, False, True),
    "network_efficiency": (0, 1, False, True),
    "ep_degree": (1, None, True, True),
    "gpus_per_node": (1, None, True, True),
    "max_nodes_per_token": (1, None, True, True),
    "dispatch_bytes_per_value": (0, None, False, True),
    "nvlink_bytes_per_s": (0, None, False, True),
    "network_bytes_per_s": (0, None, False, True),
    "cache_hit_rate": (0, 1, True, True),
    "serving_utilization": (0, 1, False, True),
    "utilization": (0, 1, False, True),
    "usd_per_gpu_hour": (0, None, True, True),
    "gpus": (1, None, True, True),
    "pue": (1, None, True, True),
    "depreciation_years": (0, None, False, True),
    "recompute_factor": (1, None, True, True),
    "prefill_tokens_per_s_per_gpu": (0, None, False, True),
    "decode_tokens_per_s_per_gpu": (0, None, False, True),
    "avg_power_w": (0, None, True, True),
    "usd_per_kwh": (0, None, True, True),
    "gpu_capex_usd": (0, None, True, True),
    "server_network_overhead": (0, None, True, True),
    "server_power_overhead": (0, None, True, True),
    "colocation_usd_per_kw_month": (0, None, True, True),
    "experiment_multiplier": (0, None, True, True),
    "data_usd": (0, None, True, True),
    "staff_count": (0, None, True, True),
    "staff_usd_per_year": (0, None, True, True),
    "programme_years": (0, None, True, True),
    "fleet_gpus": (1, None, True, True),
    "fleet_capex_usd": (0, None, True, True),
    "input_tokens_per_day": (0, None, True, True),
    "output_tokens_per_day": (0, None, True, True),
    "cache_hit_cost_ratio": (0, 1, True, True),
    "mtp_overhead": (0, None, True, True),
    "head_embedding_overhead": (0, None, True, True),
    "price_input_hit_usd_per_m": (0, None, True, True),
    "price_input_miss_usd_per_m": (0, None, True, True),
    "price_output_usd_per_m": (0, None, True, True),
}


def domain_error(name: str, q: Quantity) -> str | None:
    """Why ``q`` is out of ``name``'s domain, or None when it is in."""
    if name not in INPUT_DOMAINS:
        return None
    low, high, low_in, high_in = INPUT_DOMAINS[name]
    lo, hi = q.bounds
    bad_low = low is not None and (lo < low if low_in else lo <= low)
    bad_high = high is not None and (hi > high if high_in else hi >= high)
    if not (bad_low or bad_high):
        return None
    left = "[" if low_in else "("
    right = "]" if high_in else ")"
    return f"must lie in {left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}{right}"


TRAIN_OUTPUTS = (
    "total_gpu_hours",
    "total_usd",
    "pretraining_gpu_hours",
    "pretraining_usd",
    "gpu_hours_per_trillion_tokens",
    "days_per_trillion_tokens_on_cluster",
    "days_on_cluster",
    "mfu",
    "energy_kwh",
    "energy_usd",
    "ownership_usd_per_gpu_hour",
    "ownership_usd",
    "programme_usd",
    "final_run_share_of_programme",
    "final_run_share_of_fleet_capex",
    "fleet_capex_usd",
    "fleet_capex_per_gpu_usd",
    "stage_gpu_hours",
    "stage_usd",
    "cumulative_usd",
    "implied_mfu",
    "compute_s_per_token",
    "ep_comm_s_per_token",
    "exposed_comm_s_per_token",
    "ep_network_s_per_token",
    "ep_nvlink_s_per_token",
)
SERVE_OUTPUTS = (
    "usd_per_day",
    "revenue_usd_per_day",
    "cost_profit_margin",
    "usd_per_m_output_tokens",
    "usd_per_m_input_tokens",
    "usd_per_m_input_tokens_miss",
    "gpus_needed",
    "joules_per_output_token",
    "joules_per_input_token",
    "energy_usd_per_m_output_tokens",
    "output_tokens_per_s_per_gpu",
)


@dataclass(frozen=True, kw_only=True)
class Assumption:
    value: Quantity
    source: str
    date: dt.date
    confidence: Confidence
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One stage of a training run, sized by tokens, by GPU-hours, or by GPUs x hours."""

    name: str
    tokens: Quantity | None = None
    gpu_hours: Quantity | None = None
    gpus: int | None = field(default=None, metadata=gt(0))
    hours: Quantity | None = None
    seq_len: int | None = field(default=None, metadata=gt(0))
    source: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Reported:
    """A published figure the scenario reproduces; ``rel_tol`` says how close counts as reproduced."""

    output: str
    value: float
    source: str
    date: dt.date
    rel_tol: float = field(default=0.01, metadata=gt(0))
    stage: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    description: str
    kind: Literal["train", "serve"]
    model: str
    hardware: str
    seq_len: int = field(default=4096, metadata=gt(0))
    cluster_gpus: int | None = field(default=None, metadata=gt(0))
    decode_context: int | None = field(default=None, metadata=gt(0))
    stages: list[Stage] = field(default_factory=list)
    assumptions: Mapping[str, Assumption] = field(default_factory=dict)
    reported: Mapping[str, Reported] = field(default_factory=dict)
    leaves_out: list[str] = field(default_factory=list)
    builds_on: str | None = None  # a training scenario whose cost this one adds to
    path: Path | None = field(default=None, metadata=INTERNAL, compare=False)

    @property
    def inputs(self) -> dict[str, tuple[str, str]]:
        return TRAIN_INPUTS if self.kind == "train" else SERVE_INPUTS


def load_scenario(name_or_path: str, locator: ConfigLocator | None = None) -> Scenario:
    locator = locator or ConfigLocator.from_env()
    path = locator.find("scenarios", name_or_path)
    scenario = build_dataclass(Scenario, read_yaml(path), path=path)
    check_name_matches_file(scenario.name, path)
    _check(scenario, path, locator)
    return dataclasses.replace(scenario, path=path)


def _check(s: Scenario, path: Path, locator: ConfigLocator) -> None:
    known_inputs, known_outputs = s.inputs, TRAIN_OUTPUTS if s.kind == "train" else SERVE_OUTPUTS
    for name in s.assumptions:
        if name not in known_inputs:
            raise ConfigError(
                path, f"assumptions.{name}", "not an input of the " + s.kind + " cost model" + _hint(name, known_inputs)
            )
        why = domain_error(name, s.assumptions[name].value)
        if why:
            raise ConfigError(path, f"assumptions.{name}.value", why, s.assumptions[name].value.describe())
    for name, rep in s.reported.items():
        if rep.output not in known_outputs:
            raise ConfigError(
                path,
                f"reported.{name}.output",
                "not an output of the " + s.kind + " cost model" + _hint(rep.output, known_outputs),
                rep.output,
            )
        if rep.output.startswith("stage_") and rep.stage is None:
            raise ConfigError(path, f"reported.{name}.stage", f"{rep.output} needs the stage it belongs to")
        if rep.stage is not None and rep.stage not in {st.name for st in s.stages}:
            raise ConfigError(path, f"reported.{name}.stage", "names no stage", rep.stage)
    if s.kind == "train" and not s.stages:
        raise ConfigError(path, "stages", "a training scenario needs at least one stage")
    for i, st in enumerate(s.stages):
        ways = [st.tokens is not None, st.gpu_hours is not None, st.gpus is not None or st.hours is not None]
        if sum(ways) != 1:
            raise ConfigError(path, f"stages[{i}]", "give exactly one of tokens, gpu_hours, or gpus with hours")
        if (st.gpus is None) != (st.hours is None):
            raise ConfigError(path, f"stages[{i}]", "gpus and hours go together")
    if s.builds_on is not None and s.builds_on not in locator.names("scenarios"):
        raise ConfigError(path, "builds_on", "no such scenario", s.builds_on)
    for kind, name in (("models", s.model), ("hardware", s.hardware)):
        if name not in locator.names(kind):
            raise ConfigError(path, "model" if kind == "models" else "hardware", f"no such {kind} config", name)


def _hint(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def list_scenarios(locator: ConfigLocator | None = None) -> dict[str, Path]:
    return (locator or ConfigLocator.from_env()).names("scenarios")
