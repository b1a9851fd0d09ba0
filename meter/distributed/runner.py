"""``meter bench --distributed``: every rank runs the cases and the communication benchmarks; rank 0
gathers everything into one run file with per-rank and aggregate figures."""

from __future__ import annotations

import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any

from meter.distributed import assemble
from meter.distributed.assemble import RankReport
from meter.results.cases import BenchCase, CommCase
from meter.results.document import RunDocument, RunMetadata, TelemetryInfo
from meter.results.records import CaseResult, RanksSummary
from meter.results.runfile import checked_case


def run(
    *,
    cases: list[BenchCase],
    comm_cases: list[CommCase],
    models: dict,
    device_request: str,
    specs: list,
    output: Path,
    settings,
    telemetry: bool,
    sample_hz: float,
    metadata: RunMetadata,
    comm_iters: int = 10,
    comm_rounds: int = 5,
) -> RunDocument | None:
    """Run this rank's share; returns the run document on rank 0 (None elsewhere)."""
    import torch
    import torch.distributed as dist

    from meter.bench.harness import run_cases
    from meter.bench.projection import project
    from meter.device.select import select_device
    from meter.distributed import comm, env
    from meter.results.metadata import hardware_summary
    from meter.results.runfile import RunRecorder
    from meter.telemetry.monitor import monitor_for_device

    # torchrun stops every rank with SIGTERM when one fails: rank 0 then marks its file interrupted
    signal.signal(signal.SIGTERM, _stop)
    use_cuda = device_request != "cpu" and torch.cuda.is_available()
    local_rank = env.from_environment()[2]
    device = select_device(f"cuda:{local_rank}" if use_cuda else "cpu", specs)
    ctx = env.init(device.kind)
    ceilings = _ceilings(ctx, device) if cases else None
    monitor, why = monitor_for_device(device, interval_s=1.0 / sample_hz) if telemetry else (None, "disabled")
    recorder = (
        RunRecorder(
            output,
            metadata=dataclasses.replace(metadata, device=device.info(), hardware=hardware_summary(device.hardware)),
        )
        if ctx.is_main
        else None
    )

    def progress(i: int, n: int, case: BenchCase) -> None:
        if ctx.is_main:
            print(f"[{i + 1}/{n}] {case.model} {case.id} (all {ctx.world_size} ranks)", file=sys.stderr, flush=True)

    results: list[CaseResult] = []

    def record(result: CaseResult) -> None:
        if recorder is not None:  # kept as it comes: if a rank dies, rank 0's figures survive
            recorder.add_case(
                dataclasses.replace(result, ranks=RanksSummary(count=1, note="rank 0 only; not yet gathered"))
            )
        results.append(checked_case(result))

    try:
        if monitor is not None:
            monitor.__enter__()
        run_cases(
            cases,
            models,
            device,
            record=record,
            ceilings=ceilings,
            settings=settings,
            monitor=monitor,
            progress=progress,
        )
        torch_device = torch.device(device.torch_device)
        if ctx.is_main and comm_cases:
            print(f"communication: {len(comm_cases)} case(s) in every scope", file=sys.stderr, flush=True)
        comm_results = (
            comm.run_cases(ctx, comm_cases, torch_device, iters=comm_iters, rounds=comm_rounds) if comm_cases else []
        )
    except BaseException as exc:
        if recorder is not None:
            recorder.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    finally:
        if monitor is not None:
            monitor.__exit__(None, None, None)
    mine = RankReport(
        ctx=ctx,
        device=device.info(),
        results=results,
        comm=comm_results,
        telemetry=monitor.describe() if monitor else TelemetryInfo(enabled=False, reason=why),
        ceilings=ceilings,
    )
    gathered = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(mine, gathered, dst=0)
    doc = None
    if ctx.is_main:
        cases_out = assemble.aggregate_cases(gathered)
        recorder.doc.cases = [checked_case(c) for c in cases_out]
        recorder.update(
            metadata=dataclasses.replace(
                recorder.doc.metadata,
                distributed=assemble.layout(gathered),
                ceilings=gathered[0].ceilings,
                telemetry=TelemetryInfo(per_rank=[g.telemetry for g in gathered]),
            ),
            communication=comm.aggregate([g.comm for g in gathered]),
            stragglers=assemble.stragglers(cases_out),
            projections=[
                p for name, a in models.items() for p in project(name, a, recorder.doc.cases, device.hardware)
            ],
        )
        recorder.finish("complete")
        doc = recorder.doc
    dist.barrier()
    dist.destroy_process_group()
    return doc


def _ceilings(ctx, device):
    """This rank's copy and GEMM ceilings, from the cache or measured.

    Separate GPUs do not disturb each other's copy and GEMM rates, so they measure at once; CPU
    ranks share the cores, so they take turns and the later ones find the first one's cache.
    """
    import torch.distributed as dist

    from meter.bench.ceilings import load_cached, measure

    if device.kind == "cuda":
        return load_cached(device) or measure(device)
    found = None
    for turn in range(ctx.local_world_size):
        if ctx.local_rank == turn:
            found = load_cached(device) or measure(device)
        dist.barrier()
    return found


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
