"""``meter run``: the main job. The device's default suite, its whole-model projection, what that
costs (training and serving, priced from what was just measured), and the run file."""

from __future__ import annotations

import argparse

from meter.cli.benchrun import DEFAULT_SUITES, add_execution_options, cases_from_suite, execute, finish_output, select
from meter.cli.common import locator


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        help="the main job: benchmark a default suite and project the whole model",
        description="Benchmark the default suite on the best device present (DeepSeek-V3 shapes on a GPU, "
        "the tiny V3-shaped model on a CPU), print per-layer results and the projected time per "
        "token of the whole model, and write the run file.",
    )
    p.add_argument("--suite", help="run this suite instead of the device's default")
    p.add_argument("--report", metavar="FILE.html", help="also write the HTML report of this run")
    add_execution_options(p)
    p.set_defaults(handler=run_main)


def run_main(args: argparse.Namespace) -> int:
    device = select(args)
    suite_name = args.suite or DEFAULT_SUITES[device.kind]
    cases, models, suite = cases_from_suite(suite_name, args, device)
    # the costs it ends with are CPU-derived on a CPU: its ceilings measured again at the end give the
    # bands the spread between two moments of the same machine
    recorder = execute(args, cases, models, device, label=f"run-{suite}", suite=suite, repeat_ceilings=True)
    costs = add_costs(args, recorder)
    finish_output(args, recorder, costs, print_costs)
    if args.report:
        from meter.cli.commands.report import write_report

        write_report([str(recorder.path)], args.report, args)
        print(f"Report: {args.report}")
    return 0


def add_costs(args: argparse.Namespace, recorder):
    """Price the default scenarios from what the run measured; kept in the run file's extras."""
    from meter.cost.for_run import costs_for_run, summary

    estimates, problems = costs_for_run(recorder.path, locator(args), doc=recorder.doc)
    recorder.update(extras={**recorder.doc.extras, "cost": {**summary(estimates), "problems": problems}})
    return estimates, problems


def print_costs(doc, estimates, problems: list[str]) -> None:
    from meter.cost.display import fmt

    print()
    for key in ("train", "serve"):
        e = estimates.get(key)
        if e is None:
            continue
        out = e.outputs
        label = f"{e.scenario.name} ({e.model.name} on {e.hardware.name}), from this run" + (
            ", CPU-derived" if doc.cpu else ""
        )
        if key == "train":
            t, u = out.get("total_gpu_hours"), out.get("total_usd")
            rep = {r.output: r.reported for r in e.reproductions}
            spread = f" (P10-P90 {fmt(u.p10, 'usd')}-{fmt(u.p90, 'usd')})" if u and u.p10 != u.p90 else ""
            print(
                f"Training cost of {label}: {fmt(t.point if t else None, 'count')} GPU-hours, "
                f"{fmt(u.point, 'usd') if u else 'n/a'}{spread}; reported "
                f"{fmt(rep.get('total_gpu_hours'), 'count')} GPU-hours, {fmt(rep.get('total_usd'), 'usd')}"
            )
        else:
            per_out, per_in = out.get("usd_per_m_output_tokens"), out.get("usd_per_m_input_tokens")
            band = (
                f" (P10-P90 {fmt(per_out.p10, 'usd_small')}-{fmt(per_out.p90, 'usd_small')})"
                if per_out and per_out.is_range
                else ""
            )
            from meter.cost.display import serving_where

            print(
                f"Serving cost of {label}, {serving_where(e)}: "
                f"{fmt(per_out.point if per_out else None, 'usd_small')} "
                f"per million output tokens{band}, {fmt(per_in.point if per_in else None, 'usd_small')} "
                f"per million input tokens (DeepSeek's day 6: $0.30 and $0.06)"
            )
        for note in e.notes:
            if note.startswith("efficiency transfer"):
                print(f"  {note}")
    for problem in problems:
        print(f"Cost not computed: {problem}")
    print("Details, ranges and every assumption: meter cost train|serve --from-run RUN_FILE --report FILE.md")
