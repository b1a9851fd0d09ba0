"""``meter bench`` (sweeps of layer benchmarks) and ``meter run`` (the main job: a default suite,
its whole-model projection, and what that costs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from meter import domains as D
from meter.cli.common import locator, number, numbers
from meter.cli.output import emit_json, table
from meter.errors import UsageError
from meter.units import si

DEFAULT_SUITES = {"cpu": "default-cpu", "cuda": "default-gpu"}
CPU_WARNING = "CPU RUN: these are CPU figures, measured on the CPU; they say nothing about a GPU."


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


def add_execution_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (the first GPU, else the CPU), cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs", metavar="DIR", help="directory for the run file (default runs/)")
    p.add_argument("--output", metavar="FILE", help="exact run file path (overrides --out)")
    p.add_argument("--min-time", type=number(D.MIN_TIME_S), metavar="S", help="seconds of timed calls per case")
    p.add_argument(
        "--no-cuda-graphs", action="store_true", help="time decode eagerly instead of replaying a CUDA graph"
    )
    p.add_argument("--no-telemetry", action="store_true", help="do not sample GPU/CPU telemetry during cases")
    p.add_argument(
        "--telemetry",
        choices=["auto", "nvml", "rapl"],
        default="auto",
        help="auto: the benchmark's own device; nvml: every visible GPU; rapl: CPU energy",
    )
    p.add_argument(
        "--sample-hz",
        type=number(D.SAMPLE_HZ),
        default=10.0,
        metavar="HZ",
        help="telemetry sampling rate, 1 to 100 Hz (default 10)",
    )
    p.add_argument("--json", action="store_true", help="print the run file's JSON at the end instead of tables")
    p.add_argument("--push", metavar="URL", help="hand the run file to a running exporter (meter serve) at URL")


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
    p.add_argument("--layers", type=_csv(("attn", "mla", "gqa", "moe", "ffn")), help="attn,mla,gqa,moe,ffn")
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
    p.add_argument("--form", type=_csv(("absorbed", "naive")), help="MLA decode form(s) (default absorbed)")
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
    add_execution_options(p)
    p.set_defaults(handler=run_bench)

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


# --- shared pipeline ---------------------------------------------------------------------------


def _setup(args: argparse.Namespace):
    from meter.config.hardware import list_hardware
    from meter.device.select import select_device

    specs = list_hardware(locator(args))
    return select_device(args.device, specs)


def _ceilings(device, remeasure: bool, say):
    from meter.bench import ceilings as C

    cached = None if remeasure else C.load_cached(device)
    if cached is not None:
        return cached
    say(f"measuring {device.label} ceilings (copy bandwidth, GEMM rate); cached for later runs")
    return C.measure(device)


def _progress(stream):
    interactive = stream.isatty()

    def show(i: int, n: int, case) -> None:
        line = f"[{i + 1:>{len(str(n))}}/{n}] {case.model} {case.id}"
        if interactive:
            stream.write("\r\033[K" + line)
        else:
            stream.write(line + "\n")
        stream.flush()

    return show, interactive


def execute(
    args: argparse.Namespace, cases, models, device, *, label: str, suite: str | None, remeasure_ceilings: bool = False
):
    """Run cases into a run file; returns its recorder (KeyboardInterrupt is re-raised after saving).

    The run file is written before the first case (an unwritable path is refused before anything
    is measured) and after every case. If a later write fails, the run stops, what was measured is
    printed, and the last valid file stays in place.
    """
    from dataclasses import replace

    from meter.bench.harness import run_cases
    from meter.bench.projection import project
    from meter.bench.timer import CPU_DEFAULTS, GPU_DEFAULTS
    from meter.results.document import TelemetryInfo
    from meter.results.runfile import RunRecorder, RunWriteError, default_run_path

    say = lambda msg: print(msg, file=sys.stderr)
    if device.kind == "cpu":
        say(CPU_WARNING)
    path = Path(args.output) if args.output else default_run_path(Path(args.out), label)
    settings = GPU_DEFAULTS if device.kind == "cuda" else CPU_DEFAULTS
    if args.min_time:
        settings = replace(settings, min_time_s=args.min_time)
    metadata = run_metadata(args, device, settings, models, suite)
    recorder = RunRecorder(path, metadata=metadata)  # refuses an unwritable path before measuring
    ceilings = _ceilings(device, remeasure_ceilings, say)
    monitor, why = _monitor(args, device, say)
    if monitor is not None:
        monitor.__enter__()  # starts sampling; measures the energy counter's update period
    telemetry = monitor.describe() if monitor else TelemetryInfo(enabled=False, reason=why)
    recorder.update(metadata=replace(metadata, ceilings=ceilings, telemetry=telemetry))
    show, interactive = _progress(sys.stderr)
    status, write_error = "complete", None
    try:
        run_cases(
            cases,
            models,
            device,
            record=recorder.add_case,
            ceilings=ceilings,
            settings=settings,
            monitor=monitor,
            cuda_graphs=not args.no_cuda_graphs,
            progress=show,
        )
    except KeyboardInterrupt:
        status = "interrupted"
    except RunWriteError as exc:
        status, write_error = "failed", exc
    except BaseException:
        status = "failed"  # e.g. a closed output pipe: what finished is kept, the run is not complete
        raise
    finally:
        doc = recorder.doc
        if monitor is not None:
            doc.telemetry_timeline = monitor.timeline()
            monitor.__exit__(None, None, None)
            doc.metadata = replace(doc.metadata, telemetry=monitor.describe())
        if interactive:
            sys.stderr.write("\r\033[K")
        doc.projections = [p for name, a in models.items() for p in project(name, a, doc.cases, device.hardware)]
        try:
            recorder.finish(status)
        except RunWriteError as exc:
            status, write_error = "failed", write_error or exc
    if write_error is not None:
        print_results(recorder.doc)
        raise RunWriteError(f"{write_error}; the run stopped after {len(recorder.doc.cases)} case(s), printed above")
    if status == "interrupted":
        done = len(recorder.doc.ok_cases())
        say(f"meter: interrupted; kept {done} finished case(s) in {path}")
        raise KeyboardInterrupt
    return recorder


def run_metadata(args: argparse.Namespace, device, settings, models, suite: str | None):
    """What every run file records about where and how it was measured."""
    from meter.results import metadata as md
    from meter.results.document import MethodInfo, RunMetadata

    return RunMetadata(
        device=device.info(),
        hardware=md.hardware_summary(device.hardware),
        software=md.software_info(),
        git=md.git_info(),
        host=md.host_info(),
        command=md.command_line(),
        suite=suite,
        models={name: _model_summary(a) for name, a in models.items()},
        method=MethodInfo(
            timer="cuda-events (per call, L2 flushed before each)"
            if device.kind == "cuda"
            else "wall-clock (perf_counter)",
            statistic="median of per-call times; spread = IQR / median",
            settings=settings,
            inputs="random, rotated across sets spanning twice a 64 MiB L2; decode caches random-filled",
            cuda_graphs=device.kind == "cuda" and not args.no_cuda_graphs,
            flops="analytic (meter.analytic), causal attention counted as half; mfu vs dense bf16 datasheet peak",
            cpu_run=device.kind == "cpu",
        ),
    )


def _monitor(args: argparse.Namespace, device, say):
    """(telemetry monitor of the run's device, None) or (None, why there is none)."""
    from meter.telemetry.monitor import monitor_for_device

    if args.no_telemetry:
        return None, "disabled (--no-telemetry)"
    monitor, why = monitor_for_device(device, source=args.telemetry, interval_s=1.0 / args.sample_hz, say=say)
    if monitor is None:
        say(f"telemetry: {why}; the benchmark goes on without it")
    return monitor, why


def _model_summary(a):
    from meter.results.document import ModelSummary

    return ModelSummary(
        n_layers=a.n_layers,
        n_moe_layers=a.n_moe_layers,
        n_dense_ffn_layers=a.n_ffn_dense_layers,
        attention=a.attention,
        dim=a.dim,
    )


# --- printing ----------------------------------------------------------------------------------


def print_results(doc) -> None:
    device = doc.metadata.device
    title = f"Results on {device.label}"
    if device.hardware_config is None and not device.cpu:
        title += " (no hardware config matches: MFU unavailable)"
    rows = []
    for r in doc.cases:
        if not r.ok:
            rows.append([r.case.model, r.id, r.status.upper(), "", "", "", "", "", "", r.reason])
            continue
        m, t = r.metrics, r.timing
        eff = m.mfu if m.mfu is not None else m.gemm_ceiling_fraction
        rows.append(
            [
                r.case.model,
                r.id,
                "ok",
                f"{t.median_s * 1e3:.3g}",
                f"{t.spread * 100:.1f}%",
                si(m.tokens_per_s),
                f"{m.achieved_tflops:.3g}",
                _pct(eff),
                f"{m.achieved_gb_s:.4g}",
                _energy_note(r.telemetry),
            ]
        )
    eff_label = "% GEMM ceil" if device.cpu else "MFU"
    print(
        table(
            ["model", "case", "status", "ms/call", "IQR", "tok/s", "TFLOP/s", eff_label, "GB/s", "notes"],
            rows,
            title=title,
        )
    )
    if device.cpu:
        print(
            f"\n{CPU_WARNING}\nEfficiency on a CPU is against the GEMM rate measured on this CPU (no datasheet peak)."
        )


def print_projections(doc) -> None:
    if not doc.projections:
        print("\nNo whole-model projection: it needs an attention, MoE and dense-FFN result at the same shape.")
        return
    forms = {c.id: c.case.form for c in doc.cases if c.case.layer == "mla" and c.case.phase == "decode"}
    rows = []
    for p in doc.projections:
        shape = f"b{p.batch} ctx{p.context}" if p.phase == "decode" else f"b{p.batch} s{p.seq}"
        mla = p.layers.get("mla")
        if mla is not None and mla.case_id in forms:
            shape += " " + forms[mla.case_id]
        layers = " + ".join(f"{v.count}x{k}" for k, v in p.layers.items())
        rows.append(
            [
                p.model,
                p.phase,
                shape,
                p.dtype,
                layers,
                f"{p.time_per_token_s * 1e3:.4g}",
                si(p.tokens_per_s),
                _pct(p.mfu),
            ]
        )
    print()
    print(
        table(
            ["model", "phase", "shape", "dtype", "layers", "ms/token", "tok/s", "MFU"],
            rows,
            title="Projected whole model on this device (layers x measured per-layer time"
            + ("; CPU figures" if doc.cpu else "")
            + ")",
        )
    )
    print(
        "Not included: "
        + "; ".join(doc.projections[0].not_included)
        + ". The cost model adds them as explicit factors."
    )


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{x * 100:.1f}%"


def _energy_note(tele) -> str:
    if tele is None:
        return ""
    parts = []
    if tele.joules_per_token is not None:
        parts.append(f"{tele.joules_per_token:.3g} J/token")
    if tele.avg_power_w is not None:
        parts.append(f"{tele.avg_power_w:.0f} W")
    if tele.avg_sm_clock_hz is not None:
        parts.append(f"SM {tele.avg_sm_clock_hz / 1e6:.0f} MHz")
    if tele.low_confidence:
        parts.append("low-confidence energy")
    if tele.throttle_reasons:
        parts.append("throttled: " + ",".join(tele.throttle_reasons))
    return "; ".join(parts)


def push(args: argparse.Namespace, path: Path) -> None:
    """POST the run file to an exporter; a failure is reported, the file on disk stays the result."""
    if not args.push:
        return
    from meter.exporter.app import push_run

    try:
        answer = push_run(args.push, path)
        print(f"pushed to {args.push}: {answer.get('accepted_cases', 0)} case(s) taken in", file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"meter: could not push the run file ({exc}); it is kept at {path}", file=sys.stderr)


def finish_output(args: argparse.Namespace, recorder, costs=None) -> None:
    """Print the run (tables, or its JSON), then hand it to an exporter; the file is already saved."""
    doc = recorder.doc
    if args.json:
        emit_json(doc)
    else:
        print_results(doc)
        print_projections(doc)
        if costs is not None:
            print_costs(doc, *costs)
        print(f"\nRun file: {recorder.path}")
    push(args, recorder.path)


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
            print(
                f"Serving cost of {label}, on {e.bound.deployment.name if e.bound else 'no'} deployment: "
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
    )


def cases_from_suite(name: str, args: argparse.Namespace, device):
    from meter.bench.cases import dedupe, ep_problem, expand_grid
    from meter.config.models import load_model
    from meter.config.suites import load_suite
    from meter.errors import ConfigError

    suite = load_suite(name, locator(args))
    if suite.device == "gpu" and device.kind != "cuda":
        raise UsageError(
            f"suite '{suite.name}' is meant for a GPU; on this CPU use --suite default-cpu or --device cuda"
        )
    model = load_model(suite.model, locator(args))
    for i, g in enumerate(suite.grids):
        for ep in g.ep or []:
            why = ep_problem(model.args, ep, g.layers)
            if why:
                raise ConfigError(suite.path, f"grids[{i}].ep", f"{why} ({model.name})", ep)
    cases = dedupe(c for g in suite.grids for c in expand_grid(model.name, model.args, g.axes()))
    return cases, {model.name: model.args}, suite.name


def run_bench(args: argparse.Namespace) -> int:
    from meter.bench.cases import ep_problem, expand_grid
    from meter.config.models import load_model

    _check_distributed_options(args)
    device = _setup(args)
    grid = _grid(args)
    if args.suite and (grid or args.model):
        raise UsageError("--suite takes its model and cases from the suite; drop --model and the grid flags")
    if args.ceilings and not args.suite and not grid and not args.model:
        from meter.bench import ceilings as C

        if device.kind == "cpu":
            print(CPU_WARNING, file=sys.stderr)
        c = C.measure(device)
        if args.json:
            emit_json(c.as_dict())
        else:
            gemm = ", ".join(f"{k} {v / 1e12:.3g} TFLOP/s" for k, v in c.gemm_flops_per_s.items())
            print(f"{device.label}: copy {c.copy_bytes_per_s / 1e9:.4g} GB/s (read + write); GEMM {gemm}")
        return 0
    if args.suite:
        cases, models, suite = cases_from_suite(args.suite, args, device)
        label = suite
    else:
        model = load_model(
            args.model or ("deepseek-v3" if device.kind == "cuda" else "deepseek-v3-tiny"), locator(args)
        )
        grid.setdefault("dtype", ["bf16" if device.kind == "cuda" else "fp32"])
        for ep in args.ep or []:
            why = ep_problem(model.args, ep, args.layers)
            if why:
                raise UsageError(f"argument --ep: {ep} {why} ({model.name})")
        cases = expand_grid(model.name, model.args, grid)
        models, suite, label = {model.name: model.args}, None, model.name
    if args.distributed:
        return run_distributed(args, [] if args.comm_only else cases, models, label, suite)
    if not cases:
        raise UsageError("the options select no case")
    if args.telemetry_overhead:
        return run_overhead(args, cases, models, device)
    recorder = execute(args, cases, models, device, label=label, suite=suite, remeasure_ceilings=args.ceilings)
    finish_output(args, recorder)
    return 0


def run_main(args: argparse.Namespace) -> int:
    device = _setup(args)
    suite_name = args.suite or DEFAULT_SUITES[device.kind]
    cases, models, suite = cases_from_suite(suite_name, args, device)
    recorder = execute(args, cases, models, device, label=f"run-{suite}", suite=suite)
    costs = add_costs(args, recorder)
    finish_output(args, recorder, costs)
    if args.report:
        from meter.cli.commands.report import write_report

        write_report([str(recorder.path)], args.report, args)
        print(f"Report: {args.report}")
    return 0


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
    for flag, value in (("--telemetry-overhead", args.telemetry_overhead), ("--ceilings", args.ceilings)):
        if value:
            raise UsageError(f"{flag} measures one device; run it without --distributed")


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

    from meter.bench.timer import CPU_DEFAULTS, GPU_DEFAULTS
    from meter.config.hardware import list_hardware
    from meter.device.select import cpu_device
    from meter.distributed.runner import run
    from meter.results.runfile import default_run_path

    specs = list_hardware(locator(args))
    cpu = args.device == "cpu" or not torch.cuda.is_available()
    settings = CPU_DEFAULTS if cpu else GPU_DEFAULTS
    if args.min_time:
        from dataclasses import replace

        settings = replace(settings, min_time_s=args.min_time)
    path = Path(args.output) if args.output else default_run_path(Path(args.out), f"{label}-distributed")
    placeholder = cpu_device(specs)  # the runner replaces the device with each rank's own
    metadata = run_metadata(args, placeholder, settings, models, suite)
    comms = comm_cases(args, models, cpu)
    if not cases and not comms:
        raise UsageError("the options select no case and no communication case")
    doc = run(
        cases=cases,
        comm_cases=comms,
        models=models,
        device_request="cpu" if cpu else args.device,
        specs=specs,
        output=path,
        settings=settings,
        telemetry=not args.no_telemetry,
        sample_hz=args.sample_hz,
        metadata=metadata,
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
