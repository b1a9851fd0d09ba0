"""The training cost model: stages -> GPU-hours -> rental dollars, energy, ownership, programme.

Pure arithmetic over inputs that are floats or numpy arrays of Monte Carlo samples (they
broadcast). An output whose inputs are not given is left out, not guessed.

GPU-seconds per token come from the rate the costing method chose (``TrainContext.rate``):

- end to end, ``flops_per_token / (mfu x peak)`` or ``flops_per_token / achieved FLOP/s``, where
  the peak is the dense peak of the MFU's dtype (bf16 unless the scenario says otherwise);
- composed from compute and communication:

  - compute: a measured run's layers, ``work / measured_efficiency x (1 + head_embedding) x
    (1 + mtp) x recompute`` (``work``: the layers' seconds at 100% of the run's basis), or the
    FLOPs at a compute-only MFU, ``flops_per_token x (1 + mtp) x recompute / (compute_mfu x peak)``;
  - exposed communication: the expert-parallel model (``meter.cost.ep_comm``) when the context
    has one, otherwise ``compute x exposed_communication``;
  - ``(compute + exposed communication) / (1 - pipeline_bubble)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meter.cost.ep_comm import EpShape, training_comm_seconds_per_token

HOURS_PER_YEAR = 8766.0  # 365.25 days


@dataclass(frozen=True)
class StagePlan:
    """A stage as the model sees it: how it is sized, and its FLOPs or measured work per token."""

    name: str
    sized_by: str  # "tokens", "gpu_hours" or "gpus_hours"
    gpus: int | None = None
    flops_per_token: float | None = None  # analytic, at the stage's sequence length
    measured_work_s: float | None = None  # the run's layers at 100% of its basis, GPU-seconds per token


@dataclass(frozen=True)
class TrainContext:
    stages: list[StagePlan]
    peak_flops: float  # dense peak of the MFU's dtype, FLOP/s
    rate: str = "mfu"  # the input that sets the rate: mfu, achieved_tflops, compute_mfu, measured_efficiency
    cluster_gpus: int | None = None
    pretraining: str | None = None  # the stage whose tokens give per-trillion figures
    ep: EpShape | None = None  # for the expert-parallel communication model (MoE models)
    notes: list[str] = field(default_factory=list)


def _extra(x: Mapping[str, Any]) -> Any:
    """What a training step computes beyond the main model's forward and backward once: MTP, recomputation."""
    return (1 + x.get("mtp_overhead", 0.0)) * x.get("recompute_factor", 1.0)


# rate -> GPU-seconds per token of compute (composed rates) or of everything (end-to-end rates)
RATES: dict[str, Any] = {
    "mfu": lambda x, st, ctx: st.flops_per_token / (x["mfu"] * ctx.peak_flops),
    "achieved_tflops": lambda x, st, ctx: st.flops_per_token / (x["achieved_tflops"] * 1e12),
    "compute_mfu": lambda x, st, ctx: st.flops_per_token * _extra(x) / (x["compute_mfu"] * ctx.peak_flops),
    "measured_efficiency": lambda x, st, ctx: (
        st.measured_work_s / x["measured_efficiency"] * (1 + x.get("head_embedding_overhead", 0.0)) * _extra(x)
    ),
}
END_TO_END_RATES = ("mfu", "achieved_tflops")


def token_time(x: Mapping[str, Any], stage: StagePlan, ctx: TrainContext) -> dict[str, Any]:
    """GPU-seconds one training token of this stage takes (``s_per_token``), and its parts."""
    compute = RATES[ctx.rate](x, stage, ctx)
    if ctx.rate in END_TO_END_RATES:
        return {"s_per_token": compute}
    parts: dict[str, Any] = {"compute_s_per_token": compute}
    if ctx.ep is not None:
        parts.update(training_comm_seconds_per_token(x, ctx.ep))
        exposed = parts["exposed_comm_s_per_token"]
    else:
        exposed = compute * x.get("exposed_communication", 0.0)
    parts["s_per_token"] = (compute + exposed) / (1 - x.get("pipeline_bubble", 0.0))
    return parts


