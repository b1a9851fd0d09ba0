"""``meter cost train``, ``meter cost serve``, ``meter calibrate`` and ``meter scenarios``."""

from __future__ import annotations

import argparse
from pathlib import Path

from meter import domains as D
from meter.cli.common import OneLineParser, locator, number, numbers
from meter.cli.output import emit_json, table
from meter.errors import UsageError

TIERS = ["on-demand", "1-year", "3-year", "spot", "assumed"]


def _quantity(text: str):
    from meter.config.quantity import QuantityError, parse_cli

    try:
        return parse_cli(text)
    except QuantityError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _assumption(text: str):
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. pipeline_bubble=0.02..0.08), not {text!r}")
    return name.strip(), _quantity(value)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", help="a scenario in configs/scenarios (meter scenarios lists them)")
    p.add_argument("--from-run", metavar="RUN.json", help="use the throughput and energy measured in a run file")
    p.add_argument("--hardware", help="hardware config to price (default: the scenario's)")
    _inputs(p)
    p.add_argument("--report", metavar="FILE.md", help="also write a Markdown report with every assumption and source")


def _inputs(p: argparse.ArgumentParser) -> None:
    """Price, assumptions, Monte Carlo and output options, shared by every cost command."""
    p.add_argument("--tier", choices=TIERS, help="price-table tier for the hardware's rental price")
    p.add_argument("--price", type=_quantity, metavar="USD", help="$ per GPU-hour: 2.0, or a range 1.7..3.0")
    p.add_argument(
        "--assume",
        type=_assumption,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set any cost-model input, e.g. --assume pipeline_bubble=0.02..0.08 (repeatable)",
    )
    p.add_argument(
        "--samples",
        type=number(D.SAMPLES),
        default=None,
        metavar="N",
        help="Monte Carlo samples when an input is a range (default 20,000; 0 = central values only; "
        f"at most {D.MAX_SAMPLES:,}, which takes about 1 GB)",
    )
    p.add_argument("--seed", type=number(D.SEED), default=0, help="Monte Carlo seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON (docs/cli-json.md)")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cost = sub.add_parser(
        "cost",
        help="training and serving cost, from a scenario, an MFU or a measured run",
        description="Turn throughput into GPU-hours, dollars and joules, with every assumption "
        "explicit and ranges carried through a Monte Carlo.",
    )
    cost_sub = cost.add_subparsers(dest="cost_command", metavar="{train,serve,cluster}", parser_class=OneLineParser)
    cost_sub.required = True
    p = cost_sub.add_parser(
        "train",
        parents=[common],
        help="training cost",
        description="Training cost: GPU-hours = FLOPs / achieved FLOP/s, then rental and ownership "
        "dollars, energy, and the programme around the final run.",
        epilog="Examples: meter cost train --scenario deepseek-v3; meter cost train deepseek-v3 "
        "--tokens 14.8T --hardware h100-sxm --mfu 0.30..0.45; meter cost train --scenario "
        "deepseek-v3 --from-run runs/RUN.json",
    )
    p.add_argument("model", nargs="?", help="model config (with --tokens, without a scenario)")
    p.add_argument("--tokens", type=_quantity, metavar="N", help="pre-training tokens, e.g. 14.8T")
    p.add_argument("--seq", type=number(D.SEQ), metavar="N", help="training sequence length (default 4096)")
    p.add_argument("--mfu", type=_quantity, help="end-to-end MFU against the dense bf16 peak: 0.39 or 0.30..0.45")
    p.add_argument("--gpus", type=number(D.GPUS), metavar="N", help="cluster size, for days on the cluster")
    p.add_argument(
        "--comm-run",
        metavar="RUN.json",
        help="link bandwidths measured by meter bench --distributed, for the expert-parallel model",
    )
    _common(p)
    p.set_defaults(handler=run_train)

    p = cost_sub.add_parser(
        "cluster",
        parents=[common],
        help="training at cluster scale: compute and EP communication",
        description="Project a training run across hardware and expert-parallel layouts, with "
        "compute and all-to-all communication modelled apart: which link binds, how "
        "much the compute hides, and what it costs.",
        epilog="Examples: meter cost cluster; meter cost cluster --ep 8,64 --assume comm_overlap=0; "
        "meter cost cluster --comm-run runs/RUN-distributed.json --from-run runs/RUN.json",
    )
    p.add_argument(
        "--scenario",
        default="deepseek-v3-cluster",
        help="a training scenario with ep_degree (default deepseek-v3-cluster)",
    )
    p.add_argument(
        "--hardware",
        type=_names,
        default=["h800-sxm", "h100-sxm"],
        metavar="A,B",
        help="hardware configs to compare (default h800-sxm,h100-sxm)",
    )
    p.add_argument(
        "--ep", type=numbers(D.EP), metavar="N,M", help="expert-parallel degrees to compare (default: the scenario's)"
    )
    p.add_argument("--from-run", metavar="RUN.json", help="compute measured in a run file instead of compute_mfu")
    p.add_argument("--comm-run", metavar="RUN.json", help="link bandwidths measured by meter bench --distributed")
    _inputs(p)
    p.set_defaults(handler=run_cluster)

    p = cost_sub.add_parser(
        "serve",
        parents=[common],
        help="serving cost per million tokens",
        description="Serving cost: $ per million input and output tokens from throughput per GPU, "
        "the GPUs a load needs, cost per day, joules per token.",
        epilog="Example: meter cost serve --from-run runs/RUN.json --tokens-per-day 608B,168B",
    )
    p.add_argument("--batch", type=number(D.BATCH), help="use the run's decode measurement at this batch")
    p.add_argument("--context", type=number(D.CONTEXT), help="use the run's decode measurement at this context")
    p.add_argument("--cache-hit-rate", type=_quantity, metavar="R", help="share of input tokens served from cache")
    p.add_argument("--tokens-per-day", metavar="IN,OUT", help="load to size the deployment for, e.g. 608B,168B")
    _common(p)
    p.set_defaults(handler=run_serve, scenario_default="deepseek-v3-day6")

    p = sub.add_parser(
        "calibrate",
        parents=[common],
        help="compare a measured run with a published scenario",
        description="What the run's measured efficiency implies for a scenario, beside what was reported.",
    )
    p.add_argument("run", metavar="RUN.json")
    p.add_argument("--scenario", default="deepseek-v3", help="scenario to calibrate against (default deepseek-v3)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_calibrate)

    p = sub.add_parser("scenarios", parents=[common], help="list cost scenarios")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_scenarios)


