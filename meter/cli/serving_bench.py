"""``meter cost serve --from-bench FILE --gpus N``: a serving engine's benchmark file, priced (docs/measure.md)."""

from __future__ import annotations

import argparse

from meter.cli.common import locator
from meter.cli.output import emit_json, table
from meter.errors import UsageError


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from-bench",
        metavar="FILE",
        help="price a serving benchmark's result file: vLLM (vllm bench serve --save-result, benchmark_serving.py) "
        "or SGLang (bench_serving); needs --gpus",
    )
    p.add_argument(
        "--engine",
        choices=["auto", "vllm", "vllm-legacy", "sglang"],
        default="auto",
        help="the file's format (default: recognised by its keys)",
    )


def _bound(args: argparse.Namespace, scenario, cost, layout):
    """The deployment's bound at the benchmark's own shape (what --batch-per-gpu and --context leave), on the
    benchmark's GPUs: a deployment written for more (DeepSeek's 144-GPU decode pool) is resized to --gpus."""
    import dataclasses

    from meter.config.hardware import load_hardware
    from meter.config.models import load_model
    from meter.cost.configs import choose_deployment
    from meter.cost.layout import deployment_bound
    from meter.cost.measured.bench import bench_shape

    loc = locator(args)
    model = load_model(scenario.model, loc)
    hw = load_hardware(args.hardware or scenario.hardware, loc)
    d = layout.apply(choose_deployment(scenario, layout, loc, required=True), model.args)
    d, resized = _on_gpus(d, cost.gpus, model.args, given=layout.tp is not None or layout.ep is not None)
    prompt, decode, batch = bench_shape(cost.bench, cost.gpus)
    prefill_pool = d.prefill if layout.context else dataclasses.replace(d.prefill, context=prompt)
    decode_pool = d.decode
    if not layout.context:
        decode_pool = dataclasses.replace(decode_pool, context=decode)
    if not layout.batch_per_gpu and batch:
        decode_pool = dataclasses.replace(decode_pool, batch_per_gpu=batch)
    d = dataclasses.replace(d, prefill=prefill_pool, decode=decode_pool)
    try:
        return deployment_bound(model.args, model.name, hw, d), resized
    except UsageError as exc:
        if resized is None:
            raise
        raise UsageError(f"--gpus {cost.gpus}: {resized}, where {exc}") from None


def _on_gpus(d, gpus: int, a, *, given: bool):
    """``d`` with each pool on the benchmark's ``gpus`` (EP and DP over them for an MoE model, TP for a dense one),
    and a phrase saying so; ``d`` itself where its pools already are. With --tp/--ep given, a mismatch is refused."""
    import dataclasses

    from meter.config.deployments import layout_problem

    if all(p.gpus == gpus for p in (d.prefill, d.decode)):
        return d, None
    sizes = f"prefill on {d.prefill.gpus} GPU(s), decode on {d.decode.gpus}"
    if given:
        raise UsageError(
            f"--gpus {gpus}: the layout runs {sizes}; the bound must be of the {gpus} GPU(s) the benchmark ran on "
            "(give --tp/--ep that fill them)"
        )
    pools = {}
    for phase in ("prefill", "decode"):
        p = d.pool(phase)
        if a.is_moe:
            spare = p.redundant_experts if (a.n_routed_experts + p.redundant_experts) % gpus == 0 else 0
            p = dataclasses.replace(p, tp=1, dp=gpus, ep=gpus, redundant_experts=spare, routed_experts_per_gpu=None)
        else:
            p = dataclasses.replace(p, tp=gpus, dp=1, ep=1)
        problem = layout_problem(p, a)
        if problem:
            raise UsageError(
                f"--gpus {gpus}: deployment '{d.name}' runs {sizes}, and on {gpus} GPU(s) its {phase} pool's "
                f"{problem[0]} {getattr(p, problem[0])} {problem[1]}; give --tp/--ep or --deployment for {gpus} GPU(s)"
            )
        pools[phase] = p
    how = f"EP {gpus} x DP {gpus}" if a.is_moe else f"TP {gpus}"
    return dataclasses.replace(
        d, **pools
    ), f"deployment '{d.name}' ({sizes}) resized to the benchmark's {gpus} GPU(s), {how}"


