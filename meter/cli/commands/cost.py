"""``meter cost train``, ``meter cost serve``, ``meter calibrate`` and ``meter scenarios``."""

from __future__ import annotations

import argparse
import math
import sys

from meter import domains as D
from meter.cli import serving_bench, serving_frontier
from meter.cli.commands.cost_show import cluster_row, print_cluster, show
from meter.cli.common import OneLineParser, locator, number, numbers
from meter.cli.output import emit_json, table
from meter.config.deployments import KV_DTYPES, WEIGHT_DTYPES
from meter.config.hardware import PEAK_DTYPES
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


def _correlation(text: str):
    from meter.cost.montecarlo import Coupling

    names, sep, value = text.partition("=")
    pair = [n.strip() for n in names.split(",")]
    try:
        rho = float(value)
    except ValueError:
        rho = float("nan")
    if not sep or len(pair) != 2 or not all(pair) or not -1 <= rho <= 1:
        raise argparse.ArgumentTypeError(
            f"expected NAME,NAME=RHO with RHO in [-1, 1] (e.g. utilization,avg_power_w=0.5), not {text!r}"
        )
    return Coupling(pair[0], pair[1], rho)


def _from_run(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--from-run",
        metavar="RUN.json",
        action="append",
        default=[],
        help=f"{what}; repeat with runs of the same device to carry the spread between runs",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", help="a scenario in configs/scenarios (meter scenarios lists them)")
    _from_run(p, "use what a run file measured")
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
        "--correlate",
        type=_correlation,
        action="append",
        default=[],
        metavar="A,B=RHO",
        help="draw two ranged inputs together with rank correlation RHO, e.g. utilization,avg_power_w=0.5",
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
    _register_train(cost_sub, common)
    _register_cluster(cost_sub, common)
    _register_serve(cost_sub, common)

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


def _register_train(cost_sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--mfu", type=_quantity, help="end-to-end MFU against the dense peak of --mfu-dtype: 0.39 or 0.30..0.45"
    )
    p.add_argument(
        "--achieved-tflops",
        type=_quantity,
        metavar="TFLOPS",
        help="end-to-end achieved TFLOP/s per GPU instead of an MFU, e.g. 385 or 300..400",
    )
    p.add_argument(
        "--mfu-dtype",
        choices=PEAK_DTYPES,
        help="the dense peak an MFU is against (default bf16, as DeepSeek reports; fp16 for a V100-era comparison)",
    )
    p.add_argument("--gpus", type=number(D.GPUS), metavar="N", help="cluster size, for days on the cluster")
    p.add_argument(
        "--comm-run",
        metavar="RUN.json",
        help="link bandwidths measured by meter bench --distributed, for the expert-parallel model",
    )
    _collective(p)
    _common(p)
    p.set_defaults(handler=run_train)


def _register_cluster(cost_sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    _from_run(p, "compute measured in a run file instead of compute_mfu")
    p.add_argument(
        "--comm-run",
        metavar="RUN.json",
        help="link bandwidths measured by meter bench --distributed, or nccl-tests' output (meter import nccl-tests)",
    )
    _collective(p)
    _inputs(p)
    p.set_defaults(handler=run_cluster)


def _register_serve(cost_sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = cost_sub.add_parser(
        "serve",
        parents=[common],
        help="serving cost per million tokens, from a deployment's bound",
        description="Serving cost: the bound of a deployment that could exist (memory per GPU, bytes, "
        "FLOPs and communication per step on the target GPU), times an efficiency (given, measured by a "
        "run, or implied by a published throughput); $ per million tokens, GPUs for a load, joules.",
        epilog="Examples: meter cost serve --scenario deepseek-v3-day6; meter cost serve llama-3.1-405b "
        "--hardware h100-sxm --tp 8 --weights fp8 --efficiency 0.4; meter cost serve --from-run runs/RUN.json; "
        "meter cost serve deepseek-v3 --hardware h200-sxm --isl 1024 --osl 1024 --tpot-ms 20 --search (the frontier)",
    )
    p.add_argument("model", nargs="?", help="model config to serve (instead of a scenario)")
    p.add_argument("--deployment", help="a deployment in configs/deployments (default: the scenario's or the model's)")
    p.add_argument("--tp", type=number(D.EP), metavar="N", help="tensor-parallel degree of both pools")
    p.add_argument("--ep", type=number(D.EP), metavar="N", help="expert-parallel degree of both pools (MoE models)")
    p.add_argument("--weights", choices=WEIGHT_DTYPES, help="precision of the linear layers' weights")
    p.add_argument(
        "--batch-per-gpu",
        type=number(D.BATCH_PER_GPU),
        metavar="N",
        help="decode sequences per GPU, averaged over a TP group: 0.5 is concurrency 4 on a TP8 node "
        "(default: the deployment's)",
    )
    p.add_argument("--context", type=number(D.CONTEXT), help="context length of both pools (prompt length in prefill)")
    p.add_argument("--prefill-context", type=number(D.CONTEXT), metavar="N", help="prompt length of the prefill pool")
    p.add_argument("--decode-context", type=number(D.CONTEXT), metavar="N", help="KV length a decode step reads")
    p.add_argument("--kv-cache", choices=KV_DTYPES, help="KV cache dtype (fp8_mla: FlashMLA's 656-byte fp8 latent)")
    p.add_argument(
        "--batch",
        type=number(D.BATCH),
        help="with --from-run: price the run's decode measurement at this batch (it must have one)",
    )
    p.add_argument(
        "--efficiency", type=_quantity, metavar="R", help="share of the deployment's bound reached, e.g. 0.3..0.5"
    )
    p.add_argument("--cache-hit-rate", type=_quantity, metavar="R", help="share of input tokens served from cache")
    p.add_argument("--tokens-per-day", metavar="IN,OUT", help="load to size the deployment for, e.g. 608B,168B")
    serving_bench.add_options(p)
    serving_frontier.add_options(p)
    p.add_argument("--gpus", type=number(D.GPUS), metavar="N", help="with --from-bench: the GPUs the server ran on")
    _common(p)
    p.set_defaults(handler=run_serve, scenario_default="deepseek-v3-day6")


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
    from meter.cost.measured.run import load_measured

    return load_measured(args.from_run)


def _couplings(args: argparse.Namespace, scenario) -> list:
    from meter.config.scenarios import correlation_error

    for c in args.correlate:
        why = correlation_error([c.first, c.second], scenario.inputs)
        if why:
            raise UsageError(f"--correlate {c.first},{c.second}={c.rho:g}: {why}")
    return list(args.correlate)


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, e.g. h800-sxm,h100-sxm; got {text!r}")
    return names


def _collective(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--collective",
        choices=["all_reduce", "all_to_all", "all_gather"],
        help="with --comm-run nccl-tests output that does not name its test and whose rows do not tell",
    )


def _comm_run(args: argparse.Namespace):
    """The measured link bandwidths of a distributed run file, or None."""
    if not getattr(args, "comm_run", None):
        if getattr(args, "collective", None):
            raise UsageError("--collective names the test of --comm-run nccl-tests output; give --comm-run FILE")
        return None
    from meter.config.hardware import list_hardware
    from meter.cost.ep_comm import measured_links
    from meter.engines.comm_run import load_comm_run

    doc = load_comm_run(args.comm_run, list_hardware(locator(args)), args.collective)  # a run file, or nccl-tests'
    if doc.metadata.imported is not None:
        for note in doc.metadata.imported.notes:
            if not note.startswith("nThread"):  # what was skipped, and how each test's collective was told
                print(note, file=sys.stderr)
    if not doc.communication:
        raise UsageError(
            f"{args.comm_run}: field 'communication': no communication results; --comm-run takes a run of "
            "meter bench --distributed with communication cases"
        )
    links = measured_links(doc, args.comm_run)
    if links.nvlink_bytes_per_s is None and links.network_bytes_per_s is None:
        raise UsageError(f"{args.comm_run}: no verified all-to-all or all-reduce to measure the links with")
    return links


def _samples(args: argparse.Namespace) -> int:
    from meter.cost.result import DEFAULT_SAMPLES

    return DEFAULT_SAMPLES if args.samples is None else args.samples


# --- commands ----------------------------------------------------------------------------------


def run_train(args: argparse.Namespace) -> int:
    from meter.cost.configs import load_and_estimate_train

    loc = locator(args)
    scenario = _train_scenario(args, loc)
    run = _measured(args)
    given = [f for f, v in (("--mfu", args.mfu), ("--achieved-tflops", args.achieved_tflops)) if v is not None]
    if run is not None and given:
        raise UsageError(f"--from-run and {given[0]} are two sources of the same rate; give one")
    _check_rate_flags(args, args.hardware or scenario.hardware, loc)
    estimate = load_and_estimate_train(
        scenario,
        overrides=_overrides(args, {"mfu": args.mfu, "achieved_tflops": args.achieved_tflops}),
        run=run,
        hardware=args.hardware,
        tier=args.tier,
        samples=_samples(args),
        seed=args.seed,
        locator=loc,
        comm=_comm_run(args),
        couplings=_couplings(args, scenario),
    )
    show(args, estimate)
    return 0


def _check_rate_flags(args: argparse.Namespace, hardware: str | None, loc) -> None:
    """--achieved-tflops above the hardware's largest peak, or an --mfu no GPU reaches, is refused."""
    if hardware is None or (args.achieved_tflops is None and args.mfu is None):
        return
    from meter.config.hardware import load_hardware

    spec = load_hardware(hardware, loc)
    peaks = {k: v for k, v in spec.peak_tflops.items() if v}
    if not peaks:
        return
    top_dtype, top = max(peaks.items(), key=lambda kv: kv[1])
    if args.achieved_tflops is not None and _high(args.achieved_tflops) > top:
        raise UsageError(
            f"--achieved-tflops {args.achieved_tflops.describe()}: above the largest datasheet peak of {spec.name} "
            f"({top:g} TFLOP/s {top_dtype}); no GPU runs faster than its peak"
        )
    basis = peaks.get(args.mfu_dtype or "bf16")
    if args.mfu is not None and basis and _high(args.mfu) > top / basis:
        raise UsageError(
            f"--mfu {args.mfu.describe()}: above what {spec.name} can reach against its {args.mfu_dtype or 'bf16'} "
            f"peak (at most {top / basis:.3g}: its {top_dtype} peak over its {args.mfu_dtype or 'bf16'} peak)"
        )


def _high(q) -> float:
    return q.high if getattr(q, "high", None) is not None else q.central


def _train_scenario(args: argparse.Namespace, loc):
    """The scenario, or one made from a model and --tokens; then --tokens, --seq, --gpus, --mfu-dtype."""
    import dataclasses

    from meter.config.scenarios import Scenario, Stage, domain_error, load_scenario

    if args.scenario and args.model and args.tokens is not None:
        raise UsageError(
            f"--scenario {args.scenario} and {args.model} --tokens are two descriptions of the run; give one "
            "(--scenario NAME --tokens N sets the scenario's tokens)"
        )
    if args.tokens is not None and domain_error("tokens", args.tokens):
        raise UsageError(f"--tokens {args.tokens.describe()}: {domain_error('tokens', args.tokens)}")
    if args.scenario:
        scenario = load_scenario(args.scenario, loc)
        if scenario.kind != "train":
            raise UsageError(
                f"scenario '{scenario.name}' is a {scenario.kind} scenario; meter cost train needs a training one"
            )
        if args.model and args.model != scenario.model:
            raise UsageError(f"scenario '{scenario.name}' is about {scenario.model}, not {args.model}; drop one")
        if scenario.kind != "train":
            raise UsageError(
                f"scenario '{scenario.name}' is a {scenario.kind} scenario; meter cost train needs a training one"
            )
    elif args.model:
        if args.tokens is None:
            raise UsageError("give --tokens (e.g. 14.8T) with a model, or use --scenario")
        from meter.config.models import load_model

        model = load_model(args.model, loc)
        scenario = Scenario(
            name=f"{model.name}-ad-hoc",
            description=f"{model.name} trained on {args.tokens.describe()} tokens",
            kind="train",
            model=args.model,  # as given: a name, a YAML path or a config.json, loadable again
            hardware=args.hardware or "h800-sxm",
            stages=[Stage(name="pre-training", tokens=args.tokens, source="command line")],
        )
    else:
        raise UsageError("give a MODEL with --tokens, or --scenario NAME (meter scenarios lists them)")
    stages = list(scenario.stages)
    if args.tokens is not None and args.scenario:
        i = next((k for k, st in enumerate(stages) if st.tokens is not None), None)
        if i is None:
            raise UsageError(f"scenario '{scenario.name}' has no stage sized in tokens for --tokens to set")
        stages[i] = dataclasses.replace(stages[i], tokens=args.tokens, source="command line")
    return dataclasses.replace(
        scenario,
        stages=stages,
        seq_len=args.seq or scenario.seq_len,
        cluster_gpus=args.gpus or scenario.cluster_gpus,
        mfu_dtype=args.mfu_dtype or scenario.mfu_dtype,
    )


def run_cluster(args: argparse.Namespace) -> int:
    from meter.config.quantity import Quantity
    from meter.config.scenarios import load_scenario
    from meter.cost.configs import load_and_estimate_train

    loc = locator(args)
    scenario = load_scenario(args.scenario, loc)
    if scenario.kind != "train":
        raise UsageError(
            f"scenario '{scenario.name}' is a {scenario.kind} scenario; meter cost cluster needs a training one"
        )
    overrides = _overrides(args, {})
    if args.ep:
        from meter.bench.cases import ep_problem
        from meter.config.models import load_model

        model_args = load_model(scenario.model, loc).args
        for ep in args.ep:
            why = ep_problem(model_args, int(ep), None)
            if why:
                raise UsageError(f"--ep {ep:g}: {why} ({scenario.model})")
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
                load_and_estimate_train(
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


def _tokens_per_day(text: str | None) -> dict:
    if text is None:
        return {}
    from meter.config.quantity import Quantity
    from meter.units import parse_quantity

    try:
        inp, out = (parse_quantity(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--tokens-per-day expects IN,OUT token counts such as 608B,168B, not {text!r}") from None
    if not all(math.isfinite(x) and x >= 0 for x in (inp, out)) or inp + out <= 0:
        raise UsageError(f"--tokens-per-day needs a load: finite counts, not both 0, such as 608B,168B (got {text!r})")
    return {"input_tokens_per_day": Quantity.point(inp), "output_tokens_per_day": Quantity.point(out)}


def run_serve(args: argparse.Namespace) -> int:
    from meter.cost.configs import load_and_estimate_serve
    from meter.cost.serving_pipeline import LayoutOverrides

    loc = locator(args)
    if args.from_bench:  # a serving engine's benchmark file (meter.cli.serving_bench)
        if args.efficiency is not None:
            raise UsageError("--from-bench measures the efficiency; --efficiency does not go with it")
        return _serve_from_bench(args, loc)
    if serving_frontier.wanted(args):  # the throughput-interactivity frontier (meter.cli.serving_frontier)
        return serving_frontier.run_frontier(args)
    scenario = _serve_scenario(args, loc)
    run = _measured(args)
    if args.efficiency is not None and run is not None:
        raise UsageError("--from-run and --efficiency are two sources of the same efficiency; give one")
    overrides = _overrides(
        args,
        {"cache_hit_rate": args.cache_hit_rate, "efficiency": args.efficiency, **_tokens_per_day(args.tokens_per_day)},
    )
    layout = LayoutOverrides(
        deployment=args.deployment,
        tp=args.tp,
        ep=args.ep,
        weights=args.weights,
        batch_per_gpu=args.batch_per_gpu,
        context=args.context,
        prefill_context=args.prefill_context,
        decode_context=args.decode_context,
        kv_cache=args.kv_cache,
    )
    estimate = load_and_estimate_serve(
        scenario,
        overrides=overrides,
        run=run,
        hardware=args.hardware,
        tier=args.tier,
        batch=args.batch,
        context=args.context if args.batch is not None else None,
        layout=layout,
        samples=_samples(args),
        seed=args.seed,
        locator=loc,
        couplings=_couplings(args, scenario),
    )
    show(args, estimate)
    return 0


def _serve_from_bench(args: argparse.Namespace, loc) -> int:
    from meter.cost.serving_pipeline import LayoutOverrides

    if args.from_run:
        raise UsageError("--from-bench and --from-run are two measurements to price; give one")
    named = bool(args.model or args.scenario)  # the engine's efficiency needs the model it served
    layout = LayoutOverrides(
        args.deployment,
        args.tp,
        args.ep,
        args.weights,
        args.batch_per_gpu,
        args.context,
        args.prefill_context,
        args.decode_context,
        args.kv_cache,
    )
    return serving_bench.run_serving_bench(args, args.gpus, _serve_scenario(args, loc) if named else None, layout)


def _serve_scenario(args: argparse.Namespace, loc):
    """The scenario (DeepSeek's day 6 by default), or one made from a model: priced from the price
    table, served on --deployment, the model's own deployment, or one GPU."""
    from meter.config.scenarios import Scenario, load_scenario

    if args.model and args.scenario:
        raise UsageError("give a MODEL or --scenario NAME, not both")
    if not args.model:
        scenario = load_scenario(args.scenario or args.scenario_default, loc)
        if scenario.kind != "serve":
            raise UsageError(
                f"scenario '{scenario.name}' is a {scenario.kind} scenario; meter cost serve needs a serve one"
            )
        return scenario
    from meter.config.deployments import deployments_for, load_deployment
    from meter.config.models import load_model

    model = load_model(args.model, loc)
    written = deployments_for(model.name, loc)
    name = args.deployment or (written[0] if written else "single-gpu")
    hardware = args.hardware or load_deployment(name, loc).hardware
    if hardware is None:
        raise UsageError(f"deployment '{name}' names no GPU: give --hardware (meter hardware lists them)")
    return Scenario(
        name=f"{model.name}-serve",
        description=f"{model.name} served on {name}",
        kind="serve",
        model=args.model,  # as given: a name, a YAML path or a config.json, loadable again
        hardware=hardware,
        deployment=name,
    )


def run_calibrate(args: argparse.Namespace) -> int:
    from meter.cli.commands.cost_show import calibration, print_calibration

    c = calibration(args.run, args.scenario, locator(args))
    if args.json:
        emit_json(c.as_dict())
    else:
        print_calibration(c)
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
