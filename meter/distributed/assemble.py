"""Rank 0's view of a distributed run: one result per case from every rank's, and the stragglers.

A synchronous step waits for its slowest rank, so a case's aggregate timing and metrics are the
slowest rank's; every rank's figures stay beside them. A rank is a straggler in a case when its
median time is more than ``threshold`` above the median over ranks, or when its GPU reported
power or thermal throttling during the case.
"""

from __future__ import annotations

import statistics
from typing import Any

STRAGGLER_THRESHOLD = 0.10


def aggregate_cases(gathered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id: dict[str, list[tuple[dict, dict]]] = {}
    order: list[str] = []
    for rank in gathered:
        for result in rank["results"]:
            if result["id"] not in by_id:
                order.append(result["id"])
            by_id.setdefault(result["id"], []).append((rank, result))
    out = []
    for case_id in order:
        entries = by_id[case_id]
        ok = [(rank, r) for rank, r in entries if r["status"] == "ok"]
        per_rank = [
            {
                "rank": rank["ctx"]["rank"],
                "node_rank": rank["ctx"]["node_rank"],
                "hostname": rank["ctx"]["hostname"],
                "device": rank["device"]["name"],
                "status": r["status"],
                "reason": r.get("reason"),
                "median_s": (r.get("timing") or {}).get("median_s"),
                "tokens_per_s": (r.get("metrics") or {}).get("tokens_per_s"),
                "throttle_reasons": (r.get("telemetry") or {}).get("throttle_reasons") or [],
                "joules_per_token": (r.get("telemetry") or {}).get("joules_per_token"),
            }
            for rank, r in entries
        ]
        if len(ok) != len(entries):
            failed = next(r for _, r in entries if r["status"] != "ok")
            out.append(
                {
                    **{k: v for k, v in failed.items() if k not in ("timing", "metrics")},
                    "status": failed["status"],
                    "reason": f"{len(entries) - len(ok)} of {len(entries)} ranks: {failed.get('reason')}",
                    "per_rank": per_rank,
                }
            )
            continue
        slowest_rank, slowest = max(ok, key=lambda pair: pair[1]["timing"]["median_s"])
        medians = [r["timing"]["median_s"] for _, r in ok]
        out.append(
            {
                **slowest,
                "per_rank": per_rank,
                "ranks": {
                    "count": len(ok),
                    "slowest_rank": slowest_rank["ctx"]["rank"],
                    "median_s_min": min(medians),
                    "median_s_median": statistics.median(medians),
                    "median_s_max": max(medians),
                    "spread_across_ranks": (max(medians) - min(medians)) / statistics.median(medians),
                },
            }
        )
    return out


def stragglers(cases: list[dict[str, Any]], threshold: float = STRAGGLER_THRESHOLD) -> list[dict[str, Any]]:
    out = []
    for case in cases:
        ranks = [r for r in case.get("per_rank", []) if r["median_s"] is not None]
        if len(ranks) < 2:
            continue
        typical = statistics.median(r["median_s"] for r in ranks)
        for r in ranks:
            slowdown = r["median_s"] / typical - 1.0
            reasons = []
            if slowdown > threshold:
                reasons.append(f"{slowdown:.0%} slower than the median rank")
            if r["throttle_reasons"]:
                reasons.append("throttled: " + ", ".join(r["throttle_reasons"]))
            if reasons:
                out.append(
                    {
                        "case": case["id"],
                        "rank": r["rank"],
                        "node_rank": r["node_rank"],
                        "hostname": r["hostname"],
                        "device": r["device"],
                        "slowdown": slowdown,
                        "reasons": reasons,
                    }
                )
    return out


def layout(gathered: list[dict[str, Any]]) -> dict[str, Any]:
    """The job's shape: world size, nodes, and which rank ran on which device of which node."""
    first = gathered[0]["ctx"]
    nodes: dict[int, dict[str, Any]] = {}
    for rank in gathered:
        c = rank["ctx"]
        node = nodes.setdefault(c["node_rank"], {"node_rank": c["node_rank"], "hostname": c["hostname"], "ranks": []})
        node["ranks"].append(
            {
                "rank": c["rank"],
                "local_rank": c["local_rank"],
                "device": rank["device"]["name"],
                "uuid": rank["device"].get("uuid"),
            }
        )
    return {
        "world_size": first["world_size"],
        "local_world_size": first["local_world_size"],
        "n_nodes": first["world_size"] // first["local_world_size"],
        "backend": first["backend"],
        "launcher": "torchrun",
        "nodes": [nodes[k] for k in sorted(nodes)],
    }
