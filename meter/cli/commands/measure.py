"""``meter measure [options] -- CMD [ARGS...]``: meter the user's own job (docs/measure.md)."""

from __future__ import annotations

import argparse
import re
import sys

from meter import domains as D
from meter.cli.common import locator, number, push_url
from meter.cli.output import emit_json, key_values, table
from meter.config.pricing import Tier
from meter.units import binary_bytes, count

TIERS = list(Tier.__args__)  # type: ignore[attr-defined]


def _regex(text: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression ({exc}): {text!r}") from None
    if "tokens" not in pattern.groupindex and pattern.groups < 1:
        raise argparse.ArgumentTypeError(
            f"needs a group around the number, e.g. 'tokens=(\\d+)' or '(?P<tokens>[0-9.]+)'; got {text!r}"
        )
    return pattern


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "measure",
        parents=[common],
        help="run a command and meter its GPUs: energy, power, dollars, tokens/s, MFU",
        description="Run CMD as a child (environment, stdin, stdout and stderr passed through), sample the "
        "GPUs it may use (CUDA_VISIBLE_DEVICES, all visible GPUs otherwise), and write a job run file. The "
        "command's exit status is meter's; Ctrl-C and SIGTERM reach the command and the run file is still "
        "written, marked interrupted. The summary goes to stderr, so the command's stdout stays its own.",
        epilog="Examples: meter measure -- python train.py; meter measure --tokens-from-log 'tokens=(\\d+)' "
        "--model deepseek-v3-tiny --seq 4096 --phase train -- torchrun --nproc-per-node 8 train.py",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]", help="the job to run")
    p.add_argument("-o", "--output", metavar="FILE", help="the run file (default runs/<run id>-job.json)")
    p.add_argument("--json", action="store_true", help="print the job's figures as JSON on stdout at the end")
    p.add_argument(
        "--push", metavar="URL", type=push_url, help="hand the run file to a running exporter (meter serve) at URL"
    )
    work = p.add_argument_group("work done (for tokens/s, TFLOP/s, MFU, J/token)")
    work.add_argument("--tokens", type=number(D.WORK_TOKENS), metavar="N", help="tokens the job processed")
    work.add_argument(
        "--tokens-from-log",
        type=_regex,
        metavar="REGEX",
        help="read the token count from the job's output: the first group (or the group named 'tokens') "
        "of each matching line, e.g. 'tokens=(\\d+)'",
    )
    work.add_argument(
        "--tokens-aggregate",
        choices=["last", "sum"],
        default="last",
        help="last: the job prints a running total (default); sum: it prints each step's count",
    )
    work.add_argument("--model", help="model config the tokens are of (meter models lists them)")
    work.add_argument(
        "--seq",
        type=number(D.SEQ),
        default=4096,
        metavar="N",
        help="sequence length (train, prefill) or context (decode) for FLOPs per token (default 4096)",
    )
    work.add_argument("--phase", choices=["train", "prefill", "decode"], default="train", help="default train")
    hw = p.add_argument_group("GPUs and prices")
    hw.add_argument("--hardware", help="hardware config of the GPUs (default: matched by their NVML name)")
    hw.add_argument("--gpus", type=number(D.GPUS), metavar="N", help="GPUs the job used, when NVML cannot see them")
    hw.add_argument(
        "--price", type=number(D.PRICE_USD_PER_GPU_HOUR), metavar="USD", help="$ per GPU-hour (default: price table)"
    )
    hw.add_argument("--tier", choices=TIERS, help="price-table tier for the rental price")
    hw.add_argument("--usd-per-kwh", type=number(D.USD_PER_KWH), metavar="USD", help="electricity price")
    hw.add_argument("--pue", type=number(D.PUE), help="power usage effectiveness (default: price table)")
    hw.add_argument(
        "--sample-hz",
        type=number(D.SAMPLE_HZ),
        default=10.0,
        metavar="HZ",
        help="telemetry sampling rate, 1 to 100 Hz (default 10)",
    )
    p.set_defaults(handler=run_measure)


def run_measure(args: argparse.Namespace) -> int:
    from pathlib import Path

    from meter.device.host import command_line
    from meter.measure.run import MeasureRequest, command_from_argv, measure, stderr_say

    request = MeasureRequest(
        command=command_from_argv(args.command),
        output=Path(args.output) if args.output else None,
        tokens=args.tokens,
        tokens_regex=args.tokens_from_log,
        tokens_aggregate=args.tokens_aggregate,
        model=args.model,
        phase=args.phase,
        seq=args.seq,
        hardware=args.hardware,
        gpus=args.gpus,
        price=args.price,
        tier=args.tier,
        usd_per_kwh=args.usd_per_kwh,
        pue=args.pue,
        interval_s=1.0 / args.sample_hz,
        meter_command=command_line(),
    )
    outcome = measure(request, locator(args), stderr_say)
    if args.json:
        emit_json(
            {
                "run_file": str(outcome.path),
                "run_id": outcome.doc.run_id,
                "status": outcome.doc.status,
                "exit_code": outcome.exit_code,
                "job": outcome.job,
            }
        )
    print(summary(outcome), file=sys.stderr)
    push(args.push, outcome.path)
    return outcome.exit_code


