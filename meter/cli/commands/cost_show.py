"""What the cost commands print: the estimate's tables, the deployment behind a serving cost, the
figures set beside a training cost, the cluster comparison and the calibration summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from meter.cli.output import emit_json, table


def show(args: argparse.Namespace, estimate) -> None:
    from meter.cost.display import REPRODUCTION_HEADERS, display_for, reproduction_row, rows
    from meter.results.atomic import write_text_atomic

    if getattr(args, "report", None):
        from meter.cost.markdown import render

        write_text_atomic(Path(args.report), render(estimate))
    if args.json:
        emit_json(estimate.as_dict())
        return
    s = estimate.scenario
    ranged = any(v.is_range for v in estimate.outputs.values())
    title = (
        f"{s.kind.capitalize()} cost: {s.name} ({estimate.model.name} on {estimate.hardware.name}; {estimate.method})"
    )
    if estimate.cpu_derived:
        title += "  [CPU-derived: efficiency measured on a CPU]"
    if estimate.bound is not None:
        print_deployment(estimate)
        print()
    headers = ["", "central"] + (["P10", "P50", "P90"] if ranged else [])
    print(table(headers, rows(estimate.outputs, display_for(estimate), ranges=ranged), title=title))
    if s.kind == "train":
        print_training_compute(estimate)
    if estimate.reproductions:
        print()
        print(table(REPRODUCTION_HEADERS, [reproduction_row(r) for r in estimate.reproductions]))
    for note in estimate.notes:
        print(f"note: {note}")
    if s.leaves_out:
        print("Leaves out: " + "; ".join(s.leaves_out) + ".")
    print(
        f"{len(estimate.inputs)} inputs with sources: --report FILE.md or --json"
        + (f" (wrote {args.report})" if getattr(args, "report", None) else "")
    )


def _bytes(x: float) -> str:
    return f"{x / 1e12:.3g} TB" if x >= 1e12 else f"{x / 1e9:.3g} GB"


def _ms(x: float) -> str:
    return f"{x * 1e3:.4g} ms"


def print_deployment(e) -> None:
    """Both pools of the deployment: layout, memory per GPU, step time and the bound it gives."""
    from meter.cost.display import fmt

    b = e.bound
    d, a = b.deployment, e.model.args
    body = [_pool_row(b.phase(phase), a) for phase in ("prefill", "decode")]
    print(
        table(
            [
                "pool",
                "GPUs",
                "TP",
                "EP",
                "experts/GPU",
                "batch/GPU",
                "context",
                "memory/GPU",
                "compute",
                "comm",
                "step",
                "bound tok/s/GPU",
            ],
            body,
            title=f"Deployment {d.name} on {b.hardware}: {d.weights.describe(experts=a.is_moe)} weights, "
            f"{d.kv_cache} KV cache",
        )
    )
    for phase in ("decode", "prefill"):
        ph = b.phase(phase)
        share = ph.regime_s("memory") / ph.step_s
        print(
            f"{phase} step: {share:.0%} memory-bound work, {ph.regime_s('compute') / ph.step_s:.0%} compute-bound, "
            f"{ph.comm.exposed_s / ph.step_s:.0%} exposed communication; "
            + ("output tokens" if phase == "decode" else "computed input tokens")
            + " per GPU per step: "
            + fmt(ph.tokens_per_step, "count")
        )
    print_implied(e)


def _pool_row(ph, a) -> list:
    from meter.cost.display import fmt

    p, c = ph.pool, ph.comm
    shards = p.ep if p.ep > 1 else p.tp
    experts = f"{(a.n_routed_experts + p.redundant_experts) / shards:g} + {a.n_shared_experts}" if a.is_moe else "-"
    return [
        ph.phase,
        p.gpus,
        p.tp,
        p.ep,
        experts,
        p.batch_per_gpu,
        f"{p.context:,}",
        f"{_bytes(ph.memory.total_bytes)} of {_bytes(ph.memory.capacity_bytes)}",
        _ms(ph.compute_s),
        f"{_ms(c.total_s)} ({_ms(c.hidden_s)} hidden)",
        _ms(ph.step_s),
        fmt(ph.tokens_per_s_per_gpu, "count"),
    ]


def print_implied(e) -> None:
    from meter.cost.display import fmt

    published = e.bound.deployment.published
    if published is None or e.efficiency is None or e.efficiency.implied_by is None:
        return
    for phase, value, what in (
        ("decode", published.decode_tokens_per_s_per_gpu, "output"),
        ("prefill", published.prefill_tokens_per_s_per_gpu, "computed input"),
    ):
        implied = e.serving.implied_efficiency(phase)
        if value is not None and implied is not None:
            print(
                f"published {phase}: {fmt(value, 'count')} {what} tokens/s per GPU = {fmt(implied.point, 'pct')} of "
                f"the {phase} bound ({e.efficiency.implied_by})"
                + (": above the bound, so the bound or the published figure is wrong" if implied.point > 1 else "")
            )


def print_training_compute(e) -> None:
    """Total training FLOPs and the achieved rate, beside the published totals people compare."""
    from meter.cost.display import fmt

    t = e.training
    flops, achieved = t.training_flops, t.achieved_flops_per_s_per_gpu
    if flops is None:
        return
    line = f"training compute: {flops.point:.3g} FLOPs (token-sized stages, analytic)"
    if achieved is not None:
        line += f", {fmt(achieved.point, 'tflops')} achieved per GPU ({fmt(t.mfu.point, 'pct')} of dense {e.scenario.mfu_dtype})"
    print(line)
    if e.comparisons:
        print(
            "  published for comparison (sources: --json): "
            + "; ".join(
                f"{c.model} {c.published_flops:.3g} ({c.date.year}; meter's count of that run {c.analytic_flops:.3g}, "
                f"{c.rel_diff * 100:+.1f}%)"
                for c in e.comparisons
            )
        )


def cluster_row(e) -> dict:
    """One hardware x EP layout: the figures the comparison table shows, as plain numbers."""
    t, x = e.training, e.inputs

    def point(s):
        return s.point if s is not None else None

    def interval(s):
        return [s.p10, s.p50, s.p90] if s is not None else None

    network, nvlink = point(t.ep_network_s_per_token), point(t.ep_nvlink_s_per_token)
    binds = None if network is None else ("network" if network >= nvlink else "NVLink")
    link_origin = {k: x[k].origin for k in ("nvlink_bytes_per_s", "network_bytes_per_s") if k in x}
    return {
        "hardware": e.hardware.name,
        "nvlink_bandwidth_gb_s": e.hardware.nvlink_bandwidth_gb_s,
        "network_bandwidth_gb_s": e.hardware.network_bandwidth_gb_s,
        "ep_degree": x["ep_degree"].quantity.central if "ep_degree" in x else None,
        "method": e.method,
        "compute_s_per_token": point(t.compute_s_per_token),
        "ep_comm_s_per_token": point(t.ep_comm_s_per_token),
        "ep_network_s_per_token": network,
        "ep_nvlink_s_per_token": nvlink,
        "binds": binds,
        "exposed_comm_s_per_token": point(t.exposed_comm_s_per_token),
        "pretraining_gpu_hours": interval(t.pretraining_gpu_hours),
        "days_on_cluster": point(t.days_on_cluster),
        "pretraining_usd": interval(t.pretraining_usd),
        "usd_per_gpu_hour": x["usd_per_gpu_hour"].quantity.describe() if "usd_per_gpu_hour" in x else None,
        "mfu": point(t.mfu),
        "links": link_origin,
        "cpu_derived": e.cpu_derived,
    }


def print_cluster(scenario, estimates) -> None:
    from meter.cost.display import fmt

    rows = []
    for e in estimates:
        r, t = cluster_row(e), e.training

        def us(value):
            return "n/a" if value is None else f"{value.point * 1e6:.0f}"

        def span(s, kind):
            if s is None:
                return "n/a"
            if s.p10 == s.p90:
                return fmt(s.p50, kind)
            return f"{fmt(s.p50, kind)} ({fmt(s.p10, kind)}-{fmt(s.p90, kind)})"

        comm = (
            "n/a"
            if t.ep_comm_s_per_token is None
            else f"{us(t.ep_comm_s_per_token)} ({r['binds']}; net {us(t.ep_network_s_per_token)}, "
            f"NVL {us(t.ep_nvlink_s_per_token)})"
        )
        rows.append(
            [
                e.hardware.name,
                f"{e.hardware.nvlink_bandwidth_gb_s:g}" if e.hardware.nvlink_bandwidth_gb_s else "n/a",
                f"{r['ep_degree']:g}" if r["ep_degree"] else "n/a",
                us(t.compute_s_per_token),
                comm,
                us(t.exposed_comm_s_per_token),
                span(t.pretraining_gpu_hours, "count"),
                fmt(t.days_on_cluster.point if t.days_on_cluster else None, "days"),
                span(t.pretraining_usd, "usd"),
                fmt(t.mfu.point if t.mfu else None, "pct"),
            ]
        )
    first = estimates[0]
    cpu = "  [compute CPU-derived: efficiency measured on a CPU]" if first.cpu_derived else ""
    print(
        table(
            [
                "hardware",
                "NVLink GB/s",
                "EP",
                "compute µs/tok",
                "EP comm µs/tok (binds; legs)",
                "exposed µs/tok",
                "GPU-hours P50 (P10-P90)",
                "days",
                "cost P50 (P10-P90)",
                "MFU",
            ],
            rows,
            title=f"Cluster projection: {scenario.name} ({first.model.name}, {scenario.cluster_gpus or '?'} GPUs; "
            f"{first.method}){cpu}",
        )
    )
    print(
        "GPU-µs per training token; EP comm = forward dispatch (fp8) and combine, and both gradients, over every MoE "
        "layer, the slower link of each; exposed = what the compute does not hide (comm_overlap)."
    )
    seen = set()
    for e in estimates:
        lines = [f"note: {note}" for note in e.notes]
        if "usd_per_gpu_hour" in e.inputs:
            q = e.inputs["usd_per_gpu_hour"]
            lines.append(
                f"price {e.hardware.name}: {q.quantity.describe()} USD/GPU-hour ({q.origin}: {q.source or 'no source'})"
            )
        for line in lines:
            if line not in seen:
                seen.add(line)
                print(line)


def calibration(run_path: str, scenario_name: str, loc):
    """The run's measured efficiency (or a job's MFU) applied to a scenario, beside the reported figures."""
    from meter.config.scenarios import load_scenario
    from meter.cost.calibration import calibrate
    from meter.results.load import load_run

    doc = load_run(run_path)
    return calibrate(doc, run_path, load_scenario(scenario_name, loc), loc)


def print_calibration(cal) -> None:
    from meter.cost.display import fmt

    def p(x):
        return x.point if x is not None else None

    cpu = " (CPU-derived: a CPU's efficiency applied to the scenario's GPU, not a GPU measurement)" if cal.cpu else ""
    name = cal.scenario.name
    print(f"Calibration of {cal.run} ({cal.device}) against scenario '{name}'{cpu}")
    if cal.kind == "train":
        m, r, rep = cal.measured_training, cal.reported_training, cal.reproduced_training
        eff = cal.efficiency.get("train", [None])[0]
        job = cal.method == "measured job"
        what = "End-to-end MFU of the job" if job else "Measured training efficiency"
        print(f"{what}: {eff.efficiency if eff else 0:.1%} of the {eff.basis if eff else None}.")
        print(
            f"At {'the MFU your job achieved' if job else 'that efficiency'}, {name}'s pre-training takes {fmt(p(m.pretraining_gpu_hours), 'count')} "
            f"GPU-hours and {fmt(p(m.pretraining_usd), 'usd')} (reported: "
            f"{fmt(p(rep.pretraining_gpu_hours), 'count')} GPU-hours, {fmt(p(rep.pretraining_usd), 'usd')}); "
            f"MFU {fmt(p(m.mfu), 'pct')} against the {fmt(p(r.mfu), 'pct')} the scenario assumes."
        )
        print(
            f"All stages: {fmt(p(m.total_gpu_hours), 'count')} GPU-hours, {fmt(p(m.total_usd), 'usd')} "
            f"(reported: {fmt(p(rep.total_gpu_hours), 'count')}, {fmt(p(rep.total_usd), 'usd')})."
        )
    else:
        m, r = cal.measured_serving, cal.reported_serving
        print(
            f"Through the scenario's deployment at the measured efficiency: "
            f"{fmt(p(m.usd_per_m_output_tokens), 'usd_small')} per million output "
            f"tokens and {fmt(p(m.usd_per_m_input_tokens), 'usd_small')} per million input tokens "
            f"(the scenario's own figures: {fmt(p(r.usd_per_m_output_tokens), 'usd_small')} and "
            f"{fmt(p(r.usd_per_m_input_tokens), 'usd_small')}); {fmt(p(m.gpus_needed), 'count')} GPUs for "
            f"the scenario's load (it ran on {fmt(p(r.gpus_needed), 'count')})."
        )
    for note in cal.notes:
        print(f"note: {note}")
