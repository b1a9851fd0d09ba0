"""``meter watch``: a live per-GPU view in the terminal, or JSON lines."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

from meter import domains as D
from meter.cli.common import number
from meter.cli.output import table


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "watch",
        parents=[common],
        help="live per-GPU utilization, power, energy, clocks, throttling",
        description="Show every visible GPU's telemetry, refreshed every --interval seconds. "
        "Unsupported fields show as n/a (null in JSON), never 0.",
    )
    p.add_argument(
        "--interval", type=number(D.INTERVAL_S), default=1.0, metavar="S", help="refresh period (default 1 s)"
    )
    p.add_argument(
        "--count", type=number(D.COUNT), default=0, metavar="N", help="stop after N updates (default: until Ctrl-C)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per GPU per update (JSON lines)")
    p.set_defaults(handler=run_watch)


def record(gpu, reading) -> dict:
    from meter.device.clock_events import THROTTLING_REASONS, decode_clock_events

    reasons = decode_clock_events(reading.clock_event_mask)
    return {
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
        "gpu": gpu.index,
        "uuid": gpu.identity.uuid,
        "name": gpu.identity.name,
        **{k: v for k, v in reading.as_dict().items() if k not in ("t_s", "clock_event_mask")},
        "clock_event_reasons": reasons,
        "throttling": any(r in THROTTLING_REASONS for r in reasons) if reading.clock_event_mask is not None else None,
    }


def run_watch(args: argparse.Namespace) -> int:
    from meter.device.gpu import GpuLost, open_gpus

    interactive = sys.stdout.isatty() and not args.json
    with open_gpus() as fleet:
        gpus = list(fleet.gpus)
        lost: dict[int, str] = {}
        for index, why in fleet.unopened:
            print(f"meter: GPU {index} did not answer when opened: {why}", file=sys.stderr)
        updates = 0
        try:
            while args.count <= 0 or updates < args.count:
                rows = []
                for gpu in gpus:
                    if gpu.index in lost:
                        rows.append(
                            {
                                "gpu": gpu.index,
                                "uuid": gpu.identity.uuid,
                                "name": gpu.identity.name,
                                "lost": lost[gpu.index],
                            }
                        )
                        continue
                    try:
                        rows.append(record(gpu, gpu.read()))
                    except GpuLost as exc:
                        lost[gpu.index] = str(exc)
                        print(f"meter: GPU {gpu.index} ({gpu.identity.uuid}) was lost: {exc}", file=sys.stderr)
                        rows.append(
                            {"gpu": gpu.index, "uuid": gpu.identity.uuid, "name": gpu.identity.name, "lost": str(exc)}
                        )
                if args.json:
                    for row in rows:
                        print(json.dumps(row), flush=True)
                else:
                    if interactive:
                        sys.stdout.write("\033[H\033[2J")
                    print(render(rows), flush=True)
                updates += 1
                if args.count <= 0 or updates < args.count:
                    time.sleep(args.interval)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a watch ends
    return 0


def render(rows: list[dict]) -> str:
    def fmt(v, scale=1.0, unit="", digits=0):
        return None if v is None else f"{v / scale:.{digits}f}{unit}"

    lines = []
    for r in rows:
        if "lost" in r:
            lines.append([r["gpu"], r["name"], "LOST", None, None, None, None, None, None, None, r["lost"]])
            continue
        mem = None
        if r["memory_used_bytes"] is not None and r["memory_total_bytes"]:
            mem = f"{r['memory_used_bytes'] / 2**30:.1f}/{r['memory_total_bytes'] / 2**30:.0f} GiB"
        lines.append(
            [
                r["gpu"],
                r["name"],
                fmt(r["utilization_ratio"], 0.01, "%"),
                fmt(r["power_w"], 1, " W"),
                fmt(r["power_limit_w"], 1, " W"),
                fmt(r["energy_j"], 1e3, " kJ", 1),
                fmt(r["sm_clock_hz"], 1e6, " MHz"),
                fmt(r["mem_clock_hz"], 1e6, " MHz"),
                fmt(r["temperature_c"], 1, " C"),
                mem,
                ",".join(r["clock_event_reasons"]) or "-",
            ]
        )
    return table(
        ["gpu", "name", "util", "power", "limit", "energy", "SM clock", "mem clock", "temp", "memory", "clock events"],
        lines,
        title=dt.datetime.now().strftime("meter watch  %H:%M:%S"),
    )
