"""What ``meter bench``, ``meter run`` and ``meter acceptance`` share: execution options, one
measured run through a :class:`meter.bench.session.BenchSession`, and the result tables."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from meter import domains as D
from meter.cli.common import number, push_url
from meter.cli.output import emit_json, table
from meter.units import si

DEFAULT_SUITES = {"cpu": "default-cpu", "cuda": "default-gpu"}
CPU_WARNING = "CPU RUN: these are CPU figures, measured on the CPU; they say nothing about a GPU."


def say(message: str) -> None:
    print(message, file=sys.stderr)


def add_execution_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (the first GPU, else the CPU), cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs", metavar="DIR", help="directory for the run file (default runs/)")
    p.add_argument("--output", metavar="FILE", help="exact run file path (overrides --out)")
    p.add_argument("--min-time", type=number(D.MIN_TIME_S), metavar="S", help="seconds of timed calls per case")
    p.add_argument(
        "--no-cuda-graphs", action="store_true", help="time decode eagerly instead of replaying a CUDA graph"
    )
    add_telemetry_options(p)
    ceilings = p.add_mutually_exclusive_group()
    ceilings.add_argument(
        "--no-ceilings",
        action="store_true",
        help="do not measure or load the device's copy and GEMM ceilings (no %% of ceiling figures)",
    )
    ceilings.add_argument(
        "--remeasure-ceilings",
        action="store_true",
        help="measure the ceilings again instead of using the cached ones (cached per machine)",
    )
    p.add_argument("--json", action="store_true", help="print the run file's JSON at the end instead of tables")
    p.add_argument(
        "--push", metavar="URL", type=push_url, help="hand the run file to a running exporter (meter serve) at URL"
    )


def add_telemetry_options(p: argparse.ArgumentParser) -> None:
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


def select(args: argparse.Namespace):
    from meter.cli.common import locator
    from meter.config.hardware import list_hardware
    from meter.device.select import select_device

    return select_device(args.device, list_hardware(locator(args)))


def timing_settings(args: argparse.Namespace, device_kind: str):
    from meter.bench.timer import CPU_DEFAULTS, GPU_DEFAULTS

    settings = GPU_DEFAULTS if device_kind == "cuda" else CPU_DEFAULTS
    return replace(settings, min_time_s=args.min_time) if args.min_time else settings


def telemetry_request(args: argparse.Namespace):
    from meter.bench.session import TelemetryRequest

    return TelemetryRequest(
        enabled=not args.no_telemetry,
        source=args.telemetry,
        sample_hz=args.sample_hz,
        off_reason="disabled (--no-telemetry)",
    )


def progress(stream):
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
    args: argparse.Namespace,
    cases,
    models,
    device,
    *,
    label: str,
    suite: str | None,
    remeasure_ceilings: bool = False,
    repeat_ceilings: bool = False,
):
    """Run cases into a run file; returns its recorder (KeyboardInterrupt is re-raised after saving).

    The run file is written before the first case (an unwritable path is refused before anything
    is measured) and after every case. If a later write fails, the run stops, what was measured is
    printed, and the last valid file stays in place.
    """
    from meter.bench.ceilings import needed_dtypes
    from meter.bench.session import BenchSession, default_ceilings
    from meter.results.runfile import RunWriteError, default_run_path

    path = Path(args.output) if args.output else default_run_path(Path(args.out), label)
    settings = timing_settings(args, device.kind)
    session = BenchSession(
        device,
        models,
        run_metadata(args, device, settings, models, suite),
        output=path,
        settings=settings,
        telemetry=telemetry_request(args),
        cuda_graphs=not args.no_cuda_graphs,
        repeat_ceilings=repeat_ceilings,
        ceilings=(lambda: None)
        if args.no_ceilings
        else lambda: default_ceilings(
            device, needed_dtypes(cases), remeasure=remeasure_ceilings or args.remeasure_ceilings, say=say
        ),
        say=say,
    )
    session.open_run_file()  # refuses an unwritable path before measuring
    if device.kind == "cpu":
        say(CPU_WARNING)
    show, interactive = progress(sys.stderr)
    try:
        with session:
            session.run(cases, progress=show)
    except (KeyboardInterrupt, RunWriteError):
        pass  # the session recorded the status; what finished is in the file
    finally:
        if interactive:
            sys.stderr.write("\r\033[K")
    if session.write_error is not None:
        print_results(session.doc)
        raise RunWriteError(
            f"{session.write_error}; the run stopped after {len(session.doc.cases)} case(s), printed above"
        )
    if session.status == "interrupted":
        say(f"meter: interrupted; kept {len(session.doc.ok_cases())} finished case(s) in {path}")
        raise KeyboardInterrupt
    return session.recorder


def run_metadata(args: argparse.Namespace, device, settings, models, suite: str | None):
    """What every run file records about where and how it was measured."""
    from meter.bench.session import run_metadata as metadata

    return metadata(device, settings, models, suite, cuda_graphs=not getattr(args, "no_cuda_graphs", False))


# --- printing ----------------------------------------------------------------------------------


def print_results(doc) -> None:
    device = doc.metadata.device
    title = f"Results on {device.label}"
    if device.hardware_config is None and not device.cpu:
        title += " (no hardware config matches: MFU unavailable)"
    rows = []
    for r in doc.cases:
        if not r.ok:
            rows.append([r.case.model, r.id, r.status.upper(), "", "", "", "", "", "", "", r.reason])
            continue
        m, t = r.metrics, r.timing
        eff = m.mfu if m.mfu is not None else m.gemm_ceiling_fraction
        rows.append(
            [
                r.case.model,
                r.id,
                "ok",
                backend_label(r.details),
                f"{t.median_s * 1e3:.3g}",
                f"{t.spread * 100:.1f}%",
                si(m.tokens_per_s),
                f"{m.achieved_tflops:.3g}",
                pct(eff),
                f"{m.achieved_gb_s:.4g}",
                "; ".join(filter(None, [_bytes_note(r.details), _parts_note(r), _energy_note(r.telemetry)])),
            ]
        )
    eff_label = "% GEMM ceil" if device.cpu else "MFU"
    print(
        table(
            ["model", "case", "status", "backend", "ms/call", "IQR", "tok/s", "TFLOP/s", eff_label, "GB/s", "notes"],
            rows,
            title=title,
        )
    )
    fallbacks = [(r.id, r.details.fallback_reason) for r in doc.cases if r.details and r.details.fallback_reason]
    for case_id, why in fallbacks:
        print(f"FALL-BACK in {case_id}: {why}")
    if device.cpu:
        print(
            f"\n{CPU_WARNING}\nEfficiency on a CPU is against the GEMM rate measured on this CPU (no datasheet peak)."
        )


def backend_label(details) -> str | None:
    """The backend column: what ran, marked when it is a fall-back from the fused path."""
    if details is None or details.backend is None:
        return None
    return details.backend + (" (FALL-BACK)" if details.fallback_reason else "")


def _parts_note(r) -> str:
    out = []
    for p in r.parts:
        against = f", {p.ceiling_fraction * 100:.0f}% of the {p.precision} GEMM ceiling" if p.ceiling_fraction else ""
        out.append(f"{p.name}: {p.achieved_tflops:.3g} TFLOP/s{against}")
    return "; ".join(out)


def print_projections(doc) -> None:
    if not doc.projections:
        print("\nNo whole-model projection: it needs an attention, MoE and dense-FFN result at the same shape.")
        return
    # The form as the case id spells it: absorbed, absorbed+compile, fused, fused-s4 ...
    forms = {c.id: c.id.rsplit(".", 1)[1] for c in doc.cases if c.case.layer == "mla" and c.case.phase == "decode"}
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
                pct(p.mfu),
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


def pct(x: float | None) -> str | None:
    return None if x is None else f"{x * 100:.1f}%"


def _bytes_note(details) -> str:
    ratio = details.bytes_ratio_to_minimum if details is not None else None
    return f"moves {ratio:.2f}x the minimum bytes" if ratio is not None else ""


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


def finish_output(args: argparse.Namespace, recorder, costs=None, print_costs=None) -> None:
    """Print the run (tables, or its JSON), then hand it to an exporter; the file is already saved."""
    doc = recorder.doc
    if args.json:
        emit_json(doc)
    else:
        print_results(doc)
        print_projections(doc)
        if costs is not None and print_costs is not None:
            print_costs(doc, *costs)
        print(f"\nRun file: {recorder.path}")
    push(args, recorder.path)


def cases_from_suite(name: str, args: argparse.Namespace, device, *, check_device: bool = True):
    """(cases, models, suite name) of a suite; a GPU suite on a CPU is refused unless ``check_device`` is off."""
    from meter.bench.cases import dedupe, ep_problem, expand_grid
    from meter.cli.common import locator
    from meter.config.models import load_model
    from meter.config.suites import load_suite
    from meter.errors import ConfigError, UsageError

    suite = load_suite(name, locator(args))
    if check_device and suite.device == "gpu" and device.kind != "cuda":
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
