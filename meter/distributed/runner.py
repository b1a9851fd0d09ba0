"""``meter bench --distributed``: every rank runs the cases and the communication benchmarks; rank 0
gathers everything into one run file with per-rank and aggregate figures.

Each rank measures through its own :class:`meter.bench.session.BenchSession` (its device, its
telemetry, its ceilings); only rank 0's session writes a file. Rank 0 records its own results as
they come ("rank 0 only"), so a run whose other ranks die keeps rank 0's figures, and at the end
replaces them with every rank's aggregate.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meter.bench.session import BenchSession, TelemetryRequest
from meter.distributed import assemble
from meter.distributed.assemble import RankReport
from meter.errors import UsageError
from meter.results.cases import BenchCase, CommCase
from meter.results.document import RunDocument, RunMetadata, TelemetryInfo
from meter.results.metadata import hardware_summary
from meter.results.records import RanksSummary, TimingSettings


@dataclass(frozen=True)
class DistributedPlan:
    """What every rank measures, and how."""

    cases: list[BenchCase]
    comm_cases: list[CommCase]
    models: dict
    device_request: str  # "cpu" for gloo ranks on the CPU; otherwise each rank takes cuda:LOCAL_RANK
    specs: list
    output: Path
    settings: TimingSettings
    metadata: RunMetadata
    telemetry: TelemetryRequest = field(default_factory=TelemetryRequest)
    comm_iters: int = 10
    comm_rounds: int = 5


def run_distributed(plan: DistributedPlan) -> RunDocument | None:
    """Run this rank's share; returns the run document on rank 0 (None elsewhere)."""
    import torch.distributed as dist

    from meter.distributed import comm, env

    # torchrun stops every rank with SIGTERM when one fails: rank 0 then marks its file interrupted
    signal.signal(signal.SIGTERM, _stop)
    device = _rank_device(plan)
    ctx = env.init(device.kind)
    session = BenchSession(
        device,
        plan.models,
        dataclasses.replace(plan.metadata, device=device.info(), hardware=hardware_summary(device.hardware)),
        output=plan.output if ctx.is_main else None,
        settings=plan.settings,
        telemetry=plan.telemetry,
        ceilings=(lambda: _ceilings(ctx, device, plan.cases)) if plan.cases else (lambda: None),
        # kept as it comes: if a rank dies, rank 0's figures survive
        record_as=lambda r: dataclasses.replace(r, ranks=RanksSummary(count=1, note="rank 0 only; not yet gathered")),
    )

    def progress(i: int, n: int, case: BenchCase) -> None:
        if ctx.is_main:
            print(f"[{i + 1}/{n}] {case.model} {case.id} (all {ctx.world_size} ranks)", file=sys.stderr, flush=True)

    with session:
        session.run(plan.cases, progress=progress)
        if ctx.is_main and plan.comm_cases:
            print(f"communication: {len(plan.comm_cases)} case(s) in every scope", file=sys.stderr, flush=True)
        comm_results = (
            comm.run_cases(ctx, plan.comm_cases, _torch_device(device), iters=plan.comm_iters, rounds=plan.comm_rounds)
            if plan.comm_cases
            else []
        )
        session.monitor_stop()  # this rank's telemetry is complete before it is sent to rank 0
        mine = RankReport(
            ctx=ctx,
            device=device.info(),
            results=session.results,
            comm=comm_results,
            telemetry=session.telemetry_info or TelemetryInfo(enabled=False, reason="disabled"),
            ceilings=session.ceilings,
        )
        gathered = [None] * ctx.world_size if ctx.is_main else None
        dist.gather_object(mine, gathered, dst=0)
        if ctx.is_main:
            session.replace_cases(assemble.aggregate_cases(gathered))
            session.update_metadata(
                distributed=assemble.layout(gathered),
                ceilings=gathered[0].ceilings,
                telemetry=TelemetryInfo(per_rank=[g.telemetry for g in gathered]),
            )
            session.update(
                communication=comm.aggregate([g.comm for g in gathered]),
                stragglers=assemble.stragglers(session.doc.cases),
            )
    dist.barrier()
    dist.destroy_process_group()
    return session.doc if ctx.is_main else None


def _rank_device(plan: DistributedPlan):
    """This rank's device: its own GPU (cuda:LOCAL_RANK), or the CPU; a node with fewer GPUs than ranks is refused."""
    import torch

    from meter.device.select import select_device
    from meter.distributed import env

    _, _, local_rank, local_world, _ = env.from_environment()
    if plan.device_request == "cpu" or not torch.cuda.is_available():
        return select_device("cpu", plan.specs)
    visible = torch.cuda.device_count()
    if local_world > visible:
        raise UsageError(
            f"{local_world} ranks per node but {visible} visible GPU(s): each rank needs its own GPU "
            "(NCCL cannot run two ranks on one); use --device cpu for gloo ranks on the CPU"
        )
    return select_device(f"cuda:{local_rank}", plan.specs)


def _torch_device(device):
    import torch

    return torch.device(device.torch_device)


def _ceilings(ctx, device, cases):
    """This rank's copy and GEMM ceilings in the precisions of ``cases``, from the cache or measured.

    Separate GPUs do not disturb each other's copy and GEMM rates, so they measure at once; CPU
    ranks share the cores, so they take turns and the later ones take the first one's cache.
    """
    import torch.distributed as dist

    from meter.bench.ceilings import load_cached, needed_dtypes, trusted

    dtypes = needed_dtypes(cases)
    if device.kind == "cuda":
        return trusted(device, dtypes)
    found = None
    for turn in range(ctx.local_world_size):
        if ctx.local_rank == turn:
            found = (load_cached(device) if turn > 0 else None) or trusted(device, dtypes)
        dist.barrier()
    return found


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
