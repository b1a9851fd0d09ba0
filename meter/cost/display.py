"""How cost outputs are named and formatted, for the terminal and the Markdown report alike."""

from __future__ import annotations

import math

from meter.cost.montecarlo import Summary

# output name -> (label, kind of number); order is the order of display.
TRAIN_DISPLAY: list[tuple[str, str, str]] = [
    ("total_gpu_hours", "GPU-hours, all stages", "count"),
    ("total_usd", "rental cost, all stages", "usd"),
    ("cumulative_usd", "with the run it builds on", "usd"),
    ("pretraining_gpu_hours", "pre-training GPU-hours", "count"),
    ("pretraining_usd", "pre-training rental cost", "usd"),
    ("gpu_hours_per_trillion_tokens", "GPU-hours per trillion tokens", "count"),
    ("days_per_trillion_tokens_on_cluster", "days per trillion tokens on the cluster", "days"),
    ("days_on_cluster", "days on the cluster, all stages", "days"),
    ("training_flops", "training FLOPs (token-sized stages, analytic)", "flops"),
    ("achieved_flops_per_s_per_gpu", "achieved FLOP/s per GPU", "tflops"),
    ("mfu", "MFU (dense bf16 peak)", "pct"),
    ("implied_mfu", "MFU implied by the reported GPU-hours", "pct"),
    ("compute_s_per_token", "compute per token (GPU time)", "us"),
    ("ep_comm_s_per_token", "EP all-to-alls per token, fwd + bwd", "us"),
    ("ep_network_s_per_token", "  scale-out network leg", "us"),
    ("ep_nvlink_s_per_token", "  NVLink leg (runs alongside)", "us"),
    ("exposed_comm_s_per_token", "EP communication not hidden by compute", "us"),
    ("energy_kwh", "energy at the wall", "kwh"),
    ("energy_usd", "electricity cost", "usd"),
    ("ownership_usd_per_gpu_hour", "ownership cost per GPU-hour", "usd_small"),
    ("ownership_usd", "ownership cost of the same GPU-hours", "usd"),
    ("experiments_usd", "experiments and ablations", "usd"),
    ("data_usd", "data", "usd"),
    ("staff_usd", "staff", "usd"),
    ("programme_usd", "programme (rental view)", "usd"),
    ("final_run_share_of_programme", "final run's share of the programme", "pct"),
    ("fleet_capex_usd", "fleet capex (capex view)", "usd"),
    ("fleet_capex_per_gpu_usd", "fleet capex per GPU", "usd"),
    ("final_run_share_of_fleet_capex", "final run as a share of fleet capex", "pct"),
]
SERVE_DISPLAY: list[tuple[str, str, str]] = [
    ("decode_bound_tokens_per_s_per_gpu", "decode bound: output tokens/s per GPU", "count"),
    ("prefill_bound_tokens_per_s_per_gpu", "prefill bound: computed input tokens/s per GPU", "count"),
    ("decode_efficiency", "decode efficiency (share of its bound)", "pct"),
    ("prefill_efficiency", "prefill efficiency (share of its bound)", "pct"),
    ("implied_decode_efficiency", "decode efficiency the published throughput implies", "pct"),
    ("implied_prefill_efficiency", "prefill efficiency the published throughput implies", "pct"),
    ("output_tokens_per_s_per_gpu", "output tokens/s per GPU", "count"),
    ("prefill_tokens_per_s_per_gpu", "computed input tokens/s per GPU", "count"),
    ("usd_per_m_input_tokens", "$ per million input tokens (with cache hits)", "usd_small"),
    ("usd_per_m_input_tokens_miss", "$ per million input tokens (cache miss)", "usd_small"),
    ("usd_per_m_output_tokens", "$ per million output tokens", "usd_small"),
    ("usd_per_m_output_tokens_at_bound", "$ per million output tokens at the bound (a floor)", "usd_small"),
    ("usd_per_m_input_tokens_at_bound", "$ per million input tokens at the bound (a floor)", "usd_small"),
    ("gpus_needed", "GPUs needed for the load", "count"),
    ("usd_per_day", "cost per day", "usd"),
    ("revenue_usd_per_day", "revenue per day at list prices", "usd"),
    ("cost_profit_margin", "cost-profit margin", "pct"),
    ("joules_per_input_token", "energy per input token", "joule"),
    ("joules_per_output_token", "energy per output token", "joule"),
    ("energy_usd_per_m_output_tokens", "electricity per million output tokens", "usd_small"),
]


