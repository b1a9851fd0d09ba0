"""``meter acceptance``: is this GPU what was paid for, and the workload table, within minutes."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from meter import domains as D
from meter.cli.common import number
from meter.cli.output import emit_json, table
from meter.errors import UsageError

DEFAULT_BUDGET_S = 360.0  # six minutes on an H100 or H200
DRY_RUN_BUDGET_S = 180.0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "acceptance",
        parents=[common],
        help="check a rented GPU against its datasheet and fill the workload table, under a time budget",
        description="In one process under a hard time budget: the environment and the fused ops, the copy, bf16 "
        "and fp8 GEMM ceilings against the datasheet, power limit, clocks and throttle reasons under load, the "
        "energy counter against integrated power, the sampler against nvidia-smi and its overhead at 100 Hz, "
        "and the workload table (MoE grouped and fp8 GEMMs, MLA decode and training, a V3 layer's training "
        "MFU), each against its target. Writes a run file and a results page <date>-<gpu>.md.",
        epilog="Exit status: 0 when every step ran and no check failed, 1 when a check failed or a step did "
        "not finish (the page says which), 2 for bad input.",
    )
    p.add_argument(
        "-o", "--out", default="runs", metavar="DIR", help="where the run file and the page go (default runs/)"
    )
    p.add_argument("--device", default="auto", help="auto (the first GPU), cuda or cuda:N; a dry run uses the CPU")
    p.add_argument(
        "--budget", type=number(D.ACCEPTANCE_BUDGET_S), metavar="S", help="hard time budget in seconds (default 360)"
    )
    p.add_argument(
        "--steady",
        type=number(D.STEADY_LOAD_S),
        metavar="S",
        help="seconds of the steady load for power and energy (default 12; a dry run 3)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="run all of it on the CPU with the tiny model: the plumbing, labelled as CPU figures",
    )
    p.add_argument("--json", action="store_true", help="print the acceptance report as JSON (docs/cli-json.md)")
    p.set_defaults(handler=run_acceptance_command)


def run_acceptance_command(args: argparse.Namespace) -> int:
    from meter.acceptance.run import AcceptanceOptions, run_acceptance
    from meter.cli.benchrun import select

    if args.dry_run:
        if args.device not in ("auto", "cpu"):
            raise UsageError(f"--dry-run runs on the CPU; drop --device {args.device}")
        args.device = "cpu"
    device = select(args)
    if device.kind != "cuda" and not args.dry_run:
        raise UsageError("no CUDA device here: meter acceptance checks a GPU (use --dry-run to try it on the CPU)")
    opts = AcceptanceOptions(
        device=device,
        out_dir=Path(args.out),
        budget_s=args.budget or (DRY_RUN_BUDGET_S if args.dry_run else DEFAULT_BUDGET_S),
        dry_run=args.dry_run,
        steady_s=args.steady or (3.0 if args.dry_run else 12.0),
        command=shlex.join(["meter", *sys.argv[1:]]) if sys.argv[1:2] == ["acceptance"] else "meter acceptance",
    )
    doc, path, page = run_acceptance(opts)
    report = doc.acceptance
    if args.json:
        emit_json({"run_file": str(path), "page": str(page), "status": doc.status, **_as_json(report)})
    else:
        rows = [
            [c.section, c.name, _fmt(c), c.target, c.verdict.upper() if c.verdict == "fail" else c.verdict]
            for c in report.checks
        ]
        print(
            table(
                ["section", "check", "value", "target", "verdict"],
                rows,
                title=f"Acceptance on {doc.metadata.device.label}",
            )
        )
        for s in report.incomplete:
            print(f"step {s.name}: {s.status.upper()} ({s.reason})")
        print(f"\n{report.elapsed_s:.0f} s of {report.budget_s:.0f} s. Run file: {path}\nPage: {page}")
    return 1 if report.failed or report.incomplete else 0


def _fmt(c) -> str | None:
    from meter.acceptance.page import value_text

    return None if c.value is None else value_text(c.value, c.unit)


def _as_json(report) -> dict:
    from meter.jsonable import to_jsonable

    return to_jsonable(report)
