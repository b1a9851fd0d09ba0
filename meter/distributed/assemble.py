"""Rank 0's view of a distributed run: one result per case from every rank's, and the stragglers.

A synchronous step waits for its slowest rank, so a case's aggregate timing and metrics are the
slowest rank's; every rank's figures stay beside them. A rank is a straggler in a case when its
median time is more than ``threshold`` above the median over ranks, or when its GPU reported
power or thermal throttling during the case.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from meter.distributed.comm import RankTiming
from meter.distributed.env import DistContext
from meter.results.document import Ceilings, DeviceInfo, DistributedLayout, NodeInfo, RankInfo, TelemetryInfo
from meter.results.records import CaseResult, RankCaseResult, RanksSummary, Straggler

STRAGGLER_THRESHOLD = 0.10


@dataclass(frozen=True)
class RankReport:
    """What one rank sends rank 0 at the end (pickled by ``gather_object``)."""

    ctx: DistContext
    device: DeviceInfo
    results: list[CaseResult]
    comm: list[RankTiming]
    telemetry: TelemetryInfo
    ceilings: Ceilings | None


def _rank_figures(rank: RankReport, r: CaseResult) -> RankCaseResult:
    return RankCaseResult(
        rank=rank.ctx.rank,
        node_rank=rank.ctx.node_rank,
        hostname=rank.ctx.hostname,
        device=rank.device.name,
        status=r.status,
        reason=r.reason,
        median_s=r.timing.median_s if r.timing else None,
        tokens_per_s=r.metrics.tokens_per_s if r.metrics else None,
        throttle_reasons=list(r.telemetry.throttle_reasons) if r.telemetry else [],
        joules_per_token=r.telemetry.joules_per_token if r.telemetry else None,
    )


def aggregate_cases(gathered: list[RankReport]) -> list[CaseResult]:
    by_id: dict[str, list[tuple[RankReport, CaseResult]]] = {}
    for rank in gathered:
        for result in rank.results:
            by_id.setdefault(result.id, []).append((rank, result))
    out = []
    for entries in by_id.values():  # dicts keep the order cases first appeared in
        per_rank = [_rank_figures(rank, r) for rank, r in entries]
        ok = [(rank, r) for rank, r in entries if r.ok]
        if len(ok) != len(entries):
            failed = next(r for _, r in entries if not r.ok)
            out.append(
                dataclasses.replace(
                    failed,
                    reason=f"{len(entries) - len(ok)} of {len(entries)} ranks: {failed.reason}",
                    timing=None,
                    metrics=None,
                    per_rank=per_rank,
                )
            )
            continue
        slowest_rank, slowest = max(ok, key=lambda pair: pair[1].timing.median_s)
        medians = [r.timing.median_s for _, r in ok]
        typical = statistics.median(medians)
        ranks = RanksSummary(
            count=len(ok),
            slowest_rank=slowest_rank.ctx.rank,
            median_s_min=min(medians),
            median_s_median=typical,
            median_s_max=max(medians),
            spread_across_ranks=(max(medians) - min(medians)) / typical,
        )
        out.append(dataclasses.replace(slowest, per_rank=per_rank, ranks=ranks))
    return out


def stragglers(cases: list[CaseResult], threshold: float = STRAGGLER_THRESHOLD) -> list[Straggler]:
    out = []
    for case in cases:
        ranks = [r for r in case.per_rank or [] if r.median_s is not None]
        if len(ranks) < 2:
            continue
        typical = statistics.median(r.median_s for r in ranks)
        for r in ranks:
            slowdown = r.median_s / typical - 1.0
            reasons = []
            if slowdown > threshold:
                reasons.append(f"{slowdown:.0%} slower than the median rank")
            if r.throttle_reasons:
                reasons.append("throttled: " + ", ".join(r.throttle_reasons))
            if reasons:
                out.append(
                    Straggler(
                        case=case.id,
                        rank=r.rank,
                        node_rank=r.node_rank,
                        hostname=r.hostname,
                        device=r.device,
                        slowdown=slowdown,
                        reasons=reasons,
                    )
                )
    return out


def layout(gathered: list[RankReport]) -> DistributedLayout:
    """The job's shape: world size, nodes, and which rank ran on which device of which node."""
    first = gathered[0].ctx
    nodes: dict[int, list[RankReport]] = {}
    for rank in gathered:
        nodes.setdefault(rank.ctx.node_rank, []).append(rank)
    return DistributedLayout(
        world_size=first.world_size,
        local_world_size=first.local_world_size,
        n_nodes=first.world_size // first.local_world_size,
        backend=first.backend,
        launcher="torchrun",
        nodes=[
            NodeInfo(
                node_rank=node,
                hostname=members[0].ctx.hostname,
                ranks=[RankInfo(r.ctx.rank, r.ctx.local_rank, r.device.name, r.device.uuid) for r in members],
            )
            for node, members in sorted(nodes.items())
        ],
    )