# --- shared ------------------------------------------------------------------------------------


def _overrides(args: argparse.Namespace, extra: dict) -> dict:
    out = dict(args.assume)
    if args.price is not None:
        out["usd_per_gpu_hour"] = args.price
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _measured(args: argparse.Namespace):
    if not args.from_run:
        return None
    from meter.cost.from_run import load_measured

    return load_measured(args.from_run)


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, e.g. h800-sxm,h100-sxm; got {text!r}")
    return names


def _comm_run(args: argparse.Namespace):
    """The measured link bandwidths of a distributed run file, or None."""
    if not getattr(args, "comm_run", None):
        return None
    from meter.cost.ep_comm import measured_links
    from meter.results.load import load_run

    doc = load_run(args.comm_run)
    if not doc.communication:
        raise UsageError(
            f"{args.comm_run}: field 'communication': no communication results; --comm-run takes a run of "
            "meter bench --distributed with communication cases"
        )
    links = measured_links(doc, args.comm_run)
    if links.nvlink_bytes_per_s is None and links.network_bytes_per_s is None:
        raise UsageError(f"{args.comm_run}: no verified dispatch or combine all-to-all to measure the links with")
    return links


def _samples(args: argparse.Namespace) -> int:
    from meter.cost.estimate import DEFAULT_SAMPLES

    return DEFAULT_SAMPLES if args.samples is None else args.samples


def show(args: argparse.Namespace, estimate) -> None:
    from meter.cost.display import SERVE_DISPLAY, TRAIN_DISPLAY, rows
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
    headers = ["", "central"] + (["P10", "P50", "P90"] if ranged else [])
    print(
        table(
            headers,
            rows(estimate.outputs, TRAIN_DISPLAY if s.kind == "train" else SERVE_DISPLAY, ranges=ranged),
            title=title,
        )
    )
    if estimate.reproductions:
        from meter.cost.display import fmt, kind_of

        body = [
            [
                r["label"],
                fmt(r["reported"], kind_of(r["output"])),
                fmt(r["computed"], kind_of(r["output"])),
                "n/a" if r["rel_diff"] is None else f"{r['rel_diff'] * 100:+.2f}%",
                "yes" if r["reproduced"] else "NO",
            ]
            for r in estimate.reproductions
        ]
        print()
        print(table(["reported figure", "reported", "computed", "diff", "reproduced"], body))
    for note in estimate.notes:
        print(f"note: {note}")
    if s.leaves_out:
        print("Leaves out: " + "; ".join(s.leaves_out) + ".")
    print(
        f"{len(estimate.inputs)} inputs with sources: --report FILE.md or --json"
        + (f" (wrote {args.report})" if getattr(args, "report", None) else "")
    )


