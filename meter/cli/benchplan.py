"""``meter bench --plan``: what a suite or sweep will need, and cost, on a GPU that is not here yet."""

from __future__ import annotations

import argparse
from dataclasses import replace

from meter.cli.common import locator
from meter.cli.output import emit_json, table
from meter.errors import UsageError


def plan_target(args: argparse.Namespace):
    """(the planned device, its memory) from --hardware and/or --memory."""
    from meter.config.hardware import load_hardware
    from meter.device.select import ComputeDevice, planned_device

    if args.hardware:
        spec = load_hardware(args.hardware, locator(args))
        if spec.kind != "gpu":
            raise UsageError(f"argument --hardware: {spec.name} is not a GPU; --plan plans GPU time")
        return planned_device(spec), args.memory or spec.memory_bytes
    gib = args.memory / 2**30
    device = ComputeDevice(
        kind="cuda",
        torch_device="cuda",
        name=f"a GPU with {gib:g} GiB",
        hardware=None,
        properties={"memory_bytes": args.memory},
        present=False,
    )
    return device, args.memory


def run_plan(args: argparse.Namespace, select_cases) -> int:
    from meter.bench.plan import PlanAssumptions, plan_sweep
    from meter.bench.timer import GPU_DEFAULTS

    target, capacity = plan_target(args)
    cases, models, _label, _suite = select_cases(args, "cuda")
    if not cases:
        raise UsageError("the options select no case")
    settings = replace(GPU_DEFAULTS, min_time_s=args.min_time) if args.min_time else GPU_DEFAULTS
    assumptions = PlanAssumptions(
        efficiency=args.efficiency, settings=settings, telemetry_window_s=0.0 if args.no_telemetry else 1.0
    )
    plan = plan_sweep(cases, models, target, capacity_bytes=capacity, assumptions=assumptions)
    cost = _rental(plan, target, args)
    if args.json:
        emit_json(
            {
                "target": plan.target,
                "capacity_bytes": plan.capacity_bytes,
                "margin": plan.margin,
                "assumptions": plan.assumptions,
                "cases": [_case_row(c) for c in plan.cases],
                "cases_device_s": plan.cases_s,
                **cost,
            }
        )
        return 0
    _print(plan, cost)
    return 0


def _rental(plan, target, args: argparse.Namespace) -> dict:
    """The sweep's device hours at the price table's rate for the target (a range over providers)."""
    total = plan.total_device_s
    hours = None if total is None else total / 3600
    out = {"total_device_s": total, "device_hours": hours, "rental_usd": None, "price": None}
    if hours is None:
        out["price"] = {"note": "device time not estimated: --plan needs --hardware for the datasheet peaks"}
        return out
    if target.hardware is None:
        out["price"] = {"note": "no hardware config (--memory only): no price; add --hardware"}
        return out
    from meter.cost.configs import price_input

    price = price_input(target.hardware.name, args.tier, locator(args))
    if price is None:
        out["price"] = {"note": f"the price table has no price for {target.hardware.name}"}
        return out
    low, high = price.quantity.bounds
    central = price.quantity.central
    out["price"] = {
        "usd_per_gpu_hour": central,
        "usd_per_gpu_hour_low": low,
        "usd_per_gpu_hour_high": high,
        "source": price.source,
    }
    out["rental_usd"] = {"point": hours * central, "low": hours * low, "high": hours * high}
    return out


def _case_row(c) -> dict:
    return {
        "id": c.case.id,
        "model": c.case.model,
        "status": c.status,
        "reason": c.reason,
        "backend": c.backend,
        "peak_bytes": c.peak_bytes,
        "peak_method": c.peak_method,
        "need_bytes": c.need_bytes,
        "fits": c.fits,
        "flops_per_call": c.flops_per_call,
        "bytes_per_call": c.bytes_per_call,
        "time_per_call_s": c.time_per_call_s,
        "bound": c.bound,
        "calls": c.calls,
        "device_s": c.device_s,
    }


def _gib(n: float | None) -> str | None:
    return None if n is None else f"{n / 2**30:.1f}"


def _print(plan, cost: dict) -> None:
    rows = []
    for c in plan.cases:
        rows.append(
            [
                c.case.id,
                c.status.upper() if c.status != "runs" else "runs",
                c.backend,
                _gib(c.peak_bytes),
                _gib(c.need_bytes),
                None if c.time_per_call_s is None else f"{c.time_per_call_s * 1e3:.3g}",
                c.bound,
                c.calls,
                f"{c.device_s:.1f}",
                c.reason or "",
            ]
        )
    a = plan.assumptions
    print(
        table(
            ["case", "plan", "backend", "peak GiB", "need GiB", "ms/call", "bound", "calls", "device s", "notes"],
            rows,
            title=f"Plan for {plan.target} ({len(plan.cases)} cases; memory: meta-device peak, need = {plan.margin})",
        )
    )
    runs = [c for c in plan.cases if c.status == "runs"]
    print(
        f"\n{len(runs)} of {len(plan.cases)} cases run; "
        f"{sum(c.status == 'does not fit' for c in plan.cases)} do not fit; "
        f"{sum(c.status == 'unsupported' for c in plan.cases)} unsupported."
    )
    if plan.total_device_s is None:
        print("Device time: not estimated (no datasheet peaks without --hardware).")
    else:
        print(
            f"Device time: {plan.cases_s / 60:.1f} min of cases + {a.startup_s:.0f} s start-up + "
            f"{a.ceilings_s:.0f} s ceilings = {plan.total_device_s / 60:.1f} min ({cost['device_hours']:.3f} GPU-hours)."
        )
    print(
        f"Assumed: roofline at {a.efficiency:.0%} of the datasheet peaks; the timer's rules (warm-up "
        f"{a.settings.warmup_s:g} s, >= {a.settings.min_time_s:g} s and >= {a.settings.min_repeats} timed calls, "
        f"an L2 flush before each); {a.telemetry_window_s:g} s energy window; {a.case_overhead_s:g} s per case "
        "to build and tear down, plus its planning on this CPU."
    )
    price, usd = cost["price"], cost["rental_usd"]
    if usd is None:
        print(f"Rental cost: not computed ({price['note']}).")
    else:
        spread = (
            f" (${usd['low']:.2f}-${usd['high']:.2f} over the table's providers)" if usd["low"] != usd["high"] else ""
        )
        print(f"Rental cost: ${usd['point']:.2f} at ${price['usd_per_gpu_hour']:.2f}/GPU-hour{spread}.")
        print(f"  price: {price['source']}")
