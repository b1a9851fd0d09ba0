"""``meter report`` (a self-contained HTML report of run files) and ``meter compare`` (two runs side by side)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meter import domains as D
from meter.cli.common import locator, number
from meter.cli.output import emit_json, table
from meter.errors import UsageError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report",
        parents=[common],
        help="a self-contained HTML report of run files",
        description="Write one HTML file (it opens offline): roofline per device, the power, "
        "utilization and clock timeline with benchmark windows shaded, training and "
        "serving cost with ranges, every number, run metadata and assumptions.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN.json")
    p.add_argument("-o", "--output", default="report.html", metavar="FILE", help="the HTML file (default report.html)")
    p.add_argument("--png-dir", metavar="DIR", help="also save every plot as a PNG here")
    p.add_argument("--scenario", default="deepseek-v3", help="training scenario to price (default deepseek-v3)")
    p.add_argument("--serve-scenario", default="deepseek-v3-day6", help="serving scenario to price")
    p.add_argument(
        "--serving-points",
        metavar="POINTS.tsv",
        help="also draw the serving frontier against these measured points (meter import; docs/cost.md)",
    )
    p.add_argument("--serving-model", default="deepseek-v3", help="the model the points served (default deepseek-v3)")
    p.add_argument(
        "--serving-calibrate", action="store_true", help="fit the step model to the points of each GPU before drawing"
    )
    p.add_argument(
        "--samples",
        type=number(D.SAMPLES),
        default=20_000,
        help=f"Monte Carlo samples for the cost ranges (default 20,000; at most {D.MAX_SAMPLES:,})",
    )
    p.set_defaults(handler=run_report)

    p = sub.add_parser(
        "compare",
        parents=[common],
        help="compare two run files case by case",
        description="Side-by-side table with ratios (B over A); a difference within the runs' own "
        "spread (inside both runs' interquartile ranges) is flagged as noise; a factor of 2 or more never is.",
    )
    p.add_argument("a", metavar="A.json")
    p.add_argument("b", metavar="B.json")
    p.add_argument(
        "--metric",
        action="append",
        choices=["time_per_call_s", "tokens_per_s", "achieved_tflops", "achieved_gb_s", "mfu", "joules_per_token"],
        help="metric(s) to compare (default: all)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_compare)


def _runs(paths: list[str]):
    from meter.report.data import Run
    from meter.results.load import load_run

    return [Run(path, load_run(path)) for path in paths]


def _scenario(name: str, kind: str, flag: str, args: argparse.Namespace) -> str:
    """The scenario's name once it is known to exist and be of the right kind (refused before any work)."""
    from meter.config.scenarios import load_scenario

    scenario = load_scenario(name, locator(args))
    if scenario.kind != kind:
        raise UsageError(f"{flag} {name}: a {scenario.kind} scenario; this option takes a {kind} one")
    return scenario.name


def write_report(paths: list[str], output: str, args: argparse.Namespace, *, png_dir: str | None = None) -> list[Path]:
    from meter.report.html import build
    from meter.results.atomic import write_text_atomic

    train = _scenario(getattr(args, "scenario", None) or "deepseek-v3", "train", "--scenario", args)
    serve = _scenario(getattr(args, "serve_scenario", None) or "deepseek-v3-day6", "serve", "--serve-scenario", args)
    frontiers = ()
    if getattr(args, "serving_points", None):
        from meter.cli.serving_frontier import report_views

        frontiers = report_views(args.serving_points, args.serving_model, locator(args), args.serving_calibrate)
    document, pngs = build(
        _runs(paths),
        frontiers=frontiers,
        locator=locator(args),
        train_scenario=train,
        serve_scenario=serve,
        png_dir=Path(png_dir) if png_dir else None,
        samples=getattr(args, "samples", 20_000),
    )
    write_text_atomic(Path(output), document)
    return pngs


def run_report(args: argparse.Namespace) -> int:
    pngs = write_report(args.runs, args.output, args, png_dir=args.png_dir)
    print(f"wrote {args.output}" + (f" and {len(pngs)} PNG(s) in {args.png_dir}" if pngs else ""), file=sys.stderr)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from meter.report.compare import METRICS, compare

    a, b = _runs([args.a, args.b])
    rows = compare(a.doc, b.doc, args.metric)
    if args.json:
        emit_json(
            {
                "a": a.path,
                "b": b.path,
                "device_a": a.label,
                "device_b": b.label,
                "comparisons": [r.as_dict() for r in rows],
            }
        )
        return 0
    if not rows:
        raise UsageError("the two runs have no measured case in common")

    def show(value, metric):
        if value is None:
            return None
        return (
            f"{value * 1e3:.4g}"
            if metric == "time_per_call_s"
            else (f"{value:.1%}" if metric == "mfu" else f"{value:.4g}")
        )

    body = [
        [
            r.model,
            r.case,
            METRICS[r.metric][0],
            show(r.a, r.metric),
            show(r.b, r.metric),
            f"{r.ratio:.3f}x" if r.ratio is not None else None,
            r.verdict,
        ]
        for r in rows
    ]
    print(
        table(
            ["model", "case", "metric", f"A: {a.label}", f"B: {b.label}", "B/A", "verdict"],
            body,
            title=f"A = {a.path}\nB = {b.path}",
        )
    )
    print(
        "noise: each median lies within half the other run's interquartile range of it (inside both runs' "
        "spread); a factor of 2 or more is never noise."
    )
    return 0
