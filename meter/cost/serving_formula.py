"""The serving cost model: throughput per GPU and price -> dollars per million tokens, GPUs, a day.

Pure arithmetic over floats or numpy sample arrays. Throughput per GPU comes from the rate the
costing method chose (``ServeContext.rate``):

- ``throughput``: the scenario's own ``decode_tokens_per_s_per_gpu`` and
  ``prefill_tokens_per_s_per_gpu`` (x ``serving_utilization``, / (1 + ``exposed_communication``));
- ``efficiency``: the deployment's bound x ``efficiency`` x ``serving_utilization``;
- ``regimes``: the bound with its compute-bound part at ``compute_efficiency`` of the roof and its
  memory-bound part at ``memory_efficiency`` (:meth:`meter.cost.layout.PhaseBound.efficiency`);
- ``bound``: no throughput, only the cost at 100% of the bound (a floor).

Prefill throughput counts computed (cache-miss) input tokens; a cached input token costs
``cache_hit_cost_ratio`` of a computed one. Output (decode) and input (prefill) tokens are priced
from each phase's own throughput, as if GPUs did one phase at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from meter.cost.layout import DeploymentBound


def ratio(num: Any, den: Any) -> Any:
    """``num / den``, NaN where ``den`` is 0 (an output then left out, never a ZeroDivisionError)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den != 0)
    return out if out.ndim else float(out)


@dataclass(frozen=True)
class ServeContext:
    rate: str = "throughput"  # throughput, efficiency, regimes or bound
    bound: DeploymentBound | None = None
    joules_per_output_token: float | None = None
    joules_per_input_token: float | None = None


def _usd_per_m(price: Any, tokens_per_s: Any) -> Any:
    return price / 3600.0 / tokens_per_s * 1e6


def throughputs(x: Mapping[str, Any], ctx: ServeContext) -> dict[str, Any]:
    """Output and computed input tokens/s per GPU (``decode``, ``prefill``), and the efficiencies used."""
    util = x.get("serving_utilization", 1.0)
    if ctx.rate == "throughput":
        comm = 1 + x.get("exposed_communication", 0.0)
        return {
            "decode": x["decode_tokens_per_s_per_gpu"] * util / comm if "decode_tokens_per_s_per_gpu" in x else None,
            "prefill": x["prefill_tokens_per_s_per_gpu"] * util / comm if "prefill_tokens_per_s_per_gpu" in x else None,
        }
    if ctx.rate == "bound":
        return {"decode": None, "prefill": None}
    out = {}
    for phase in ("decode", "prefill"):
        b = ctx.bound.phase(phase)
        if ctx.rate == "efficiency":
            e = x["efficiency"]
        else:
            e = b.efficiency(x["compute_efficiency"], x["memory_efficiency"])
        out[f"{phase}_efficiency"] = e
        out[phase] = b.tokens_per_s_per_gpu * e * util
    return out


def serve_cost(x: Mapping[str, Any], ctx: ServeContext = ServeContext()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tps = throughputs(x, ctx)
    decode_tps, prefill_tps = tps.pop("decode"), tps.pop("prefill")
    out.update(tps)
    hit = x.get("cache_hit_rate", 0.0)
    per_input = (1 - hit) + hit * x.get("cache_hit_cost_ratio", 0.0)  # computed-token equivalents per input token
    out.update(_bound(x, ctx, per_input))
    out.update(_per_token(x, decode_tps, prefill_tps, per_input))
    out.update(_day(x, decode_tps, prefill_tps, hit, per_input))
    _energy(x, out, decode_tps, prefill_tps, ctx.joules_per_output_token, ctx.joules_per_input_token)
    return out


def _bound(x: Mapping[str, Any], ctx: ServeContext, per_input: Any) -> dict[str, Any]:
    """The deployment's bounds, and what a token would cost at 100% of them (a floor)."""
    if ctx.bound is None:
        return {}
    decode, prefill = ctx.bound.decode.tokens_per_s_per_gpu, ctx.bound.prefill.tokens_per_s_per_gpu
    out = {"decode_bound_tokens_per_s_per_gpu": decode, "prefill_bound_tokens_per_s_per_gpu": prefill}
    if "usd_per_gpu_hour" in x:
        out["usd_per_m_output_tokens_at_bound"] = _usd_per_m(x["usd_per_gpu_hour"], decode)
        out["usd_per_m_input_tokens_at_bound"] = _usd_per_m(x["usd_per_gpu_hour"], prefill) * per_input
    return out


def _per_token(x: Mapping[str, Any], decode_tps: Any, prefill_tps: Any, per_input: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    price = x.get("usd_per_gpu_hour")
    if decode_tps is not None:
        out["output_tokens_per_s_per_gpu"] = decode_tps
        if price is not None:
            out["usd_per_m_output_tokens"] = _usd_per_m(price, decode_tps)
    if prefill_tps is not None:
        out["prefill_tokens_per_s_per_gpu"] = prefill_tps
        if price is not None:
            out["usd_per_m_input_tokens_miss"] = _usd_per_m(price, prefill_tps)
            out["usd_per_m_input_tokens"] = out["usd_per_m_input_tokens_miss"] * per_input
    return out


def _day(x: Mapping[str, Any], decode_tps: Any, prefill_tps: Any, hit: Any, per_input: Any) -> dict[str, Any]:
    """A day's load: the GPUs it needs, what they cost, and the revenue at list prices."""
    out: dict[str, Any] = {}
    in_day, out_day = x.get("input_tokens_per_day"), x.get("output_tokens_per_day")
    loaded = in_day is not None and out_day is not None
    if loaded and decode_tps is not None and prefill_tps is not None:
        out["gpus_needed"] = (in_day * per_input / prefill_tps + out_day / decode_tps) / 86400.0
    gpus = x.get("gpus", out.get("gpus_needed"))
    if "usd_per_gpu_hour" in x and gpus is not None:
        out["usd_per_day"] = gpus * 24 * x["usd_per_gpu_hour"]
    prices = ("price_input_hit_usd_per_m", "price_input_miss_usd_per_m", "price_output_usd_per_m")
    if loaded and all(p in x for p in prices):
        revenue = (in_day * hit * x[prices[0]] + in_day * (1 - hit) * x[prices[1]] + out_day * x[prices[2]]) / 1e6
        out["revenue_usd_per_day"] = revenue
        if "usd_per_day" in out:  # no load, no cost: the margin is left out, not divided by zero
            out["cost_profit_margin"] = ratio(revenue - out["usd_per_day"], out["usd_per_day"])
    return out


def _energy(x, out, decode_tps, prefill_tps, j_out, j_in) -> None:
    """Joules per token: measured where given, else average power over throughput."""
    scale = (1 + x.get("server_power_overhead", 0.0)) * x.get("pue", 1.0)
    if j_out is None and "avg_power_w" in x and decode_tps is not None:
        j_out = x["avg_power_w"] / decode_tps
    if j_in is None and "avg_power_w" in x and prefill_tps is not None:
        j_in = x["avg_power_w"] / prefill_tps
    if j_out is not None:
        out["joules_per_output_token"] = j_out * scale
        if "usd_per_kwh" in x:
            out["energy_usd_per_m_output_tokens"] = j_out * scale * 1e6 / 3.6e6 * x["usd_per_kwh"]
    if j_in is not None:
        out["joules_per_input_token"] = j_in * scale
