"""``meter bench``: sweeps of layer benchmarks, a suite, the device's ceilings, the sampler's
overhead, the distributed run under torchrun, and ``--plan`` (what a sweep needs and costs on a GPU
that is not here yet)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from meter import domains as D
from meter.cli.benchrun import (
    CPU_WARNING,
    add_execution_options,
    cases_from_suite,
    execute,
    finish_output,
    print_projections,
    print_results,
    push,
    run_metadata,
    say,
    select,
    timing_settings,
)
from meter.cli.common import bytes_arg, locator, number, numbers
from meter.cli.output import emit_json, table
from meter.config.pricing import TIERS
from meter.errors import UsageError


def _csv(choices: tuple[str, ...] | None = None):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if choices and t not in choices]
        if not items or bad:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(choices or ())}; got {text!r}"
            )
        return items

    return parse


def _fused_plan(text: str) -> str:
    from meter.bench.cases import parse_fused_plan

    try:
        parse_fused_plan(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "bench",
        parents=[common],
        help="benchmark MoE, MLA and dense layers at a model's real shapes",
        description="Benchmark layers one at a time (a whole model does not fit one GPU) for training "
        "(forward + backward), prefill and decode, from command-line sweeps or a suite.",
        epilog="Lists are comma-separated; every combination runs. Example: meter bench --model deepseek-v3 "
        "--layers moe --phase prefill --tokens-per-expert 128,512,2048 --ep 1,64",
    )
    p.add_argument("--model", help="model config (default: deepseek-v3 on a GPU, deepseek-v3-tiny on a CPU)")
    p.add_argument("--suite", help="a suite in configs/suites (or a path); grid flags then are not used")
    p.add_argument(
        "--layers",
        type=_csv(("attn", "mla", "gqa", "dsa", "moe", "ffn")),
        help="attn,mla,gqa,dsa,moe,ffn (dsa: DeepSeek-V3.2's sparse MLA)",
    )
    p.add_argument("--phase", type=_csv(("train", "prefill", "decode")), help="train,prefill,decode")
    p.add_argument("--batch", type=numbers(D.BATCH), help="batch sizes, e.g. 1,8,64")
    p.add_argument("--seq", type=numbers(D.SEQ), help="sequence lengths for train and prefill")
    p.add_argument("--context", type=numbers(D.CONTEXT), help="decode context lengths")
    p.add_argument(
        "--tokens-per-expert", type=numbers(D.TOKENS_PER_EXPERT), help="size MoE cases by rows per local expert instead"
    )
    p.add_argument("--dtype", type=_csv(("bf16", "fp16", "fp32")), help="bf16 (GPU default), fp16, fp32 (CPU default)")
    p.add_argument(
        "--fp8", type=_csv(("rowwise", "blockwise")), help="also run MoE expert GEMMs in fp8 with these scales"
    )
    p.add_argument("--ep", type=numbers(D.EP), help="expert-parallel degrees: benchmark one GPU's slice of the experts")
    p.add_argument("--routing", type=_csv(("learned", "uniform", "skew")), help="learned (default), uniform, skew")
    p.add_argument("--skew", type=number(D.SKEW), help="Zipf exponent for --routing skew (default 1.0)")
    p.add_argument(
        "--form",
        type=_csv(("absorbed", "naive", "fused")),
        help="MLA decode form(s): absorbed (default), naive, fused (the Triton kernel; CUDA and the triton extra)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="also run the eager MLA decode forms under torch.compile (cases marked +compile)",
    )
    p.add_argument(
        "--fused-plan",
        type=_fused_plan,
        metavar="SPEC",
        help="override the fused kernel's launch rule: h<rows per program>n<positions per step>s<splits>, e.g. s4",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="run under torchrun on every rank (NCCL on GPUs, gloo on CPUs); rank 0 writes one run file",
    )
    p.add_argument("--comm-only", action="store_true", help="with --distributed: only the communication cases")
    p.add_argument("--no-comm", action="store_true", help="with --distributed: no communication cases")
    p.add_argument(
        "--comm-tokens",
        type=numbers(D.TOKENS_PER_RANK),
        metavar="N",
        help="tokens per rank for MoE dispatch/combine (default 4096 on GPUs, 64 on CPUs)",
    )
    p.add_argument("--comm-payload", type=_csv(("fp8", "bf16")), help="dispatch payload(s) (default fp8,bf16)")
    p.add_argument(
        "--comm-sizes",
        metavar="BYTES",
        help="all-reduce/all-gather bytes per rank, binary as in nccl-tests (default 8M,256M on GPUs)",
    )
    p.add_argument(
        "--telemetry-overhead",
        action="store_true",
        help="instead of a sweep, measure each case's throughput with sampling off, at 10 Hz and 100 Hz",
    )
    p.add_argument(
        "--ceilings",
        action="store_true",
        help="measure the device's copy and GEMM ceilings again (cached per device); alone, only that",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="measure nothing: each case's peak memory (meta device), whether it fits, its expected device time "
        "and the sweep's rental cost on --hardware (or in --memory); no GPU needed",
    )
    p.add_argument("--hardware", metavar="NAME", help="with --plan: the hardware config to plan for (e.g. h100-sxm)")
    p.add_argument(
        "--memory", type=bytes_arg(D.PLAN_MEMORY_BYTES), metavar="BYTES", help="with --plan: the GPU memory, e.g. 80GiB"
    )
    p.add_argument(
        "--efficiency",
        type=number(D.EFFICIENCY),
        default=0.5,
        metavar="E",
        help="with --plan: the share of the datasheet peaks the roofline assumes (default 0.5)",
    )
    p.add_argument("--tier", choices=TIERS, help="with --plan: the price-table tier of the rental price")
    add_execution_options(p)
    p.set_defaults(handler=run_bench)


# --- commands ----------------------------------------------------------------------------------


def _grid(args: argparse.Namespace) -> dict[str, Any]:
    from meter.bench.cases import grid_from_lists

    return grid_from_lists(
        layers=args.layers,
        phase=args.phase,
        batch=args.batch,
        seq=args.seq,
        context=args.context,
        tokens_per_expert=args.tokens_per_expert,
        dtype=args.dtype,
        fp8=[None, *args.fp8] if args.fp8 else None,
        ep=args.ep,
        routing=args.routing,
        skew=[args.skew] if args.skew is not None else None,
        form=args.form,
        compile=[False, True] if args.compile else None,
        fused_plan=[args.fused_plan] if args.fused_plan else None,
    )


def select_cases(args: argparse.Namespace, device_kind: str, device=None):
    """(cases, models, label, suite) from --suite or the grid flags; defaults follow the device kind."""
    from meter.bench.cases import ep_problem, expand_grid
    from meter.config.models import load_model

    grid = _grid(args)
    if args.suite and (grid or args.model):
        raise UsageError("--suite takes its model and cases from the suite; drop --model and the grid flags")
    if args.suite:
        cases, models, suite = cases_from_suite(args.suite, args, device, check_device=device is not None)
        return cases, models, suite, suite
    model = load_model(args.model or ("deepseek-v3" if device_kind == "cuda" else "deepseek-v3-tiny"), locator(args))
    grid.setdefault("dtype", ["bf16" if device_kind == "cuda" else "fp32"])
    for ep in args.ep or []:
        why = ep_problem(model.args, ep, args.layers)
        if why:
            raise UsageError(f"argument --ep: {ep} {why} ({model.name})")
    return expand_grid(model.name, model.args, grid), {model.name: model.args}, model.name, None


def run_bench(args: argparse.Namespace) -> int:
    _check_distributed_options(args)
    _check_plan_options(args)
    if args.plan:
        from meter.cli.benchplan import run_plan

        return run_plan(args, select_cases)
    device = select(args)
    if args.ceilings and args.no_ceilings:
        raise UsageError("--ceilings measures the ceilings; --no-ceilings skips them: choose one")
    if args.ceilings and not args.suite and not _grid(args) and not args.model:
        from meter.bench import ceilings as C

        if device.kind == "cpu":
            print(CPU_WARNING, file=sys.stderr)
        c = C.trusted(device, C.default_dtypes(device), remeasure=True, say=say)
        if args.json:
            from meter.jsonable import to_jsonable

            emit_json(to_jsonable(c))
        else:
            gemm = ", ".join(f"{k} {v / 1e12:.3g} TFLOP/s" for k, v in c.gemm_flops_per_s.items())
            print(f"{device.label}: copy {c.copy_bytes_per_s / 1e9:.4g} GB/s (read + write); GEMM {gemm}")
        return 0
    cases, models, label, suite = select_cases(args, device.kind, device)
    if args.distributed:
        return run_distributed(args, [] if args.comm_only else cases, models, label, suite)
    if not cases:
        raise UsageError("the options select no case")
    if args.telemetry_overhead:
        return run_overhead(args, cases, models, device)
    recorder = execute(args, cases, models, device, label=label, suite=suite, remeasure_ceilings=args.ceilings)
    finish_output(args, recorder)
    return 0


def _check_plan_options(args: argparse.Namespace) -> None:
    planning = [f for f, v in (("--hardware", args.hardware), ("--memory", args.memory), ("--tier", args.tier)) if v]
    if not args.plan:
        if planning:
            raise UsageError(f"{planning[0]} goes with --plan")
        return
    if not args.hardware and not args.memory:
        raise UsageError("--plan needs a target: --hardware NAME (e.g. h100-sxm) or --memory BYTES (e.g. 80GiB)")
    if args.hardware and args.memory:
        raise UsageError("--plan takes one target: --hardware NAME (its memory) or --memory BYTES, not both")
    for flag, value in (
        ("--distributed", args.distributed),
        ("--telemetry-overhead", args.telemetry_overhead),
        ("--ceilings", args.ceilings),
        ("--remeasure-ceilings", args.remeasure_ceilings),
        ("--push", args.push),
    ):
        if value:
            raise UsageError(f"--plan measures nothing; {flag} does not go with it")


def run_overhead(args: argparse.Namespace, cases, models, device) -> int:
    """``meter bench --telemetry-overhead``: the sampler's cost to each case's throughput."""
    from meter.bench.workloads import build_workload
    from meter.telemetry.monitor import DEFAULT_COUNTER_PERIOD_S, monitor_for_device
    from meter.telemetry.overhead import measure_overhead

    probe, why = monitor_for_device(device, source=args.telemetry, counter_period_s=DEFAULT_COUNTER_PERIOD_S)
    if probe is None:
        raise UsageError(f"no telemetry to measure the overhead of: {why}")
    probe.__exit__(None, None, None)

    def make_monitor(interval_s: float):
        monitor, why = monitor_for_device(
            device, source=args.telemetry, interval_s=interval_s, counter_period_s=DEFAULT_COUNTER_PERIOD_S
        )
        if monitor is None:
            raise UsageError(f"telemetry went away during the measurement: {why}")
        return monitor

    sync = None
    if device.kind == "cuda":
        import torch

        def sync() -> None:
            torch.cuda.synchronize(device.torch_device)

    results, rows = [], []
    for case in cases:
        workload = build_workload(case, models[case.model], device)
        r = measure_overhead(workload.step, make_monitor, trial_s=args.min_time or 2.0, sync=sync)
        results.append({"case": case.id, **r})
        rows += [
            [
                case.id,
                f"{x['rate_hz']:g} Hz" if x["rate_hz"] else "off",
                f"{x['calls_per_s_median']:.4g}",
                f"{x['calls_per_s_spread'] * 100:.1f}%",
                f"{x['overhead'] * 100:+.2f}%",
                f"{x['samples_per_s']:.0f}",
            ]
            for x in r["rates"]
        ]
        del workload
    if args.json:
        emit_json({"device": device.as_dict(), "telemetry": args.telemetry, "results": results})
    else:
        print(
            table(
                ["case", "sampling", "calls/s (median)", "range", "throughput cost", "samples/s"],
                rows,
                title=f"Telemetry overhead on {device.label} (5 interleaved rounds per rate)",
            )
        )
    return 0


def _check_distributed_options(args: argparse.Namespace) -> None:
    comm = [
        f
        for f, v in (
            ("--comm-only", args.comm_only),
            ("--no-comm", args.no_comm),
            ("--comm-tokens", args.comm_tokens),
            ("--comm-payload", args.comm_payload),
            ("--comm-sizes", args.comm_sizes),
        )
        if v
    ]
    if not args.distributed:
        if comm:
            raise UsageError(f"{comm[0]} goes with --distributed (under torchrun)")
        return
    from meter.distributed.env import from_environment

    from_environment()  # not under torchrun: say so before any work
    if args.comm_only and args.no_comm:
        raise UsageError("--comm-only and --no-comm exclude each other")
    for flag, value in (
        ("--telemetry-overhead", args.telemetry_overhead),
        ("--ceilings", args.ceilings),
        ("--remeasure-ceilings", args.remeasure_ceilings),
        ("--no-ceilings", args.no_ceilings),
    ):
        if value:
            raise UsageError(f"{flag} goes with one device; run it without --distributed")


def comm_cases(args: argparse.Namespace, models: dict, cpu: bool):
    """Dispatch/combine at the model's shapes, plus all-reduce and all-gather at a few sizes."""
    from meter.distributed.comm import CommCase, moe_case
    from meter.units import parse_bytes

    if args.no_comm:
        return []
    a = next(iter(models.values()))
    out = []
    if a.is_moe:
        for tokens in args.comm_tokens or ([64] if cpu else [4096]):
            for payload in args.comm_payload or ["fp8", "bf16"]:
                out.append(
                    moe_case(
                        "dispatch", tokens_per_rank=tokens, hidden=a.dim, top_k=a.n_activated_experts, payload=payload
                    )
                )
            out.append(
                moe_case("combine", tokens_per_rank=tokens, hidden=a.dim, top_k=a.n_activated_experts, payload="bf16")
            )
    try:
        sizes = (
            [parse_bytes(x) for x in args.comm_sizes.split(",")]
            if args.comm_sizes
            else ([64 * 1024, 1024 * 1024] if cpu else [8 * 2**20, 256 * 2**20])
        )
    except ValueError:
        raise UsageError(f"--comm-sizes expects byte counts such as 8M,256M, not {args.comm_sizes!r}") from None
    for size in sizes:
        out += [CommCase("all_reduce", size, "fp32"), CommCase("all_gather", size, "fp32")]
    return out