def train_cost(x: Mapping[str, Any], ctx: TrainContext) -> dict[str, Any]:
    """All training outputs for inputs ``x`` (floats or sample arrays)."""
    out: dict[str, Any] = {}
    total = flops = 0.0
    for stage in ctx.stages:
        key = f"stage.{stage.name}"
        if stage.sized_by == "tokens":
            parts = token_time(x, stage, ctx)
            s_per_token = parts.pop("s_per_token")
            gpu_hours = x[f"{key}.tokens"] * s_per_token / 3600.0
            flops = flops + x[f"{key}.tokens"] * stage.flops_per_token
            if stage.name == ctx.pretraining:
                out.update(parts)
                out["gpu_hours_per_trillion_tokens"] = s_per_token * 1e12 / 3600.0
                out["achieved_flops_per_s_per_gpu"] = stage.flops_per_token / s_per_token
                out["mfu"] = out["achieved_flops_per_s_per_gpu"] / ctx.peak_flops
                out["pretraining_gpu_hours"] = gpu_hours
                if ctx.cluster_gpus:
                    out["days_per_trillion_tokens_on_cluster"] = (
                        out["gpu_hours_per_trillion_tokens"] / ctx.cluster_gpus / 24
                    )
        elif stage.sized_by == "gpu_hours":
            gpu_hours = x[f"{key}.gpu_hours"]
        else:
            gpu_hours = stage.gpus * x[f"{key}.hours"]
        out[f"stage_gpu_hours.{stage.name}"] = gpu_hours
        total = total + gpu_hours
    out["total_gpu_hours"] = total
    if any(st.sized_by == "tokens" for st in ctx.stages):
        out["training_flops"] = flops
    if ctx.cluster_gpus:
        out["days_on_cluster"] = total / ctx.cluster_gpus / 24
    if "usd_per_gpu_hour" in x:
        price = x["usd_per_gpu_hour"]
        out["total_usd"] = total * price
        for stage in ctx.stages:
            out[f"stage_usd.{stage.name}"] = out[f"stage_gpu_hours.{stage.name}"] * price
        if "pretraining_gpu_hours" in out:
            out["pretraining_usd"] = out["pretraining_gpu_hours"] * price
    out.update(_energy(x, total))
    out.update(_ownership(x, total))
    out.update(_programme(x, out.get("total_usd")))
    return out


def _it_power_kw(x: Mapping[str, Any]) -> Any:
    """Power per GPU drawn at the wall, before PUE: the GPU plus its share of the server."""
    return x["avg_power_w"] * (1 + x.get("server_power_overhead", 0.0)) / 1000.0


def _energy(x: Mapping[str, Any], gpu_hours: Any) -> dict[str, Any]:
    if "avg_power_w" not in x:
        return {}
    kwh = gpu_hours * _it_power_kw(x) * x.get("pue", 1.0)
    out = {"energy_kwh": kwh, "energy_j": kwh * 3.6e6}
    if "usd_per_kwh" in x:
        out["energy_usd"] = kwh * x["usd_per_kwh"]
    return out


def ownership_usd_per_gpu_hour(x: Mapping[str, Any]) -> Any | None:
    """Capex spread over the useful life and the hours actually used, plus energy and colocation."""
    if not all(k in x for k in ("gpu_capex_usd", "depreciation_years", "utilization")):
        return None
    used_hours = x["depreciation_years"] * HOURS_PER_YEAR * x["utilization"]
    cost = x["gpu_capex_usd"] * (1 + x.get("server_network_overhead", 0.0)) / used_hours
    if "avg_power_w" in x and "usd_per_kwh" in x:
        cost = cost + _it_power_kw(x) * x.get("pue", 1.0) * x["usd_per_kwh"]
    if "colocation_usd_per_kw_month" in x and "avg_power_w" in x:
        # colocation is paid for every hour, used or not
        cost = cost + x["colocation_usd_per_kw_month"] * _it_power_kw(x) * 12 / HOURS_PER_YEAR / x["utilization"]
    return cost


def _ownership(x: Mapping[str, Any], gpu_hours: Any) -> dict[str, Any]:
    rate = ownership_usd_per_gpu_hour(x)
    if rate is None:
        return {}
    return {"ownership_usd_per_gpu_hour": rate, "ownership_usd": gpu_hours * rate}


def _programme(x: Mapping[str, Any], final_usd: Any | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "fleet_capex_usd" in x:
        out["fleet_capex_usd"] = x["fleet_capex_usd"]
        if "fleet_gpus" in x:
            out["fleet_capex_per_gpu_usd"] = x["fleet_capex_usd"] / x["fleet_gpus"]
        if final_usd is not None:
            out["final_run_share_of_fleet_capex"] = final_usd / x["fleet_capex_usd"]
    if final_usd is None:
        return out
    parts = {}
    if "experiment_multiplier" in x:
        parts["experiments_usd"] = final_usd * x["experiment_multiplier"]
    if all(k in x for k in ("staff_count", "staff_usd_per_year", "programme_years")):
        parts["staff_usd"] = x["staff_count"] * x["staff_usd_per_year"] * x["programme_years"]
    if "data_usd" in x:
        parts["data_usd"] = x["data_usd"]
    if parts:
        programme = final_usd + sum(parts.values())
        out.update(parts)
        out["programme_usd"] = programme
        out["final_run_share_of_programme"] = final_usd / programme
    return out