def run_serving_bench(args: argparse.Namespace, gpus: int | None, scenario=None, layout=None) -> int:
    """Price the file; with a scenario or model named (``scenario``), also the engine's efficiency."""
    from meter.cost.configs import bench_price
    from meter.cost.display import fmt
    from meter.cost.measured.bench import bench_efficiency, price_serving_bench
    from meter.engines.serving import load_serving_bench

    if gpus is None:
        raise UsageError("--from-bench needs --gpus N: the GPUs the server ran on")
    benches = load_serving_bench(args.from_bench, args.engine)
    price_q = getattr(args, "price", None)
    price = bench_price(
        price=price_q.central if price_q is not None else None,
        hardware=getattr(args, "hardware", None),
        tier=getattr(args, "tier", None),
        locator=locator(args),
    )
    costs = [price_serving_bench(b, gpus=gpus, price=price) for b in benches]
    bounds = [_bound(args, scenario, c, layout) if scenario else (None, None) for c in costs]
    effs = [bench_efficiency(c, bound) if bound is not None else None for c, (bound, _) in zip(costs, bounds)]
    for c, e in zip(costs, effs):
        if e is not None and e.efficiency > 1:  # the bound is a ceiling no engine passes
            raise UsageError(
                f"{c.bench.source}: the benchmark's tokens took {e.measured_gpu_s:.4g} GPU-s, less than the "
                f"{e.bound_gpu_s:.4g} GPU-s the bound of deployment '{e.deployment}' needs ({e.efficiency:.1%} of "
                "the bound): the bound (deployment, --hardware, --gpus) or the file (its duration, its counts) is wrong"
            )
    if args.json:
        results = []
        for c, e, (_, resized) in zip(costs, effs, bounds):
            eff = None
            if e is not None:
                eff = {
                    **e.as_dict(),
                    "resized": resized,
                    "measures": "engine" if c.bench.paced_by == "none" else "load",
                }
            results.append({**c.as_dict(), "efficiency": eff})
        emit_json({"results": results})
        return 0
    rows = []
    for c in costs:
        b = c.bench
        ttft = b.latencies.get("ttft")
        tpot = b.latencies.get("tpot")
        rows.append(
            [
                b.source,
                b.engine,
                b.model_id or b.backend,
                _rate(b),
                f"{b.duration_s:.4g}",
                f"{c.output_tokens_per_s_per_gpu:.4g}",
                f"{c.input_tokens_per_s_per_gpu:.4g}",
                fmt(c.usd_per_m_output_tokens, "usd_small"),
                fmt(c.usd_per_m_input_tokens, "usd_small"),
                _percentiles(ttft),
                _percentiles(tpot),
            ]
        )
    headers = ["result", "engine", "model", "req/s", "duration s", "out tok/s/GPU", "in tok/s/GPU"]
    headers += ["$/M output", "$/M input", "TTFT ms (p50/p99)", "TPOT ms (p50/p99)"]
    title = f"Serving benchmark on {gpus} GPU(s) at {fmt(price.usd_per_gpu_hour, 'usd_small')}/GPU-hour"
    print(table(headers, rows, title=title))
    print(
        f"price: {price.source}"
        + (f" ({price_q.describe()} given: its central value)" if price_q and not price_q.is_point else "")
    )
    print(
        "$/M output charges all the server's GPU time to the output tokens, $/M input all of it to the input "
        "tokens (prefill and decode share the GPUs); the two do not add up."
    )
    for c, e, (_, resized) in zip(costs, effs, bounds):
        if e is not None:
            b = c.bench
            print(
                f"{b.source}: {e.efficiency:.1%} of the bound of deployment '{e.deployment}' on "
                f"{args.hardware or scenario.hardware} for {scenario.model} (prefill at context {e.prefill_context}: "
                f"{e.prefill_bound_tokens_per_s_per_gpu:.4g} tokens/s per GPU; decode at context {e.decode_context}, "
                f"{e.decode_batch_per_gpu or 'as many as fit'} sequences per GPU: "
                f"{e.decode_bound_tokens_per_s_per_gpu:.4g} tokens/s per GPU); the bound needs "
                f"{e.bound_gpu_s:.4g} GPU-s for the benchmark's tokens, the engine took {e.measured_gpu_s:.4g}"
                + (f"; {resized}" if resized else "")
                + (f"; {_paced(b)}" if b.paced_by != "none" else "")
            )
    return 0


def _rate(b) -> str:
    if b.paced_by == "trace":
        return "trace"
    return "inf" if b.request_rate_per_s is None else f"{b.request_rate_per_s:g}"


def _paced(b) -> str:
    """Why a paced run's efficiency is the load's, not the engine's."""
    pace = "a trace's timestamps" if b.paced_by == "trace" else f"{b.request_rate_per_s:g} requests/s"
    return (
        f"the requests were sent at {pace}, so this measures the offered load, not the engine "
        "(send them at once, --request-rate inf, to measure the engine)"
    )


def _percentiles(stats) -> str | None:
    if stats is None:
        return None
    p50 = stats.percentiles_ms.get("p50", stats.median_ms)
    p99 = stats.percentiles_ms.get("p99")
    return f"{p50:.4g}/{p99:.4g}" if p50 is not None and p99 is not None else None
