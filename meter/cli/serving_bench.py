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
    """The deployment's bound at the benchmark's own shape (what --batch-per-gpu and --context leave)."""
    import dataclasses

    from meter.config.hardware import load_hardware
    from meter.config.models import load_model
    from meter.cost.from_bench import bench_shape
    from meter.cost.layout import deployment_bound
    from meter.cost.serve_estimate import choose_deployment

    loc = locator(args)
    model = load_model(scenario.model, loc)
    hw = load_hardware(args.hardware or scenario.hardware, loc)
    d = layout.apply(choose_deployment(scenario, layout, loc, required=True), model.args)
    prompt, decode, batch = bench_shape(cost.bench, cost.gpus)
    prefill_pool = d.prefill if layout.context else dataclasses.replace(d.prefill, context=prompt)
    decode_pool = d.decode
    if not layout.context:
        decode_pool = dataclasses.replace(decode_pool, context=decode)
    if not layout.batch_per_gpu and batch:
        decode_pool = dataclasses.replace(decode_pool, batch_per_gpu=batch)
    d = dataclasses.replace(d, prefill=prefill_pool, decode=decode_pool)
    return deployment_bound(model.args, model.name, hw, d)


def run(args: argparse.Namespace, gpus: int | None, scenario=None, layout=None) -> int:
    """Price the file; with a scenario or model named (``scenario``), also the engine's efficiency."""
    from meter.cost.display import fmt
    from meter.cost.from_bench import bench_efficiency, bench_price, price_serving_bench
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
    effs = [bench_efficiency(c, _bound(args, scenario, c, layout)) if scenario else None for c in costs]
    for c, e in zip(costs, effs):
        if e is not None and e.efficiency > 1:  # the bound is a ceiling no engine passes
            raise UsageError(
                f"{c.bench.source}: the benchmark's tokens took {e.measured_gpu_s:.4g} GPU-s, less than the "
                f"{e.bound_gpu_s:.4g} GPU-s the bound of deployment '{e.deployment}' needs ({e.efficiency:.1%} of "
                "the bound): the bound (deployment, --hardware, --gpus) or the file (its duration, its counts) is wrong"
            )
    if args.json:
        emit_json({"results": [{**c.as_dict(), "efficiency": e.as_dict() if e else None} for c, e in zip(costs, effs)]})
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
                "inf" if b.request_rate_per_s is None else f"{b.request_rate_per_s:g}",
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
    for c, e in zip(costs, effs):
        if e is not None:
            print(
                f"{c.bench.source}: {e.efficiency:.1%} of the bound of deployment '{e.deployment}' on "
                f"{args.hardware or scenario.hardware} for {scenario.model} (prefill at context {e.prefill_context}: "
                f"{e.prefill_bound_tokens_per_s_per_gpu:.4g} tokens/s per GPU; decode at context {e.decode_context}, "
                f"{e.decode_batch_per_gpu or 'as many as fit'} sequences per GPU: "
                f"{e.decode_bound_tokens_per_s_per_gpu:.4g} tokens/s per GPU); the bound needs "
                f"{e.bound_gpu_s:.4g} GPU-s for the benchmark's tokens, the engine took {e.measured_gpu_s:.4g}"
            )
    return 0


def _percentiles(stats) -> str | None:
    if stats is None:
        return None
    p50 = stats.percentiles_ms.get("p50", stats.median_ms)
    p99 = stats.percentiles_ms.get("p99")
    return f"{p50:.4g}/{p99:.4g}" if p50 is not None and p99 is not None else None