def run_distributed(args: argparse.Namespace, cases, models, label: str, suite: str | None) -> int:
    import torch

    from meter.cli.benchrun import telemetry_request
    from meter.config.hardware import list_hardware
    from meter.device.select import cpu_device
    from meter.distributed.runner import DistributedPlan, run_distributed
    from meter.results.runfile import default_run_path

    specs = list_hardware(locator(args))
    cpu = args.device == "cpu" or not torch.cuda.is_available()
    settings = timing_settings(args, "cpu" if cpu else "cuda")
    path = Path(args.output) if args.output else default_run_path(Path(args.out), f"{label}-distributed")
    placeholder = cpu_device(specs)  # the runner replaces the device with each rank's own
    comms = comm_cases(args, models, cpu)
    if not cases and not comms:
        raise UsageError("the options select no case and no communication case")
    doc = run_distributed(
        DistributedPlan(
            cases=cases,
            comm_cases=comms,
            models=models,
            device_request="cpu" if cpu else args.device,
            specs=specs,
            output=path,
            settings=settings,
            metadata=run_metadata(args, placeholder, settings, models, suite),
            telemetry=telemetry_request(args),
        )
    )
    if doc is None:
        return 0  # not rank 0: rank 0 reports
    if args.json:
        emit_json(doc)
    else:
        if doc.cases:
            print_results(doc)
            print_projections(doc)
        print_distributed(doc)
        print(f"\nRun file: {path}")
    push(args, path)
    return 0


def print_distributed(doc) -> None:
    d = doc.metadata.distributed
    print(
        f"\n{d.world_size} ranks on {d.n_nodes} node(s), {d.local_world_size} per node, {d.backend}"
        + ("; case timings are the slowest rank's (every rank's in the run file)" if doc.cases else "")
    )
    rows = [
        [
            c.scope,
            c.id,
            c.group_size,
            f"{c.message_bytes / 2**20:.4g}",
            f"{c.time_s * 1e3:.4g}",
            f"{c.algbw_gb_s:.4g}",
            f"{c.busbw_gb_s:.4g}",
            "yes" if c.verified else "NO",
        ]
        for c in doc.communication
    ]
    if rows:
        print(
            table(
                ["scope", "collective", "ranks", "MiB", "ms", "algbw GB/s", "busbw GB/s", "verified"],
                rows,
                title="Communication (nccl-tests conventions; time = slowest rank, median of rounds)",
            )
        )
    for st in doc.stragglers:
        print(f"straggler: rank {st.rank} (node {st.node_rank}, {st.device}) in {st.case}: " + "; ".join(st.reasons))
