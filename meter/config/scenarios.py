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

from meter.config.hardware import PeakDtype
from meter.config.paths import ConfigLocator
from meter.config.quantity import Confidence, Quantity
from meter.config.schema import INTERNAL, between, build_dataclass, check_name_matches_file, gt, read_yaml
from meter.domains import Domain
from meter.errors import ConfigError

# name: (unit, meaning). Units are in the names where the name carries one.
TRAIN_INPUTS: dict[str, tuple[str, str]] = {
    "usd_per_gpu_hour": ("USD", "rental price per GPU-hour"),
    "mfu": ("ratio", "achieved FLOP/s over the dense peak of mfu_dtype (bf16 by default), end to end"),
    "achieved_tflops": ("TFLOP/s", "achieved FLOP/s per GPU end to end, in TFLOP/s (instead of an mfu)"),
    "measured_efficiency": (
        "ratio",
        "achieved over the run's basis by its training layers (a measured run; a distribution from their timing)",
    ),
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
    "prefill_tokens_per_s_per_gpu": ("tokens/s", "computed (cache-miss) input tokens per GPU per second"),
    "decode_tokens_per_s_per_gpu": ("tokens/s", "output tokens generated per GPU"),
    "efficiency": ("ratio", "share of the deployment's bound reached, in both phases (given with --efficiency)"),
    "compute_efficiency": ("ratio", "share of the compute roof that compute-bound work reaches (measured by a run)"),
    "memory_efficiency": ("ratio", "share of the memory bandwidth that memory-bound work reaches (measured by a run)"),
    "input_tokens_per_day": ("tokens", "input tokens per day"),
    "output_tokens_per_day": ("tokens", "output tokens per day"),
    "cache_hit_rate": ("ratio", "share of input tokens served from the prompt (KV) cache"),
    "cache_hit_cost_ratio": ("ratio", "GPU time of a cached input token relative to a computed one"),
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
# Where an input makes sense, as the same Domain the command line's flags use. Every input has one (a
# test checks), and each keeps the cost model's denominators away from zero: a price, a life, a
# utilization, a rate, an efficiency or a fleet is never 0, a pipeline bubble never 1.
POSITIVE = Domain(0, None, low_inclusive=False)
NON_NEGATIVE = Domain(0, None)
RATIO = Domain(0, 1, low_inclusive=False)  # an efficiency or a utilization: above 0, at most 1
SHARE = Domain(0, 1)
AT_LEAST_ONE = Domain(1, None)
INPUT_DOMAINS: dict[str, Domain] = {
    "mfu": RATIO,
    "compute_mfu": RATIO,
    "achieved_tflops": POSITIVE,
    "measured_efficiency": RATIO,
    "pipeline_bubble": Domain(0, 1, high_inclusive=False),
    "exposed_communication": NON_NEGATIVE,
    "comm_overlap": SHARE,
    "nvlink_efficiency": RATIO,
    "network_efficiency": RATIO,
    "ep_degree": AT_LEAST_ONE,
    "gpus_per_node": AT_LEAST_ONE,
    "max_nodes_per_token": AT_LEAST_ONE,
    "dispatch_bytes_per_value": POSITIVE,
    "nvlink_bytes_per_s": POSITIVE,
    "network_bytes_per_s": POSITIVE,
    "cache_hit_rate": SHARE,
    "serving_utilization": RATIO,
    "efficiency": RATIO,
    "compute_efficiency": RATIO,
    "memory_efficiency": RATIO,
    "utilization": RATIO,
    "usd_per_gpu_hour": POSITIVE,
    "gpus": AT_LEAST_ONE,
    "pue": AT_LEAST_ONE,
    "depreciation_years": POSITIVE,
    "recompute_factor": AT_LEAST_ONE,
    "prefill_tokens_per_s_per_gpu": POSITIVE,
    "decode_tokens_per_s_per_gpu": POSITIVE,
    "avg_power_w": NON_NEGATIVE,
    "usd_per_kwh": NON_NEGATIVE,
    "gpu_capex_usd": NON_NEGATIVE,
    "server_network_overhead": NON_NEGATIVE,
    "server_power_overhead": NON_NEGATIVE,
    "colocation_usd_per_kw_month": NON_NEGATIVE,
    "experiment_multiplier": NON_NEGATIVE,
    "data_usd": NON_NEGATIVE,
    "staff_count": NON_NEGATIVE,
    "staff_usd_per_year": NON_NEGATIVE,
    "programme_years": NON_NEGATIVE,
    "fleet_gpus": AT_LEAST_ONE,
    "fleet_capex_usd": POSITIVE,
    "input_tokens_per_day": NON_NEGATIVE,
    "output_tokens_per_day": NON_NEGATIVE,
    "cache_hit_cost_ratio": SHARE,
    "mtp_overhead": NON_NEGATIVE,
    "head_embedding_overhead": NON_NEGATIVE,
    "price_input_hit_usd_per_m": NON_NEGATIVE,
    "price_input_miss_usd_per_m": NON_NEGATIVE,
    "price_output_usd_per_m": NON_NEGATIVE,
}
# A stage's size (tokens, GPU-hours, hours): above 0, as a stage of nothing is a mistake.
STAGE_SIZES = ("tokens", "gpu_hours", "hours")
STAGE_DOMAIN = POSITIVE


def domain_of(name: str) -> Domain | None:
    """The domain of an input, or of a stage's size (``stage.pre-training.tokens``); None if unknown."""
    return INPUT_DOMAINS.get(name) or (STAGE_DOMAIN if name.split(".")[-1] in STAGE_SIZES else None)


def domain_error(name: str, q: Quantity) -> str | None:
    """Why ``q`` (a point, or every value of its range) is out of ``name``'s domain, or None:
    ``must lie in (0, 1]``, the interval written out."""
    domain = domain_of(name)
    if domain is None:
        return None
    lo, hi = q.bounds
    if domain.problem(lo) is None and domain.problem(hi) is None:
        return None
    left, right = "[" if domain.low_inclusive else "(", "]" if domain.high_inclusive else ")"
    low = "-inf" if domain.low is None else f"{domain.low:g}"
    high = "inf" if domain.high is None else f"{domain.high:g}"
    return f"must lie in {left}{low}, {high}{right}"


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
    "training_flops",
    "achieved_flops_per_s_per_gpu",
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
    "prefill_tokens_per_s_per_gpu",
    "decode_bound_tokens_per_s_per_gpu",
    "prefill_bound_tokens_per_s_per_gpu",
    "decode_efficiency",
    "prefill_efficiency",
    "implied_decode_efficiency",
    "implied_prefill_efficiency",
    "usd_per_m_output_tokens_at_bound",
    "usd_per_m_input_tokens_at_bound",
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
class Correlation:
    """Two inputs that move together: Spearman's rank correlation ``rho`` between their draws."""

    inputs: list[str]
    rho: float = field(metadata=between(-1, 1))
    source: str
    date: dt.date
    confidence: Confidence


@dataclass(frozen=True, kw_only=True)
class Reported:
    """A published figure set beside the value computed from the scenario's inputs.

    ``kind`` says what agreeing means: ``independent`` when the inputs do not contain the answer
    (FLOPs counted from the architecture against the published total), ``consistency`` when the
    computation restates inputs (cost per day = GPUs x 24 h x price); ``note`` says which.
    ``rel_tol`` says how close counts as agreeing.
    """

    output: str
    value: float
    kind: Literal["independent", "consistency"]
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
    mfu_dtype: PeakDtype = "bf16"  # the dense peak an MFU is against (DeepSeek's: bf16, even for fp8 GEMMs)
    deployment: str | None = None  # serving: the layout in configs/deployments whose bound the cost can use
    stages: list[Stage] = field(default_factory=list)
    assumptions: Mapping[str, Assumption] = field(default_factory=dict)
    correlations: list[Correlation] = field(default_factory=list)
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
    for i, st in enumerate(s.stages):
        for size in STAGE_SIZES:
            q = getattr(st, size)
            why = domain_error(size, q) if q is not None else None
            if why:
                raise ConfigError(path, f"stages[{i}].{size}", why, q.describe())
    for i, c in enumerate(s.correlations):
        why = correlation_error(c.inputs, known_inputs)
        if why:
            raise ConfigError(path, f"correlations[{i}].inputs", why, c.inputs)
    for name, rep in s.reported.items():
        if rep.kind == "consistency" and not rep.note:
            raise ConfigError(path, f"reported.{name}.note", "a consistency check needs a note saying what it restates")
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
    if s.deployment is not None:
        _check_deployment(s, path, locator)
    if s.kind == "train" and s.deployment is not None:
        raise ConfigError(path, "deployment", "a training scenario has no serving deployment", s.deployment)
    if s.builds_on is not None and s.builds_on not in locator.names("scenarios"):
        raise ConfigError(path, "builds_on", "no such scenario", s.builds_on)
    for kind, name in (("models", s.model), ("hardware", s.hardware)):
        if not locator.exists(kind, name):
            raise ConfigError(path, "model" if kind == "models" else "hardware", f"no such {kind} config", name)


def _check_deployment(s: Scenario, path: Path, locator: ConfigLocator) -> None:
    from meter.config.deployments import load_deployment

    if s.deployment not in locator.names("deployments"):
        raise ConfigError(
            path,
            "deployment",
            "no such deployment config" + _hint(s.deployment, locator.names("deployments")),
            s.deployment,
        )
    d = load_deployment(s.deployment, locator)
    for field_name in ("model", "hardware"):
        theirs = getattr(d, field_name)
        if theirs is not None and theirs != getattr(s, field_name):
            raise ConfigError(
                path,
                "deployment",
                f"deployment '{d.name}' serves {field_name} {theirs}, not {getattr(s, field_name)}",
                s.deployment,
            )


def correlation_error(names: list[str], known: Mapping[str, object]) -> str | None:
    """Why a pair of names cannot be correlated (not two distinct inputs of the model), or None."""
    if len(names) != 2 or names[0] == names[1]:
        return "a correlation names two different inputs"
    unknown = [n for n in names if n not in known]
    if unknown:
        return f"'{unknown[0]}' is not an input of this cost model" + _hint(unknown[0], known)
    return None


def _hint(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def list_scenarios(locator: ConfigLocator | None = None) -> dict[str, Path]:
    return (locator or ConfigLocator.from_env()).names("scenarios")
