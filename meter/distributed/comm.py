"""Communication benchmarks: expert-parallel dispatch and combine, all-reduce, all-gather.

Reported the way nccl-tests reports them (its PERFORMANCE.md): for a message of S bytes taking t
seconds, algorithm bandwidth ``algbw = S / t`` and bus bandwidth ``busbw = algbw x factor``, with
factor ``2(n-1)/n`` for all-reduce and ``(n-1)/n`` for all-gather (S = the whole gathered output)
and all-to-all (S = one rank's send buffer). Each collective runs on the whole world, within each
node, and across nodes (one rank per node), so intra- and inter-node bandwidth are separate.

Dispatch and combine are all-to-alls at MoE shapes: every token of a rank goes to top-k experts
spread evenly over the ranks, ``tokens x top_k x hidden`` values per rank; dispatch in fp8 (one
byte a value plus one fp32 scale per 128 values, as DeepSeek's) or bf16, combine in bf16.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from meter.analytic.comm import PAYLOAD_BYTES
from meter.distributed.env import DistContext
from meter.results.cases import CommCase
from meter.results.records import CommResult

__all__ = ["CommCase", "RankTiming", "aggregate", "moe_case", "run_cases"]


@dataclass(frozen=True)
class RankTiming:
    """One rank's timings of a collective in one scope: per-iteration seconds, one value per round."""

    id: str
    scope: str
    group_size: int
    case: CommCase
    rank: int
    node_rank: int
    seconds: list[float]
    verified: bool


def moe_case(collective: str, *, tokens_per_rank: int, hidden: int, top_k: int, payload: str) -> CommCase:
    size = int(tokens_per_rank * top_k * hidden * PAYLOAD_BYTES[payload])
    return CommCase(collective, size, payload, tokens_per_rank, hidden, top_k)


def bus_factor(collective: str, n: int) -> float:
    if n <= 1:
        return 0.0
    return 2.0 * (n - 1) / n if collective == "all_reduce" else (n - 1) / n


def buffer_bytes(case: CommCase, n: int) -> int:
    """Bytes of one rank's send buffer as allocated: an all-to-all splits it evenly over ``n``
    ranks, and all-reduce and all-gather move whole fp32 values."""
    if case.collective in ("dispatch", "combine"):
        return max(n, case.bytes_per_rank - case.bytes_per_rank % n)
    return max(4, case.bytes_per_rank - case.bytes_per_rank % 4)


def message_bytes(case: CommCase, n: int) -> int:
    """S in nccl-tests' terms: all_gather counts the whole output, the others one rank's buffer."""
    size = buffer_bytes(case, n)
    return size * n if case.collective == "all_gather" else size


def bytes_to_peers(case: CommCase, n: int) -> float:
    """Bytes one rank actually sends over links (its own chunk or share stays local)."""
    size = buffer_bytes(case, n)
    if case.collective == "all_reduce":  # ring: reduce-scatter then all-gather
        return 2.0 * size * (n - 1) / n
    if case.collective == "all_gather":
        return float(size * (n - 1))
    return size * (n - 1) / n


