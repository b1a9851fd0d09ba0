"""The cost report as Markdown: results with ranges, reproduced figures, every assumption with its source."""

from __future__ import annotations

from meter.cost.display import display_for, fmt, reproduction_row, rows
from meter.cost.result import CostEstimate


def _table(headers: list[str], body: list[list[str]]) -> str:
    def esc(cell: object) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in body]
    return "\n".join(lines)


def _deployment(e: CostEstimate) -> list[str]:
    b = e.bound
    body = []
    for phase in ("prefill", "decode"):
        ph = b.phase(phase)
        p = ph.pool
        body.append(
            [
                phase,
                p.gpus,
                f"TP{p.tp} DP{p.dp} EP{p.ep}",
                p.batch_per_gpu,
                p.context,
                f"{ph.memory.total_bytes / 1e9:.3g} of {ph.memory.capacity_bytes / 1e9:.3g} GB",
                f"{ph.compute_s * 1e3:.4g} ms",
                f"{ph.comm.total_s * 1e3:.4g} ms ({ph.comm.hidden_s * 1e3:.4g} hidden)",
                fmt(ph.tokens_per_s_per_gpu, "count"),
            ]
        )
    d = b.deployment
    return [
        f"## Deployment `{d.name}` on {b.hardware}",
        "",
        d.description,
        "",
        _table(
            [
                "pool",
                "GPUs",
                "layout",
                "batch/GPU",
                "context",
                "memory/GPU",
                "compute",
                "communication",
                "bound tok/s/GPU",
            ],
            body,
        ),
        "",
        "The bound: per GPU and step, each component at the longer of its FLOPs at the dense peak of its precision "
        "and its bytes at the HBM bandwidth, plus the EP and TP communication the step does not hide "
        "(docs/cost.md).",
        "",
    ]


def render(e: CostEstimate) -> str:
    s = e.scenario
    display = display_for(e)
    ranged = any(v.is_range for v in e.outputs.values())
    parts = [f"# {s.kind.capitalize()} cost: {s.name}", "", s.description, ""]
    if e.cpu_derived:
        parts += [
            "> **CPU-derived.** The efficiency behind these figures was measured on a CPU and applied to "
            f"{e.hardware.display_name}: a CPU figure, not a GPU measurement.",
            "",
        ]
    parts += [
        f"- model: `{e.model.name}`; hardware: `{e.hardware.name}` ({e.hardware.display_name})",
        f"- method: {e.method}" + (f", from `{e.run.path}` measured on {e.run.label}" if e.run else ""),
        f"- uncertainty: {'Monte Carlo, ' + format(e.samples, ',') + f' samples, seed {e.seed}' if ranged else 'all inputs are points'}",
        "",
    ]
    headers = ["output", "central"] + (["P10", "P50", "P90"] if ranged else [])
    parts += ["## Results", "", _table(headers, rows(e.outputs, display, ranges=ranged)), ""]
    if s.kind == "train" and s.stages:
        body = []
        for st in s.stages:
            h = e.outputs.get(f"stage_gpu_hours.{st.name}")
            d = e.outputs.get(f"stage_usd.{st.name}")
            sized = (
                ("tokens " + st.tokens.describe())
                if st.tokens
                else (
                    "GPU-hours " + st.gpu_hours.describe()
                    if st.gpu_hours
                    else f"{st.gpus} GPUs x {st.hours.describe()} h"
                )
            )
            body.append([st.name, sized, fmt(h.point if h else None, "count"), fmt(d.point if d else None, "usd")])
        parts += ["## Stages", "", _table(["stage", "sized by", "GPU-hours", "rental cost"], body), ""]
    if e.reproductions:
        body = [[*reproduction_row(r), f"{r.source} ({r.date})"] for r in e.reproductions]
        parts += [
            "## Reported figures beside the computed ones",
            "",
            "An *independent* figure is computed from inputs that do not contain it; a *consistency check* "
            "restates its inputs (its note says which), so agreeing shows only that the inputs were read right.",
            "",
            _table(["figure", "reported", "computed", "difference", "agrees", "kind", "source"], body),
            "",
        ]
    if e.bound is not None:
        parts += _deployment(e)
    if e.base is not None:
        parts += [
            f"Builds on `{e.base.scenario.name}`: {fmt(e.base.outputs['total_usd'].point, 'usd')} "
            "(its own report gives the breakdown).",
            "",
        ]
    body = [
        [
            i.name,
            i.quantity.describe(i.unit if i.unit not in ("ratio", "x") else ""),
            i.meaning,
            i.origin,
            i.source or "",
            i.date.isoformat() if i.date else "",
            i.confidence or "",
        ]
        for i in e.inputs.values()
    ]
    parts += [
        "## Assumptions",
        "",
        _table(["input", "value", "meaning", "from", "source", "date", "confidence"], body),
        "",
    ]
    if e.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in e.notes] + [""]
    if s.leaves_out:
        parts += ["## What this figure leaves out", ""] + [f"- {x}" for x in s.leaves_out] + [""]
    return "\n".join(parts)