# --- commands ----------------------------------------------------------------------------------


def run_train(args: argparse.Namespace) -> int:
    from meter.config.scenarios import Scenario, Stage, load_scenario
    from meter.cost.estimate import estimate_train

    loc = locator(args)
    if args.scenario:
        scenario = load_scenario(args.scenario, loc)
        if scenario.kind != "train":
            raise UsageError(
                f"scenario '{scenario.name}' is a {scenario.kind} scenario; meter cost train needs a training one"
            )
        if args.model and args.model != scenario.model:
            raise UsageError(f"scenario '{scenario.name}' is about {scenario.model}, not {args.model}; drop one")
    elif args.model:
        if args.tokens is None:
            raise UsageError("give --tokens (e.g. 14.8T) with a model, or use --scenario")
        from meter.config.models import load_model

        model = load_model(args.model, loc)
        scenario = Scenario(
            name=f"{model.name}-ad-hoc",
            description=f"{model.name} trained on {args.tokens.describe()} tokens",
            kind="train",
            model=model.name,
            hardware=args.hardware or "h800-sxm",
            stages=[Stage(name="pre-training", tokens=args.tokens, source="command line")],
        )
    else:
        raise UsageError("give a MODEL with --tokens, or --scenario NAME (meter scenarios lists them)")
    if args.seq or args.gpus or (args.tokens is not None and args.scenario):
        import dataclasses

        stages = list(scenario.stages)
        if args.tokens is not None and args.scenario:
            i = next((k for k, st in enumerate(stages) if st.tokens is not None), None)
            if i is None:
                raise UsageError(f"scenario '{scenario.name}' has no stage sized in tokens for --tokens to set")
            stages[i] = dataclasses.replace(stages[i], tokens=args.tokens, source="command line")
        scenario = dataclasses.replace(
            scenario,
            stages=stages,
            seq_len=args.seq or scenario.seq_len,
            cluster_gpus=args.gpus or scenario.cluster_gpus,
        )
    run = _measured(args)
    if run is not None and args.mfu is not None:
        raise UsageError("--from-run and --mfu are two sources of the same rate; give one")
    estimate = estimate_train(
        scenario,
        overrides=_overrides(args, {"mfu": args.mfu}),
        run=run,
        hardware=args.hardware,
        tier=args.tier,
        samples=_samples(args),
        seed=args.seed,
        locator=loc,
        comm=_comm_run(args),
    )
    show(args, estimate)
    return 0


def run_cluster(args: argparse.Namespace) -> int:
    from meter.config.quantity import Quantity
    from meter.config.scenarios import load_scenario
    from meter.cost.estimate import estimate_train

    loc = locator(args)
    scenario = load_scenario(args.scenario, loc)
    if scenario.kind != "train":
        raise UsageError(
            f"scenario '{scenario.name}' is a {scenario.kind} scenario; meter cost cluster needs a training one"
        )
    overrides = _overrides(args, {})
    if "ep_degree" not in scenario.assumptions and "ep_degree" not in overrides and not args.ep:
        raise UsageError(f"scenario '{scenario.name}' has no ep_degree; give --ep N (e.g. --ep 8,64)")
    run, comm = _measured(args), _comm_run(args)
    if run is None and "compute_mfu" not in scenario.assumptions and "compute_mfu" not in overrides:
        raise UsageError(
            f"scenario '{scenario.name}' has an end-to-end mfu, which already includes communication; "
            "give --assume compute_mfu=... or --from-run RUN.json to model compute and communication apart"
        )
    eps = args.ep or [None]
    estimates = []
    for hw in args.hardware:
        for ep in eps:
            extra = dict(overrides)
            if ep is not None:
                extra["ep_degree"] = Quantity.point(ep)
            estimates.append(
                estimate_train(
                    scenario,
                    overrides=extra,
                    run=run,
                    hardware=hw,
                    tier=args.tier,
                    samples=_samples(args),
                    seed=args.seed,
                    locator=loc,
                    comm=comm,
                )
            )
    if args.json:
        emit_json(
            {
                "scenario": scenario.name,
                "rows": [cluster_row(e) for e in estimates],
                "estimates": [e.as_dict() for e in estimates],
            }
        )
        return 0
    print_cluster(scenario, estimates)
    return 0