def push(url: str | None, path) -> None:
    """POST the run file to an exporter; a failure is reported, the file on disk stays the result."""
    if not url:
        return
    from meter.exporter.app import push_run

    try:
        push_run(url, path)
        print(f"pushed to {url}", file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"meter: could not push the run file ({exc}); it is kept at {path}", file=sys.stderr)


def _w(value, unit: str, digits: int = 4) -> str | None:
    return None if value is None else f"{value:.{digits}g} {unit}"


def _gpu_row(label: str, name: str, w, peak_memory) -> list:
    if w is None:
        return [label, name] + [None] * 9
    clocks = None
    if w.avg_sm_clock_hz is not None:
        clocks = f"{w.avg_sm_clock_hz / 1e6:.0f}/{(w.min_sm_clock_hz or 0) / 1e6:.0f} MHz"
    util = None if w.avg_utilization_ratio is None else f"{w.avg_utilization_ratio:.0%}"
    confidence = "LOW: " + "; ".join(w.low_confidence_reasons) if w.low_confidence else "ok"
    return [
        label,
        name,
        _w(w.energy_j / 1e3 if w.energy_j is not None else None, "kJ"),
        w.energy_method,
        None if w.energy_disagreement is None else f"{w.energy_disagreement:.1%}",
        _w(w.avg_power_w, "W"),
        util,
        clocks,
        ", ".join(w.throttle_reasons) or "-",
        binary_bytes(peak_memory) if peak_memory is not None else None,
        confidence,
    ]


def summary(outcome) -> str:
    """The table meter measure ends with (on stderr)."""
    import shlex

    from meter.cost.display import fmt

    job, doc = outcome.job, outcome.doc
    ending = f"exit {job.exit_status}" + (f", killed by {job.signal}" if job.signal else "")
    if job.interrupted:
        ending += ", interrupted"
    lines = [f"\nMeasured job: {shlex.join(job.command)}  ({ending}; {job.duration_s:.4g} s; {doc.status})"]
    if job.gpus:
        rows = [_gpu_row(g.key, g.name, g.telemetry, g.peak_memory_used_bytes) for g in job.gpus]
        if len(job.gpus) > 1:
            peak = sum(g.peak_memory_used_bytes or 0 for g in job.gpus) or None
            total = _gpu_row("total", "", job.telemetry, peak)
            total[6] = None if job.avg_utilization_ratio is None else f"{job.avg_utilization_ratio:.0%} (mean)"
            rows.append(total)
        headers = ["GPU", "name", "energy", "method", "vs integrated", "avg power", "util", "SM avg/min"]
        lines.append(table(headers + ["throttled", "peak memory", "confidence"], rows))
    if job.energy_reason:
        lines.append(f"energy: not measured ({job.energy_reason})")
    c = job.cost
    pairs = []
    if c is not None:
        price = "no price" if c.usd_per_gpu_hour is None else f"{fmt(c.usd_per_gpu_hour, 'usd_small')}/GPU-hour"
        pairs.append(("GPU time", f"{c.gpus} GPU(s) x {job.duration_s:.4g} s = {c.gpu_hours:.4g} GPU-hours x {price}"))
        pairs.append(("rental", fmt(c.gpu_usd, "usd_small")))
        if c.energy_kwh is not None:
            pairs.append(
                (
                    "energy",
                    f"{c.energy_kwh:.4g} kWh x PUE {c.pue:g} x ${c.usd_per_kwh:g}/kWh = {fmt(c.energy_usd, 'usd_small')}",
                )
            )
        pairs.append(("total", fmt(c.total_usd, "usd_small")))
    w = job.work
    if w is not None:
        pairs.append(("tokens", f"{count(w.tokens)} ({w.tokens_source}); {_w(w.tokens_per_s, 'tokens/s')}"))
        if w.model is not None:
            pairs.append(
                (
                    "model",
                    f"{w.model} {w.phase}, seq {w.seq}: {w.flops_per_token / 1e9:.4g} GFLOP/token; "
                    f"{_w(w.achieved_tflops, 'TFLOP/s per GPU')}",
                )
            )
            pairs.append(("MFU", f"{fmt(w.mfu, 'pct')} ({w.mfu_basis})"))
        pairs.append(("energy per token", _w(w.joules_per_token, "J")))
    if pairs:
        lines.append(key_values(pairs))
    lines += [f"note: {n}" for n in job.notes]
    lines.append(f"Run file: {outcome.path}")
    return "\n".join(lines)