_USD_STEPS = ((1e9, "B"), (1e6, "M"), (1e3, "K"))
_KWH_STEPS = ((1e6, " GWh"), (1e3, " MWh"))
_COUNT_STEPS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def _scaled(value: float, steps: tuple[tuple[float, str], ...]) -> str | None:
    """``value`` at the first scale it reaches, with that scale's suffix; None below them all."""
    for scale, suffix in steps:
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return None


def fmt(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "usd":
        return "$" + (_scaled(value, _USD_STEPS) or f"{value:,.2f}")
    if kind == "usd_small":
        return f"${value:.4g}"
    if kind == "pct":
        return f"{value * 100:.3g}%"
    if kind == "days":
        return f"{value:.3g} days"
    if kind == "kwh":
        return _scaled(value, _KWH_STEPS) or f"{value:.4g} kWh"
    if kind == "us":
        return f"{value * 1e6:.4g} µs"
    if kind == "joule":
        return f"{value:.3g} J"
    if kind == "flops":
        return f"{value:.3g} FLOP"
    if kind == "tflops":
        return f"{value / 1e12:.4g} TFLOP/s"
    return _scaled(value, _COUNT_STEPS) or f"{value:,.4g}"


def rows(outputs: dict[str, Summary], display: list[tuple[str, str, str]], *, ranges: bool) -> list[list[str]]:
    out = []
    for name, label, kind in display:
        s = outputs.get(name)
        if s is None:
            continue
        row = [label, fmt(s.point, kind)]
        if ranges:
            row += [fmt(s.p10, kind), fmt(s.p50, kind), fmt(s.p90, kind)] if s.is_range else ["", "", ""]
        out.append(row)
    return out


def display_for(estimate) -> list[tuple[str, str, str]]:
    """The display rows of an estimate's kind, with the MFU labelled by the peak it is against."""
    if estimate.scenario.kind != "train":
        return SERVE_DISPLAY
    label = f"MFU (dense {estimate.scenario.mfu_dtype} peak)"
    return [(n, label if n == "mfu" else lab, k) for n, lab, k in TRAIN_DISPLAY]


def kind_of(output: str) -> str:
    for name, _, kind in TRAIN_DISPLAY + SERVE_DISPLAY:
        if output.split(".")[0] in (name, name.replace("pretraining_", "stage_")):
            return kind
    if output.startswith("stage_usd"):
        return "usd"
    return "count"


REPRODUCTION_HEADERS = ["reported figure", "reported", "computed", "diff", "agrees", "kind"]


def reproduction_row(r) -> list[str]:
    """A reported figure beside the computed one, as the terminal and the Markdown report show it."""
    return [
        r.label,
        fmt(r.reported, kind_of(r.output)),
        fmt(r.computed, kind_of(r.output)),
        "n/a" if r.rel_diff is None else f"{r.rel_diff * 100:+.2f}%",
        "yes" if r.agrees else "NO",
        "independent" if r.kind == "independent" else "consistency check",
    ]


def serving_where(e) -> str:
    """Which deployment, GPUs and batch a serving estimate is at, in words: the terminal and the HTML
    report print it beside the same figure, so the two can be matched (and told apart from others)."""
    if e.bound is None:
        return f"on {e.hardware.name}, at the scenario's own throughput"
    pool = e.bound.decode.pool
    batch = f"decode batch {pool.batch_per_gpu:g} per GPU" if pool.batch_per_gpu else "decode batch as memory allows"
    return (
        f"on the {e.bound.deployment.name} deployment ({e.hardware.name}, decode EP{pool.ep} TP{pool.tp} "
        f"DP{pool.dp}, {batch}, context {pool.context})"
    )
