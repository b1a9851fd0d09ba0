"""The report's plots (matplotlib, from the ``report`` extra), as inline SVG or PNG bytes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from meter.errors import MeterError
from meter.report.data import Roofline, Timeline
from meter.results.atomic import write_bytes_atomic


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MeterError("meter report needs matplotlib: pip install 'gpu-cost-meter[report]'") from None
    return plt


PHASE_STYLE = {"train": ("o", "#1f77b4"), "prefill": ("s", "#2ca02c"), "decode": ("^", "#d62728")}


def roofline(r: Roofline):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    xs = [p.intensity for p in r.points] or [1.0]
    lo, hi = min(xs) / 4, max(xs) * 4
    for (name, (compute, bandwidth)), style in zip(r.roofs.items(), ("-", "--", ":")):
        ridge = compute / bandwidth
        grid = sorted({lo, hi, min(max(ridge, lo), hi)})
        ax.plot(
            grid,
            [min(compute, bandwidth * x) for x in grid],
            style,
            color="0.3",
            label=f"{name}: {compute / 1e12:.3g} TFLOP/s, {bandwidth / 1e9:.4g} GB/s",
        )
    for phase, (marker, color) in PHASE_STYLE.items():
        pts = [p for p in r.points if p.phase == phase]
        if pts:
            ax.scatter(
                [p.intensity for p in pts],
                [p.flops_per_s for p in pts],
                marker=marker,
                color=color,
                label=phase,
                zorder=3,
            )
            for p in pts:
                ax.annotate(
                    p.label.split(".")[0] + "." + p.label.split(".")[2] if p.label.count(".") >= 2 else p.label,
                    (p.intensity, p.flops_per_s),
                    fontsize=6,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte, analytic)")
    ax.set_ylabel("achieved FLOP/s")
    ax.set_title(f"Roofline: {r.device}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def timeline(t: Timeline):
    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(10, 6.5), sharex=True)
    series = [
        ("power (W)", [None if v is None else v for v in t.power_w]),
        ("utilization (%)", [None if v is None else v * 100 for v in t.utilization_ratio]),
        ("SM clock (MHz)", [None if v is None else v / 1e6 for v in t.sm_clock_hz]),
    ]
    for ax, (label, values) in zip(axes, series):
        points = [(x, y) for x, y in zip(t.t_s, values) if y is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], lw=1, color="#1f77b4")
        else:
            ax.text(0.5, 0.5, "not supported by this device", transform=ax.transAxes, ha="center", color="0.5")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, alpha=0.3)
        for i, (_name, start, end) in enumerate(t.windows):
            ax.axvspan(start, end, color=("#ffd54f" if i % 2 else "#a5d6a7"), alpha=0.25, lw=0)
    for name, start, end in t.windows:
        axes[0].annotate(
            name,
            ((start + end) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=5,
            rotation=90,
            ha="center",
            va="top",
        )
    if t.throttle_t_s:
        top = max((v for v in t.power_w if v is not None), default=1.0)
        axes[0].scatter(
            t.throttle_t_s,
            [top * 1.02] * len(t.throttle_t_s),
            marker="|",
            color="red",
            s=40,
            label="throttled: " + ", ".join(t.throttle_reasons),
        )
        axes[0].legend(fontsize=7, loc="lower left")
    axes[-1].set_xlabel("seconds since the run started (shaded: benchmark windows)")
    axes[0].set_title(f"Telemetry: {t.device}")
    fig.tight_layout()
    return fig


def _errorbars(summaries) -> tuple[list[float], list[list[float]]]:
    centre = [s.p50 if s.is_range else s.point for s in summaries]
    err = [[c - s.p10 for c, s in zip(centre, summaries)], [s.p90 - c for c, s in zip(centre, summaries)]]
    return centre, err


def training_cost(estimate) -> Any:
    plt = _plt()
    t = estimate.training
    stages = [(st.name, t.stage_gpu_hours[st.name]) for st in estimate.scenario.stages if st.name in t.stage_gpu_hours]
    programme = [
        (label, s)
        for s, label in (
            (t.total_usd, "final run"),
            (t.experiments_usd, "experiments"),
            (t.data_usd, "data"),
            (t.staff_usd, "staff"),
        )
        if s is not None
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    if stages:
        centre, err = _errorbars([s for _, s in stages])
        axes[0].bar([n for n, _ in stages], centre, yerr=err, capsize=4, color="#1f77b4")
        axes[0].set_ylabel("GPU-hours")
        axes[0].set_title(f"Stages on {estimate.hardware.name} (P10-P90 bars)")
        axes[0].tick_params(axis="x", labelsize=7)
    if programme:
        centre, err = _errorbars([s for _, s in programme])
        axes[1].bar(
            [n for n, _ in programme],
            [c / 1e6 for c in centre],
            yerr=[[e / 1e6 for e in err[0]], [e / 1e6 for e in err[1]]],
            capsize=4,
            color="#ff7f0e",
        )
        axes[1].set_ylabel("million USD")
        share = t.final_run_share_of_programme
        axes[1].set_title("Final run vs the programme" + (f" (final run {share.point:.1%})" if share else ""))
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(
        f"Training cost: {estimate.scenario.name}" + (" [CPU-derived]" if estimate.cpu_derived else ""), fontsize=10
    )
    fig.tight_layout()
    return fig


def serving_cost(by_batch) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    batches = [b for b, _, _ in by_batch]
    for pick, label, color in (
        (lambda s: s.usd_per_m_output_tokens, "output tokens", "#d62728"),
        (lambda s: s.usd_per_m_input_tokens, "input tokens", "#2ca02c"),
    ):
        summaries = [pick(e.serving) for _, _, e in by_batch]
        if all(s is not None for s in summaries) and summaries:
            centre, err = _errorbars(summaries)
            ax.errorbar(batches, centre, yerr=err, marker="o", capsize=4, label=label, color=color)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("decode batch size")
    ax.set_ylabel("USD per million tokens")
    cpu = any(e.cpu_derived for _, _, e in by_batch)
    ax.set_title("Serving cost against batch size (P10-P90 bars)" + (" [CPU-derived]" if cpu else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def serving_frontier(points, measured, target, title: str, chosen=None) -> Any:
    """Output tokens/s per GPU against tokens/s per user: the predicted curve (solid) and its bound
    (dashed) per layout, measured points (dots and, against their own setup, the prediction as
    crosses), one colour per layout, the latency target as a vertical line, and the point chosen
    for it (the cheapest that meets it) ringed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 5.5))
    layouts = list(dict.fromkeys([p.layout for p in points] + [m.layout for m in measured]))
    colours = plt.get_cmap("tab10")
    colour = {name: colours(i % 10) for i, name in enumerate(layouts)}
    for name in layouts:
        mine = sorted((p for p in points if p.layout == name), key=lambda p: p.concurrency)
        if mine:
            ax.plot([p.tokens_per_s_per_user for p in mine], [p.output_tokens_per_s_per_gpu for p in mine],
                    "-o", ms=3, color=colour[name], label=f"{name} predicted")  # fmt: skip
            ax.plot([p.tokens_per_s_per_user_bound for p in mine], [p.output_tokens_per_s_per_gpu_bound for p in mine],
                    "--", lw=0.8, color=colour[name], alpha=0.5, label=f"{name} bound")  # fmt: skip
        seen = [m for m in measured if m.layout == name]
        if seen:
            ax.scatter([m.measured_tokens_per_s_per_user for m in seen], [m.measured_output_tokens_per_s_per_gpu for m in seen],
                       s=14, color=colour[name], edgecolor="black", linewidth=0.4, label=f"{name} measured")  # fmt: skip
            ax.scatter([m.predicted_tokens_per_s_per_user for m in seen], [m.predicted_output_tokens_per_s_per_gpu for m in seen],
                       s=14, marker="x", color=colour[name], alpha=0.7)  # fmt: skip
    need = None
    if target is not None and target.tpot_s:
        need = 1 / target.tpot_s
    if target is not None and target.min_tokens_per_s_per_user:
        need = max(need or 0, target.min_tokens_per_s_per_user)
    if need:
        ax.axvline(need, color="black", linestyle=":", label=f"target: {need:.3g} tok/s/user")
    if chosen is not None:
        ax.scatter([chosen.tokens_per_s_per_user], [chosen.output_tokens_per_s_per_gpu], s=160, facecolor="none",
                   edgecolor="black", linewidth=1.5, zorder=5,
                   label=f"chosen: {chosen.layout} at concurrency {chosen.concurrency:g}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens/s per user (1 / TPOT)")
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_title(f"Serving frontier: {title}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def render(fig, png_path=None) -> str:
    """The figure as inline SVG (and, when ``png_path`` is given, also saved there as PNG)."""
    if png_path is not None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=120)
        write_bytes_atomic(Path(png_path), buffer.getvalue())  # OutputError naming the path if it cannot
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    _plt().close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prologue and DOCTYPE: the SVG goes inline in HTML
