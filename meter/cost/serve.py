"""The serving cost model: throughput per GPU and price -> dollars per million tokens, GPUs, a day.

Pure arithmetic over floats or numpy sample arrays. Input (prefill) and output (decode) tokens
are priced from each phase's own throughput, as if GPUs did one phase at a time; cached input
tokens cost ``cache_hit_cost_ratio`` of a computed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _get(x: Mapping[str, Any], name: str, default: Any = None) -> Any:
    return x[name] if name in x else default


def serve_cost(
    x: Mapping[str, Any], *, joules_per_output_token: float | None = None, joules_per_input_token: float | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    util = _get(x, "serving_utilization", 1.0)
    comm = 1 + _get(x, "exposed_communication", 0.0)
    decode_tps = prefill_tps = None
    if "decode_tokens_per_s_per_gpu" in x:
        decode_tps = x["decode_tokens_per_s_per_gpu"] * util / comm
        out["output_tokens_per_s_per_gpu"] = decode_tps
    if "prefill_tokens_per_s_per_gpu" in x:
        prefill_tps = x["prefill_tokens_per_s_per_gpu"] * util / comm
    hit = _get(x, "cache_hit_rate", 0.0)
    hit_cost = _get(x, "cache_hit_cost_ratio", 0.0)
    price = _get(x, "usd_per_gpu_hour")
    if price is not None and decode_tps is not None:
        out["usd_per_m_output_tokens"] = price / 3600.0 / decode_tps * 1e6
    if price is not None and prefill_tps is not None:
        miss = price / 3600.0 / prefill_tps * 1e6
        out["usd_per_m_input_tokens_miss"] = miss
        out["usd_per_m_input_tokens"] = miss * ((1 - hit) + hit * hit_cost)
    in_day, out_day = _get(x, "input_tokens_per_day"), _get(x, "output_tokens_per_day")
    if in_day is not None and out_day is not None and decode_tps is not None and prefill_tps is not None:
        gpu_seconds = in_day * ((1 - hit) + hit * hit_cost) / prefill_tps + out_day / decode_tps
        out["gpus_needed"] = gpu_seconds / 86400.0
    gpus = _get(x, "gpus", out.get("gpus_needed"))
    if price is not None and gpus is not None:
        out["usd_per_day"] = gpus * 24 * price
    prices = ("price_input_hit_usd_per_m", "price_input_miss_usd_per_m", "price_output_usd_per_m")
    if in_day is not None and out_day is not None and all(p in x for p in prices):
        revenue = (in_day * hit * x[prices[0]] + in_day * (1 - hit) * x[prices[1]] + out_day * x[prices[2]]) / 1e6
        out["revenue_usd_per_day"] = revenue
        if "usd_per_day" in out:
            out["cost_profit_margin"] = (revenue - out["usd_per_day"]) / out["usd_per_day"]
    _energy(x, out, decode_tps, prefill_tps, joules_per_output_token, joules_per_input_token)
    return out


def _energy(x, out, decode_tps, prefill_tps, j_out, j_in) -> None:
    """Joules per token: measured where given, else average power over throughput."""
    scale = (1 + _get(x, "server_power_overhead", 0.0)) * _get(x, "pue", 1.0)
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