def cluster_row(e) -> dict:
    """One hardware x EP layout: the figures the comparison table shows, as plain numbers."""
    o, x = e.outputs, e.inputs

    def point(name: str):
        return o[name].point if name in o else None

    def interval(name: str):
        return [o[name].p10, o[name].p50, o[name].p90] if name in o else None

    network, nvlink = point("ep_network_s_per_token"), point("ep_nvlink_s_per_token")
    binds = None if network is None else ("network" if network >= nvlink else "NVLink")
    link_origin = {k: x[k].origin for k in ("nvlink_bytes_per_s", "network_bytes_per_s") if k in x}
    return {
        "hardware": e.hardware.name,
        "nvlink_bandwidth_gb_s": e.hardware.nvlink_bandwidth_gb_s,
        "network_bandwidth_gb_s": e.hardware.network_bandwidth_gb_s,
        "ep_degree": x["ep_degree"].quantity.central if "ep_degree" in x else None,
        "method": e.method,
        "compute_s_per_token": point("compute_s_per_token"),
        "ep_comm_s_per_token": point("ep_comm_s_per_token"),
        "ep_network_s_per_token": network,
        "ep_nvlink_s_per_token": nvlink,
        "binds": binds,
        "exposed_comm_s_per_token": point("exposed_comm_s_per_token"),
        "pretraining_gpu_hours": interval("pretraining_gpu_hours"),
        "days_on_cluster": point("days_on_cluster"),
        "pretraining_usd": interval("pretraining_usd"),
        "usd_per_gpu_hour": x["usd_per_gpu_hour"].quantity.describe() if "usd_per_gpu_hour" in x else None,
        "mfu": point("mfu"),
        "links": link_origin,
        "cpu_derived": e.cpu_derived,
    }


