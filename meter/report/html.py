"""The self-contained HTML report: inline CSS and SVG, no script, nothing fetched from a network."""

from __future__ import annotations

import datetime as dt
import html
import re
import shlex
from pathlib import Path
from typing import Any

from meter import __version__
from meter.config.paths import ConfigLocator
from meter.cost.display import SERVE_DISPLAY, TRAIN_DISPLAY, fmt, rows, serving_where
from meter.errors import OutputError
from meter.jsonable import to_jsonable
from meter.report import data, plots
from meter.report import job as job_view

SECTIONS = [
    ("summary", "Summary"),
    ("job", "Measured job"),
    ("roofline", "Roofline"),
    ("timeline", "Power, utilization and clocks"),
    ("training-cost", "Training cost"),
    ("serving-cost", "Serving cost"),
    ("serving-frontier", "Serving frontier"),
    ("tables", "Every number"),
    ("metadata", "Run metadata"),
    ("assumptions", "Assumptions and sources"),
]

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
nav{padding:6px 28px;background:#eef1f5;position:sticky;top:0}nav a{margin-right:14px;color:#1d4f91}
main{padding:0 28px 40px}section{margin-top:28px}h2{border-bottom:2px solid #d8dde5;padding-bottom:4px}
.cpu{background:#fff3cd;border:1px solid #e0c060;padding:8px 12px;margin:12px 0;font-weight:600}
table{border-collapse:collapse;margin:8px 0;font-size:12px}th,td{border:1px solid #d8dde5;padding:3px 7px;text-align:right}
th{background:#eef1f5}td.l,th.l{text-align:left}.scroll{overflow-x:auto}.fig svg{max-width:100%;height:auto}
.note{color:#555;font-size:12px}details{margin:6px 0}code{background:#eef1f5;padding:0 3px}
"""


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def table(headers: list[str], body: list[list[Any]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>' for i, h in enumerate(headers))
    trs = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{_cell(v)}</td>' for i, v in enumerate(r)) + "</tr>"
        for r in body
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table></div>'


def _figure(fig, name: str, png_dir: Path | None, pngs: list[Path]) -> str:
    png = None
    if png_dir is not None:
        png = png_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.png"
        pngs.append(png)
    return f'<div class="fig">{plots.render(fig, png)}</div>'


def _job_section(r: data.Run, train) -> list[str]:
    job = r.doc.job
    out = [f"<h3>{html.escape(r.name)}: {html.escape(r.label)} ({html.escape(r.doc.status)})</h3>"]
    sentence = job_view.job_sentence(r, train)
    if sentence:
        out.append(f"<p><b>{html.escape(sentence)}</b></p>")
    out.append(table(["figure", "value"], [[k, v] for k, v in job_view.job_summary(r)], 2))
    if job.gpus:
        out.append(
            table(
                [h for h, _ in job_view.JOB_GPU_COLUMNS],
                [[fn(g) for _, fn in job_view.JOB_GPU_COLUMNS] for g in job.gpus],
                3,
            )
        )
    if job.window_totals:
        out.append(
            table(
                ["window", "count", "duration s", "energy J", "$", "tokens"],
                [[t.name, t.count, t.duration_s, t.energy_j, t.usd, t.tokens] for t in job.window_totals],
                1,
            )
        )
    if job.windows:
        shown = job.windows[: job_view.MAX_WINDOW_ROWS]
        out.append(
            table(
                [h for h, _ in job_view.JOB_WINDOW_COLUMNS],
                [[fn(w) for _, fn in job_view.JOB_WINDOW_COLUMNS] for w in shown],
                1,
            )
        )
        left = len(job.windows) - len(shown) + job.windows_not_kept
        if left:
            out.append(f'<p class="note">{left} more window(s) in the run file are not listed.</p>')
    return out


def build(
    runs: list[data.Run],
    *,
    locator: ConfigLocator | None = None,
    train_scenario: str = "deepseek-v3",
    serve_scenario: str = "deepseek-v3-day6",
    png_dir: Path | None = None,
    samples: int = 20_000,
    frontiers: tuple[data.FrontierView, ...] = (),
) -> tuple[str, list[Path]]:
    """(the HTML document, the PNG files written); ``frontiers``: serving-frontier plots computed
    by the caller from a points file (``meter report --serving-points``)."""
    if png_dir is not None and png_dir.exists() and not png_dir.is_dir():
        raise OutputError(f"--png-dir {png_dir}: is a file, not a directory")
    pngs: list[Path] = []
    parts: dict[str, list[str]] = {key: [] for key, _ in SECTIONS}
    costs = {
        r.path: data.cost_views(
            r, locator, train_scenario=train_scenario, serve_scenario=serve_scenario, samples=samples
        )
        for r in runs
    }
    for i, f in enumerate(frontiers):
        parts["serving-frontier"].append(f"<h3>{html.escape(f.title)}</h3>")
        parts["serving-frontier"].append(
            _figure(plots.serving_frontier(f.points, f.measured, None, f.title), f"serving-frontier-{i}", png_dir, pngs)
        )
        parts["serving-frontier"].append(
            f'<p class="note">{len(f.measured)} measured points; median error of the prediction '
            f"{f.median_abs_error:.1%} (output tokens/s per GPU), {f.median_abs_error_per_user:.1%} (tokens/s per user); "
            f"{f.above_bound} above the bound; step model: {html.escape(f.efficiencies_from)}.</p>"
        )
    cpu_runs = [r for r in runs if r.cpu]
    if cpu_runs:
        parts["summary"].append(
            '<div class="cpu">CPU run: every figure from '
            + ", ".join(html.escape(r.name) for r in cpu_runs)
            + " was measured on a CPU; costs derived from it are labelled CPU-derived and are "
            "not GPU measurements.</div>"
        )
    summary_rows = []
    for r in runs:
        ok = len(r.ok_cases())
        best = max((c.metrics.mfu or 0 for c in r.ok_cases()), default=None)
        if r.doc.job is not None and r.doc.job.work is not None:
            best = r.doc.job.work.mfu
        summary_rows.append(
            [
                r.name,
                r.label,
                r.doc.status,
                f"{ok}/{len(r.doc.cases)}",
                r.doc.metadata.suite,
                f"{best:.1%}" if best else "n/a",
                r.doc.started_at.isoformat(),
            ]
        )
    parts["summary"].append(
        table(["run", "device", "status", "cases ok", "suite", "best MFU", "started"], summary_rows, 3)
    )
    for r in runs:
        projections = [
            [
                p.model,
                p.phase,
                p.batch,
                p.seq,
                p.context,
                p.dtype,
                p.time_per_token_s * 1e3,
                p.tokens_per_s,
                p.mfu * 100 if p.mfu else None,
            ]
            for p in r.doc.projections
        ]
        if projections:
            parts["summary"].append(f"<h3>Projected whole model: {html.escape(r.name)} ({html.escape(r.label)})</h3>")
            parts["summary"].append(
                table(
                    ["model", "phase", "batch", "seq", "context", "dtype", "ms/token", "tokens/s", "MFU %"],
                    projections,
                    2,
                )
            )
        if r.doc.job is not None:
            parts["job"] += _job_section(r, costs[r.path]["train"])
        roof = data.roofline(r)
        if roof.points:
            parts["roofline"].append(_figure(plots.roofline(roof), f"roofline-{r.name}", png_dir, pngs))
        else:
            parts["roofline"].append(f'<p class="note">{html.escape(r.name)}: no measured case to plot.</p>')
        lines = data.timelines(r)
        if not lines:
            telemetry = r.doc.metadata.telemetry
            why = (telemetry.reason if telemetry else None) or "no telemetry was sampled"
            parts["timeline"].append(
                f'<p class="note">{html.escape(r.name)}: no telemetry in this run ({html.escape(why)}).</p>'
            )
        for i, t in enumerate(lines):
            parts["timeline"].append(_figure(plots.timeline(t), f"timeline-{r.name}-{i}", png_dir, pngs))
        c = costs[r.path]
        for problem in c["problems"]:
            parts["training-cost"].append(f'<p class="note">{html.escape(r.name)}: {html.escape(problem)}</p>')
        if c["train"] is not None:
            e = c["train"]
            parts["training-cost"].append(
                f"<h3>{html.escape(e.scenario.name)} from {html.escape(r.name)} ({html.escape(e.method)})</h3>"
            )
            parts["training-cost"].append(_figure(plots.training_cost(e), f"training-cost-{r.name}", png_dir, pngs))
            parts["training-cost"].append(
                table(["output", "central", "P10", "P50", "P90"], rows(e.outputs, TRAIN_DISPLAY, ranges=True))
            )
            parts["training-cost"] += [f'<p class="note">{html.escape(n)}</p>' for n in e.notes]
            parts["training-cost"].append(
                '<p class="note">Leaves out: ' + html.escape("; ".join(e.scenario.leaves_out)) + "</p>"
            )
        if c.get("serve") is not None:
            e = c["serve"]
            per_out = e.outputs.get("usd_per_m_output_tokens")
            band = f" (P10-P90 {fmt(per_out.p10, 'usd_small')}-{fmt(per_out.p90, 'usd_small')})" if per_out else ""
            parts["serving-cost"].append(
                f"<h3>{html.escape(e.scenario.name)} from {html.escape(r.name)}: "
                f"{html.escape(fmt(per_out.point if per_out else None, 'usd_small'))} per million output tokens"
                f"{html.escape(band)}</h3>"
                f'<p class="note">As <code>meter run</code> prints it for this run file: '
                f"{html.escape(serving_where(e))}; {html.escape(e.method)}. The table below prices the decode "
                "batches the run measured instead.</p>"
            )
        if c["serve_by_batch"]:
            parts["serving-cost"].append(
                _figure(plots.serving_cost(c["serve_by_batch"]), f"serving-cost-{r.name}", png_dir, pngs)
            )
            body = []
            for batch, context, e in c["serve_by_batch"]:
                out = e.outputs
                body.append(
                    [batch, context]
                    + [
                        fmt(out[k].point, "usd_small") if k in out else None
                        for k in ("usd_per_m_input_tokens", "usd_per_m_output_tokens")
                    ]
                    + [fmt(out["gpus_needed"].point, "count") if "gpus_needed" in out else None]
                )
            parts["serving-cost"].append(
                table(
                    ["batch", "context", "$/M input", "$/M output", f"GPUs for {html.escape(serve_scenario)}'s load"],
                    body,
                    0,
                )
            )
            first = c["serve_by_batch"][0][2]
            parts["serving-cost"].append(
                table(["output", "central", "P10", "P50", "P90"], rows(first.outputs, SERVE_DISPLAY, ranges=True))
            )
        elif not c["problems"]:
            parts["serving-cost"].append(f'<p class="note">{html.escape(r.name)}: no decode projection to price.</p>')
        parts["tables"].append(f"<h3>{html.escape(r.name)}: {html.escape(r.label)}</h3>")
        parts["tables"].append(table([h for h, _ in data.CASE_COLUMNS], data.case_rows(r), 3))
        meta = r.doc.metadata
        finished = r.doc.finished_at.isoformat() if r.doc.finished_at else None
        telemetry = to_jsonable(meta.telemetry) if meta.telemetry else {}
        flat = [
            ("run id", r.doc.run_id),
            ("status", r.doc.status),
            ("started / finished", f"{r.doc.started_at.isoformat()} / {finished}"),
            ("command", shlex.join(meta.command)),
            ("device", to_jsonable(meta.device)),
            ("hardware config", to_jsonable(meta.hardware)),
            ("software", to_jsonable(meta.software)),
            ("git", to_jsonable(meta.git)),
            ("host", to_jsonable(meta.host)),
            ("method", to_jsonable(meta.method)),
            ("ceilings", to_jsonable(meta.ceilings)),
            ("telemetry", {k: v for k, v in telemetry.items() if k != "devices"}),
        ]
        parts["metadata"].append(
            f"<h3>{html.escape(r.name)}</h3>" + table(["field", "value"], [[k, v] for k, v in flat], 2)
        )
        if c["train"] is not None:
            inputs = list(c["train"].inputs.values())
            if c["serve_by_batch"]:
                inputs += list(c["serve_by_batch"][0][2].inputs.values())
            parts["assumptions"].append(f"<h3>Cost inputs for {html.escape(r.name)}</h3>")
            parts["assumptions"].append(
                table(
                    ["input", "value", "meaning", "from", "source", "date", "confidence"],
                    [
                        [i.name, i.quantity.describe(), i.meaning, i.origin, i.source, i.date, i.confidence]
                        for i in inputs
                    ],
                    2,
                )
            )
        hw = meta.hardware
        if hw:
            parts["assumptions"].append(
                f'<p class="note">Datasheet peaks of {html.escape(hw.name)}: '
                f"{html.escape(str(dict(hw.peak_tflops)))} TFLOP/s; source: "
                f"{html.escape(str(hw.source))}</p>"
            )
    optional = ("job", "serving-frontier")  # a job section for jobs, a frontier for a points file
    shown = [(key, title) for key, title in SECTIONS if key not in optional or parts[key]]
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in shown)
    body = "".join(
        f'<section id="{key}"><h2>{title}</h2>{"".join(parts[key]) or "<p class=note>Nothing to show.</p>"}</section>'
        for key, title in shown
    )
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = "gpu-cost-meter report: " + ", ".join(r.label for r in runs)
    doc = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title><style>{CSS}</style>'
        f"</head><body><header><h1>{html.escape(title)}</h1><div>generated {generated} by gpu-cost-meter "
        f"{__version__} from {len(runs)} run file(s)</div></header><nav>{nav}</nav><main>{body}</main></body></html>\n"
    )
    return doc, pngs