def make_buffers(case: CommCase, n: int, device):
    """(send, receive) tensors for one rank; the send buffer holds ``buffer_bytes`` random bytes."""
    import torch

    size = buffer_bytes(case, n)
    if case.collective == "all_reduce":
        return torch.rand(size // 4, device=device), None
    if case.collective == "all_gather":
        return torch.rand(size // 4, device=device), [torch.empty(size // 4, device=device) for _ in range(n)]
    # dispatch/combine: an all-to-all of raw bytes (the payload's dtype does not change what moves)
    send = torch.randint(0, 256, (size,), dtype=torch.uint8, device=device)
    return send, torch.empty_like(send)


def _run(case: CommCase, send, recv, group) -> None:
    import torch.distributed as dist

    if case.collective == "all_reduce":
        dist.all_reduce(send, group=group)
    elif case.collective == "all_gather":
        dist.all_gather(recv, send, group=group)
    else:
        dist.all_to_all_single(recv, send, group=group)


def verify(ctx: DistContext, group, n: int, device) -> bool:
    """Each collective once on known data: the sums, gathers and exchanges must come back right."""
    import torch
    import torch.distributed as dist

    me = dist.get_rank(group)
    t = torch.full((4,), float(me + 1), device=device)
    dist.all_reduce(t, group=group)
    ok = bool((t == n * (n + 1) / 2).all())
    parts = [torch.empty(2, device=device) for _ in range(n)]
    dist.all_gather(parts, torch.full((2,), float(me), device=device), group=group)
    ok &= all(bool((p == i).all()) for i, p in enumerate(parts))
    send = torch.arange(n, device=device, dtype=torch.float32) + 100 * me
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send, group=group)
    ok &= bool((recv == torch.arange(n, device=device, dtype=torch.float32) * 100 + me).all())
    return ok


def time_case(
    case: CommCase, group, n: int, device, *, warmup: int = 3, iters: int = 10, rounds: int = 5
) -> list[float]:
    """Per-iteration seconds of this rank, one value per round (iterations back to back, as nccl-tests)."""
    import torch
    import torch.distributed as dist

    send, recv = make_buffers(case, n, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        _run(case, send, recv, group)
    sync()
    out = []
    for _ in range(rounds):
        dist.barrier(group=group)
        start = time.perf_counter()
        for _ in range(iters):
            _run(case, send, recv, group)
        sync()
        out.append((time.perf_counter() - start) / iters)
    return out


def run_cases(ctx: DistContext, cases: list[CommCase], device, *, iters: int = 10, rounds: int = 5) -> list[RankTiming]:
    """This rank's timings of every case in every scope it belongs to."""
    import torch.distributed as dist

    from meter.distributed.env import node_groups

    intra, inter = node_groups(ctx)
    scopes = [("world", None, ctx.world_size)]
    if ctx.n_nodes > 1:
        scopes += [("intra-node", intra, ctx.local_world_size), ("inter-node", inter, ctx.n_nodes)]
    results = []
    for scope, group, n in scopes:
        if n < 2:
            continue
        verified = verify(ctx, group, n, device)
        for case in cases:
            seconds = time_case(case, group, n, device, iters=iters, rounds=rounds)
            results.append(RankTiming(case.id, scope, n, case, ctx.rank, ctx.node_rank, seconds, verified))
    dist.barrier()
    return results


def aggregate(per_rank: list[list[RankTiming]]) -> list[CommResult]:
    """One result per (case, scope): a round ends when its slowest rank does, so the round's time is
    the max over ranks; then the median over rounds."""
    by_key: dict[tuple[str, str], list[RankTiming]] = {}
    for rank_results in per_rank:
        for r in rank_results:
            by_key.setdefault((r.id, r.scope), []).append(r)
    out = []
    for (case_id, scope), entries in by_key.items():
        rounds = len(entries[0].seconds)
        slowest = [max(e.seconds[i] for e in entries) for i in range(rounds)]
        t = statistics.median(slowest)
        case = entries[0].case
        n = entries[0].group_size
        size = message_bytes(case, n)
        algbw = size / t
        out.append(
            CommResult(
                id=case_id,
                scope=scope,  # type: ignore[arg-type]
                group_size=n,
                case=case,
                time_s=t,
                time_min_s=min(slowest),
                time_max_s=max(slowest),
                message_bytes=size,
                bytes_to_peers_per_rank=bytes_to_peers(case, n),
                algbw_gb_s=algbw / 1e9,
                busbw_gb_s=algbw * bus_factor(case.collective, n) / 1e9,
                verified=all(e.verified for e in entries),
                ranks=len(entries),
                per_rank_median_s={str(e.rank): statistics.median(e.seconds) for e in entries},
                time_per_token_s=t / case.tokens_per_rank if case.tokens_per_rank else None,
            )
        )
    return sorted(out, key=lambda r: (r.scope, r.id))
