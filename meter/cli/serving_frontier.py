"""``meter cost serve MODEL --hardware H --isl N --osl N``: the throughput-interactivity frontier.

The edge of :mod:`meter.cost.frontier`: loads the model, hardware, deployment (for its weight and
KV precisions), price and points files, builds the typed settings, runs the sweep (``--search``
over layouts), picks the cheapest point meeting ``--tpot-ms``/``--ttft-ms``/``--min-tok-s-user``,
fits the step model to ``--calibrate-from POINTS`` and validates it against ``--against POINTS``,
and prints a table or JSON (docs/cli-json.md), and ``--plot FILE.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from meter import domains as D
from meter.cli.common import locator, number, numbers
from meter.cli.output import emit_json, table
from meter.errors import UsageError

DEFAULT_POINT_DRAFTS = (
    3  # MTP draft tokens of a measured point that says only "mtp" (SGLang's and TRT-LLM's R1 recipes)
)


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("frontier (docs/cost.md: serving at a latency target)")
    g.add_argument("--isl", type=number(D.CONTEXT), metavar="N", help="prompt tokens a request: sweep the frontier")
    g.add_argument("--osl", type=number(D.CONTEXT), metavar="N", help="output tokens a request")
    g.add_argument(
        "--concurrency", type=numbers(D.CONCURRENCY), metavar="LIST", help="concurrencies to sweep (default 1..1024)"
    )
    g.add_argument("--search", action="store_true", help="also search layouts: TP, EP, attention-DP, disaggregated")
    g.add_argument("--dp-attention", action="store_true", help="attention data-parallel over the --tp GPUs")
    g.add_argument("--prefill-gpus", type=number(D.GPUS), metavar="N", help="disaggregated: GPUs that only prefill")
    g.add_argument("--decode-gpus", type=number(D.GPUS), metavar="N", help="disaggregated: GPUs that decode")
    g.add_argument("--tpot-ms", type=number(D.LATENCY_MS), metavar="MS", help="target: time per output token")
    g.add_argument("--ttft-ms", type=number(D.LATENCY_MS), metavar="MS", help="target: time to first token")
    g.add_argument("--min-tok-s-user", type=number(D.TOKENS_PER_S), metavar="R", help="target: tokens/s per user")
    g.add_argument("--mtp", type=number(D.DRAFT_TOKENS), default=0, metavar="N", help="MTP draft tokens a step")
    g.add_argument(
        "--mtp-acceptance", type=number(D.SHARE), metavar="R", help="acceptance of each draft position (default 0.7)"
    )
    g.add_argument(
        "--prefill-token-budget",
        type=number(D.CONTEXT),
        default=8192,
        metavar="N",
        help="chunked-prefill tokens a step",
    )
    g.add_argument(
        "--comm-overlap",
        type=number(D.SHARE),
        default=0.0,
        metavar="R",
        help="share of the communication the engine hides behind compute (two-batch overlap: 1; default 0)",
    )
    g.add_argument(
        "--max-nodes-per-token",
        type=number(D.GPUS),
        metavar="N",
        help="node-limited routing: a token's experts on at most N nodes (DeepSeek-V3: 4)",
    )
    g.add_argument(
        "--calibrate-from", metavar="POINTS.tsv", help="fit the step model to measured points (meter import)"
    )
    g.add_argument("--against", metavar="POINTS.tsv", help="predicted vs measured at every point of a points file")
    g.add_argument("--framework", help="with --calibrate-from/--against: only the points of this framework")
    g.add_argument("--plot", metavar="FILE.png", help="draw the curve: bound, prediction, measured points, target")


def wanted(args: argparse.Namespace) -> bool:
    """Whether the command asks for the frontier rather than the bound of one deployment."""
    return any(
        getattr(args, k, None)
        for k in ("isl", "osl", "search", "tpot_ms", "ttft_ms", "min_tok_s_user", "calibrate_from", "against", "plot")
    )


def run_frontier(args: argparse.Namespace) -> int:
    from meter.config.deployments import deployments_for, load_deployment
    from meter.config.hardware import load_hardware
    from meter.config.models import load_model
    from meter.cost import frontier as F
    from meter.cost.serving_step import DEFAULTS

    if not args.model:
        raise UsageError(
            "the frontier needs a MODEL: meter cost serve deepseek-v3 --hardware h200-sxm --isl 1024 --osl 1024"
        )
    if (args.isl is None) != (args.osl is None) or (args.isl is None and not args.against):
        raise UsageError("give both --isl and --osl (prompt and output tokens a request)")
    loc = locator(args)
    model = load_model(args.model, loc)
    a = model.args
    written = deployments_for(model.name, loc)
    base = load_deployment(args.deployment or (written[0] if written else "single-gpu"), loc)
    if args.weights:
        base = dataclasses.replace(base, weights=base.weights.with_linear(args.weights))
    if args.kv_cache:
        base = dataclasses.replace(base, kv_cache=args.kv_cache)
    base = dataclasses.replace(base, model=model.name)
    if args.max_nodes_per_token:
        limit = int(args.max_nodes_per_token)
        base = dataclasses.replace(
            base,
            prefill=dataclasses.replace(base.prefill, max_nodes_per_token=limit),
            decode=dataclasses.replace(base.decode, max_nodes_per_token=limit),
        )
    hw_name = args.hardware or base.hardware
    if hw_name is None:
        raise UsageError("the frontier needs --hardware (meter hardware lists them)")
    hw = load_hardware(hw_name, loc)
    engine = F.EngineSettings(
        mtp_draft_tokens=args.mtp,
        mtp_acceptance=args.mtp_acceptance if args.mtp_acceptance is not None else 0.7,
        prefill_token_budget=int(args.prefill_token_budget),
        comm_overlap=float(args.comm_overlap),
    )
    prices = _prices(args, hw, loc)
    notes: list[str] = []
    e, acceptance = DEFAULTS, engine.mtp_acceptance
    calibration = None
    if args.calibrate_from:
        from meter.cost.serving_fit import fit

        everything = observations(args.calibrate_from, a, base, loc, **_point_options(args))
        obs = [o for o in everything if o.work.hardware == hw.name]
        gpus = ", ".join(sorted({o.work.hardware for o in obs or everything}))
        source = f"fitted to {len(obs or everything)} points of {args.calibrate_from} on {gpus}"
        if not obs:
            # no point on this GPU: the efficiencies (shares of each GPU's own datasheet roofs and
            # its overheads) fitted on the others, each point on its own GPU, are carried over
            obs = everything
            notes.append(f"no point of {args.calibrate_from} ran on {hw.name}: the fit on {gpus} is carried over")
        calibration = fit(obs, acceptance=acceptance, source=source)
        e = calibration.efficiencies
        if args.mtp_acceptance is None:
            acceptance = calibration.mtp_acceptance
            engine = dataclasses.replace(engine, mtp_acceptance=acceptance)
    if getattr(args, "from_run", None):
        e = _measured_efficiencies(args, e, hw, notes)
    validation = None
    if args.against:
        from meter.cost.serving_fit import validate

        validation = validate(observations(args.against, a, base, loc, **_point_options(args)), e, acceptance)
    points, chosen, target = [], None, _target(args)
    if args.isl is not None:
        workload = F.Workload(int(args.isl), int(args.osl), _cache_hit(args))
        layouts = F.search_layouts(a, hw) if args.search else [_layout(args, a)]
        concurrencies = [int(c) for c in args.concurrency] if args.concurrency else F.DEFAULT_CONCURRENCIES
        points, left_out = F.sweep(a, hw, base, layouts, workload, engine, e, prices, concurrencies)
        notes += left_out
        if not points:
            raise UsageError(f"no layout of {model.name} fits on {hw.name}: " + "; ".join(left_out))
        chosen = F.cheapest(points, target) if target.any else None
        if target.any and chosen is None:
            notes.append("no point of the curve meets the target")
    doc = {
        "model": model.name,
        "hardware": hw.name,
        "isl": args.isl,
        "osl": args.osl,
        "weights": dataclasses.asdict(base.weights),
        "kv_cache": base.kv_cache,
        "engine": dataclasses.asdict(engine),
        "efficiencies": dataclasses.asdict(e),
        "usd_per_gpu_hour": prices.usd_per_gpu_hour,
        "usd_per_gpu_hour_p10": prices.usd_per_gpu_hour_p10,
        "usd_per_gpu_hour_p90": prices.usd_per_gpu_hour_p90,
        "power_per_gpu_w": prices.power_per_gpu_w,
        "frontier": [dataclasses.asdict(p) for p in points],
        "target": dataclasses.asdict(target) if target.any else None,
        "chosen": dataclasses.asdict(chosen) if chosen else None,
        "calibration": _calibration_doc(calibration),
        "validation": _validation_doc(validation),
        "notes": notes,
    }
    if args.plot:
        _plot(args.plot, points, validation, target, f"{model.name} on {hw.name}", chosen)
    if args.json:
        emit_json(doc)
    else:
        _print(doc, points, chosen, calibration, validation, notes, e)
    return 0


def _measured_efficiencies(args: argparse.Namespace, e, hw, notes: list[str]):
    """meter's own benchmarks first: a run's memory- and compute-bound cases set the HBM and GEMM
    efficiencies (the medians of their shares of the ceilings, as ``--from-run`` does for the bound);
    the rest stay as fitted or by default."""
    from meter.cost.measured.run import load_measured

    run = load_measured(args.from_run)
    values = {}
    for regime, name in (("memory", "memory"), ("compute", "gemm_compute")):
        q = run.regime_efficiency(regime)
        if q is not None:
            values[name] = min(1.0, max(1e-3, float(q.central)))
    if not values:
        raise UsageError(f"{run.path}: no case of the run has a ceiling to measure an efficiency against")
    if run.cpu or run.hardware != hw.name:
        notes.append(f"efficiencies measured on {run.label}, not {hw.name}: an efficiency transfer")
    measured = ", ".join(f"{k} {v:.3g}" for k, v in values.items())
    return e.with_values(f"{e.source}; {measured} measured by {run.path}", **values)


def _point_options(args: argparse.Namespace) -> dict:
    return {"framework": args.framework, "drafts": args.mtp, "prefill_token_budget": int(args.prefill_token_budget)}


def _prices(args: argparse.Namespace, hw, loc):
    """The GPU-hour price (``--price``, else the price table's), its P10-P90 over the providers'
    range by the Monte Carlo (a cost is proportional to it), and the power at TDP."""
    from meter.cost.configs import price_input
    from meter.cost.frontier import Prices
    from meter.cost.montecarlo import evaluate

    q = args.price
    if q is None:
        found = price_input(hw.name, args.tier, loc)
        q = None if found is None else found.quantity
    if q is None:
        return Prices(None, hw.tdp_w)
    samples = 20_000 if args.samples is None else args.samples
    s = evaluate(lambda x: {"usd": x["usd_per_gpu_hour"]}, {"usd_per_gpu_hour": q}, samples=samples, seed=args.seed)[
        "usd"
    ]
    return Prices(s.point, hw.tdp_w, s.p10, s.p90)


def _cache_hit(args: argparse.Namespace) -> float:
    return float(args.cache_hit_rate.central) if args.cache_hit_rate is not None else 0.0


def _target(args: argparse.Namespace):
    from meter.cost.frontier import Target

    return Target(
        tpot_s=args.tpot_ms / 1000 if args.tpot_ms else None,
        ttft_s=args.ttft_ms / 1000 if args.ttft_ms else None,
        min_tokens_per_s_per_user=args.min_tok_s_user,
    )


def _layout(args: argparse.Namespace, a):
    from meter.config.deployments import Pool, layout_problem
    from meter.cost.frontier import ParallelShape, ServingLayout

    tp = int(args.tp or 8)
    ep = int(args.ep or 1)
    shape = ParallelShape(tp, ep, bool(args.dp_attention))
    problem = layout_problem(shape.pool(Pool(context=1), 1), a)
    if problem:
        flag = {"tp": "--tp", "ep": "--ep"}.get(problem[0], "--tp")
        raise UsageError(f"{flag} {getattr(shape.pool(Pool(context=1), 1), problem[0])}: {problem[1]}")
    if args.prefill_gpus:
        return ServingLayout(shape, int(args.decode_gpus or shape.gpus), shape, int(args.prefill_gpus))
    if args.decode_gpus:
        raise UsageError("--decode-gpus is for a disaggregated layout: give --prefill-gpus too")
    return ServingLayout(shape)


def hardware_resolver(loc):
    """A points file's hardware name (a config name, InferenceX's class ``h200`` or a runner label
    ``b200-cw-1``) as a hardware config (:func:`meter.engines.points.hardware_config_name`), or None."""
    from meter.config.hardware import load_hardware
    from meter.engines.points import hardware_config_name

    names = loc.names("hardware")
    found: dict = {}

    def resolve(name: str):
        if name not in found:
            match = hardware_config_name(name, names)
            found[name] = load_hardware(match, loc) if match else None
        return found[name]

    return resolve


def observations(path: str, a, base, loc, **options):
    """The points of ``path`` as observations (:func:`meter.cost.measured.serving_points.observations`)."""
    from meter.cost.measured.serving_points import observations as build
    from meter.engines.points import read_points

    return build(read_points(Path(path)), a, base, hardware_resolver(loc), source=path, **options)


def _calibration_doc(c) -> dict | None:
    if c is None:
        return None
    return {
        "points": c.points,
        "mtp_acceptance": c.mtp_acceptance,
        "efficiencies": dataclasses.asdict(c.efficiencies),
        "median_abs_error": c.median_abs_error,
        "median_abs_error_per_user": c.median_abs_error_per_user,
        "rms_log_error": c.rms_log_error,
    }


def _validation_doc(v) -> dict | None:
    if v is None:
        return None

    def point(p) -> dict:
        return dataclasses.asdict(p) | {"above_bound": p.above_bound, "error": p.error}

    return {
        "points": [point(p) for p in v.points],
        "median_abs_error": v.median_abs_error,
        "median_abs_error_per_user": v.median_abs_error_per_user,
        "points_above_bound": [point(p) for p in v.points_above_bound],
        "efficiencies_from": v.source,
    }


def _money(x: float | None) -> str:
    return "-" if x is None else f"${x:.3g}"


def _print(doc, points, chosen, calibration, validation, notes, e) -> None:
    if points:
        rows = [
            [
                p.concurrency,
                p.layout,
                f"{p.output_tokens_per_s_per_gpu:.4g}",
                f"{p.total_tokens_per_s_per_gpu:.4g}",
                f"{p.tokens_per_s_per_user:.4g}",
                f"{p.ttft_s * 1000:.4g}",
                f"{p.tpot_s * 1000:.4g}",
                _money(p.usd_per_m_output_tokens)
                + (
                    f" ({p.usd_per_m_output_tokens_p10:.3g}-{p.usd_per_m_output_tokens_p90:.3g})"
                    if p.usd_per_m_output_tokens_p10 is not None
                    and p.usd_per_m_output_tokens_p10 != p.usd_per_m_output_tokens_p90
                    else ""
                ),
                _money(p.usd_per_m_input_tokens),
                "-" if p.joules_per_output_token is None else f"{p.joules_per_output_token:.3g}",
                f"{p.output_tokens_per_s_per_gpu_bound:.4g}",
            ]
            for p in points
        ]
        title = (
            f"Frontier: {doc['model']} on {doc['hardware']}, {doc['isl']:,}/{doc['osl']:,} tokens "
            f"(step model: {e.source})"
        )
        print(
            table(
                ["conc", "layout", "out tok/s/GPU", "total tok/s/GPU", "tok/s/user", "TTFT ms", "TPOT ms",
                 "$/M out (P10-P90)", "$/M in", "J/out tok", "bound out tok/s/GPU"],
                rows,
                title=title,
            )
        )  # fmt: skip
    if chosen is not None:
        print(
            f"\ncheapest meeting the target: {chosen.layout} at concurrency {chosen.concurrency}: "
            f"{chosen.output_tokens_per_s_per_gpu:.4g} output tok/s/GPU, {chosen.tokens_per_s_per_user:.4g} tok/s/user, "
            f"TPOT {chosen.tpot_s * 1000:.3g} ms, TTFT {chosen.ttft_s * 1000:.3g} ms, "
            f"{_money(chosen.usd_per_m_output_tokens)} per M output tokens, {_money(chosen.usd_per_m_input_tokens)} per M input"
        )
    if calibration is not None:
        from meter.cost.serving_fit import FREE

        fitted = ", ".join(
            f"{n} {calibration.mtp_acceptance if n == 'mtp_acceptance' else getattr(calibration.efficiencies, n):.3g}"
            for n, _, _ in FREE
        )
        print(
            f"\ncalibrated on {calibration.points} points: {fitted}; median error {calibration.median_abs_error:.1%} "
            f"(output tok/s/GPU), {calibration.median_abs_error_per_user:.1%} (tok/s/user)"
        )
    if validation is not None:
        rows = [
            [
                p.setup,
                p.concurrency,
                f"{p.measured_output_tokens_per_s_per_gpu:.4g}",
                f"{p.predicted_output_tokens_per_s_per_gpu:.4g}",
                f"{p.output_tokens_per_s_per_gpu_bound:.4g}",
                f"{p.measured_tokens_per_s_per_user:.4g}",
                f"{p.predicted_tokens_per_s_per_user:.4g}",
                f"{p.error:+.0%}",
                "ABOVE BOUND" if p.above_bound else "",
            ]
            for p in validation.points
        ]
        print()
        print(
            table(
                ["setup", "conc", "measured out/GPU", "predicted", "bound", "measured tok/s/user", "predicted",
                 "error", ""],
                rows,
                title=f"Predicted vs measured (efficiencies: {validation.source})",
            )
        )  # fmt: skip
        print(
            f"median error {validation.median_abs_error:.1%} (output tok/s/GPU), "
            f"{validation.median_abs_error_per_user:.1%} (tok/s/user); "
            f"{len(validation.points_above_bound)} of {len(validation.points)} measured points above the bound"
            + (": the model is wrong there" if validation.points_above_bound else "")
        )
    for n in notes:
        print(f"note: {n}")


def _plot(path: str, points, validation, target, title: str, chosen) -> None:
    from meter.report.plots import render, serving_frontier

    measured = validation.points if validation else ()
    render(serving_frontier(points, measured, target, title, chosen), Path(path))


def report_views(path: str, model_name: str, loc, calibrate: bool) -> tuple:
    """One frontier view per hardware and lengths in the points file: the predicted curves of the
    (at most four most measured) layouts there, the measured points at their own setups, and
    their errors; fitted per GPU with ``calibrate``."""
    from meter.config.deployments import deployments_for, load_deployment
    from meter.config.models import load_model
    from meter.cost import frontier as F
    from meter.cost.measured.serving_points import layout_of
    from meter.cost.measured.serving_points import observations as build
    from meter.cost.serving_fit import fit, validate
    from meter.cost.serving_step import DEFAULTS
    from meter.engines.points import read_points
    from meter.report.data import FrontierView

    model = load_model(model_name, loc)
    written = deployments_for(model.name, loc)
    base = dataclasses.replace(load_deployment(written[0] if written else "single-gpu", loc), model=model.name)
    resolve = hardware_resolver(loc)
    points = read_points(Path(path))
    views = []
    groups: dict = {}
    for p in points:
        groups.setdefault((p.hardware, p.isl, p.osl), []).append(p)
    fitted: dict = {}
    for (hardware, isl, osl), mine in sorted(groups.items()):
        hw = resolve(hardware)
        if hw is None:
            raise UsageError(
                f"{path}: hardware {hardware!r}: no hardware config of that name (meter hardware lists them)"
            )
        e, acceptance = DEFAULTS, 0.7
        if calibrate:
            if hw.name not in fitted:
                everything = build(points, model.args, base, resolve, source=path, only_hardware=hw.name)
                fitted[hw.name] = fit(everything, source=f"fitted to {len(everything)} points on {hw.name}")
            e, acceptance = fitted[hw.name].efficiencies, fitted[hw.name].mtp_acceptance
        v = validate(build(mine, model.args, base, resolve, source=path), e, acceptance)
        counts: dict = {}
        for p in mine:
            counts[layout_of(p)] = counts.get(layout_of(p), 0) + 1
        layouts = sorted(counts, key=lambda lay: -counts[lay])[:4]
        curve, _ = F.sweep(model.args, hw, base, layouts, F.Workload(isl, osl), F.EngineSettings(), e)
        views.append(
            FrontierView(
                f"{model.name} on {hw.name}, {isl:,}/{osl:,} tokens ({Path(path).name})",
                tuple(curve),
                v.points,
                v.median_abs_error,
                v.median_abs_error_per_user,
                len(v.points_above_bound),
                e.source,
            )
        )
    return tuple(views)