def print_cluster(scenario, estimates) -> None:
    from meter.cost.display import fmt

    rows = []
    for e in estimates:
        r = cluster_row(e)

        def us(value):
            return "n/a" if value is None else f"{value * 1e6:.0f}"

        def span(values, kind):
            if values is None:
                return "n/a"
            if values[0] == values[2]:
                return fmt(values[1], kind)
            return f"{fmt(values[1], kind)} ({fmt(values[0], kind)}-{fmt(values[2], kind)})"

        comm = (
            "n/a"
            if r["ep_comm_s_per_token"] is None
            else f"{us(r['ep_comm_s_per_token'])} ({r['binds']}; net {us(r['ep_network_s_per_token'])}, NVL {us(r['ep_nvlink_s_per_token'])})"
        )
        rows.append(
            [
                r["hardware"],
                f"{r['nvlink_bandwidth_gb_s']:g}" if r["nvlink_bandwidth_gb_s"] else "n/a",
                f"{r['ep_degree']:g}" if r["ep_degree"] else "n/a",
                us(r["compute_s_per_token"]),
                comm,
                us(r["exposed_comm_s_per_token"]),
                span(r["pretraining_gpu_hours"], "count"),
                fmt(r["days_on_cluster"], "days"),
                span(r["pretraining_usd"], "usd"),
                fmt(r["mfu"], "pct"),
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


def _tokens_per_day(text: str | None) -> dict:
    if text is None:
        return {}
    from meter.config.quantity import Quantity
    from meter.units import parse_quantity

    try:
        inp, out = (parse_quantity(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--tokens-per-day expects IN,OUT token counts such as 608B,168B, not {text!r}") from None
    return {"input_tokens_per_day": Quantity.point(inp), "output_tokens_per_day": Quantity.point(out)}


def run_serve(args: argparse.Namespace) -> int:
    from meter.config.scenarios import load_scenario
    from meter.cost.estimate import estimate_serve

    loc = locator(args)
    scenario = load_scenario(args.scenario or args.scenario_default, loc)
    if scenario.kind != "serve":
        raise UsageError(
            f"scenario '{scenario.name}' is a {scenario.kind} scenario; meter cost serve needs a serve one"
        )
    overrides = _overrides(args, {"cache_hit_rate": args.cache_hit_rate, **_tokens_per_day(args.tokens_per_day)})
    estimate = estimate_serve(
        scenario,
        overrides=overrides,
        run=_measured(args),
        hardware=args.hardware,
        tier=args.tier,
        batch=args.batch,
        context=args.context,
        samples=_samples(args),
        seed=args.seed,
        locator=loc,
    )
    show(args, estimate)
    return 0


def calibration(run_path: str, scenario_name: str, loc) -> dict:
    """The run's measured efficiency applied to a scenario, beside the reported figures."""
    from meter.config.scenarios import load_scenario
    from meter.cost.estimate import estimate_serve, estimate_train
    from meter.cost.from_run import load_measured

    run = load_measured(run_path)
    scenario = load_scenario(scenario_name, loc)
    if scenario.kind == "train":
        measured = estimate_train(scenario, run=run, samples=0, locator=loc)
        reported = estimate_train(scenario, samples=0, locator=loc)
    else:
        measured = estimate_serve(scenario, run=run, samples=0, locator=loc)
        reported = estimate_serve(scenario, samples=0, locator=loc)
    return {
        "run": run_path,
        "device": run.label,
        "cpu": run.cpu,
        "scenario": scenario.name,
        "kind": scenario.kind,
        "method": measured.method,
        "notes": measured.notes,
        "measured": {k: v.point for k, v in measured.outputs.items()},
        "reported_inputs": {k: v.point for k, v in reported.outputs.items()},
        "reproductions": reported.reproductions,
        "efficiency": {
            p: [
                {
                    "efficiency": r.efficiency,
                    "basis": r.efficiency_basis,
                    "batch": r.batch,
                    "seq": r.seq,
                    "context": r.context,
                }
                for r in rates
            ]
            for p, rates in run.phases.items()
        },
    }


def run_calibrate(args: argparse.Namespace) -> int:
    from meter.cost.display import fmt

    c = calibration(args.run, args.scenario, locator(args))
    if args.json:
        emit_json(c)
        return 0
    m, r = c["measured"], c["reported_inputs"]
    rep = {x["output"]: x["reported"] for x in c["reproductions"]}
    cpu = " (CPU-derived: a CPU's efficiency applied to the scenario's GPU, not a GPU measurement)" if c["cpu"] else ""
    print(f"Calibration of {c['run']} ({c['device']}) against scenario '{c['scenario']}'{cpu}")
    if c["kind"] == "train":
        eff = c["efficiency"].get("train", [{}])[0]
        print(f"Measured training efficiency: {eff.get('efficiency', 0):.1%} of the {eff.get('basis')}.")
        print(
            f"At that efficiency, {c['scenario']}'s pre-training takes {fmt(m.get('pretraining_gpu_hours'), 'count')} "
            f"GPU-hours and {fmt(m.get('pretraining_usd'), 'usd')} (reported: "
            f"{fmt(rep.get('pretraining_gpu_hours'), 'count')} GPU-hours, {fmt(rep.get('pretraining_usd'), 'usd')}); "
            f"MFU {fmt(m.get('mfu'), 'pct')} against the {fmt(r.get('mfu'), 'pct')} the scenario assumes."
        )
        print(
            f"All stages: {fmt(m.get('total_gpu_hours'), 'count')} GPU-hours, {fmt(m.get('total_usd'), 'usd')} "
            f"(reported: {fmt(rep.get('total_gpu_hours'), 'count')}, {fmt(rep.get('total_usd'), 'usd')})."
        )
    else:
        print(
            f"At the measured throughput: {fmt(m.get('usd_per_m_output_tokens'), 'usd_small')} per million output "
            f"tokens and {fmt(m.get('usd_per_m_input_tokens'), 'usd_small')} per million input tokens "
            f"(the scenario's own figures: {fmt(r.get('usd_per_m_output_tokens'), 'usd_small')} and "
            f"{fmt(r.get('usd_per_m_input_tokens'), 'usd_small')}); {fmt(m.get('gpus_needed'), 'count')} GPUs for "
            f"the scenario's load (it ran on {fmt(r.get('gpus_needed'), 'count')})."
        )
    for note in c["notes"]:
        print(f"note: {note}")
    return 0


def run_scenarios(args: argparse.Namespace) -> int:
    from meter.config.scenarios import list_scenarios, load_scenario

    loc = locator(args)
    found = [load_scenario(str(p), loc) for p in list_scenarios(loc).values()]
    if args.json:
        emit_json(
            {
                "scenarios": [
                    {
                        "name": s.name,
                        "kind": s.kind,
                        "model": s.model,
                        "hardware": s.hardware,
                        "description": s.description,
                        "path": s.path,
                    }
                    for s in found
                ]
            }
        )
        return 0
    print(
        table(
            ["scenario", "kind", "model", "hardware", "description"],
            [[s.name, s.kind, s.model, s.hardware, s.description] for s in found],
        )
    )
    return 0
