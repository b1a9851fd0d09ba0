"""The pieces of meter bench --distributed that need no process group: torchrun's environment,
communication byte counts and bandwidth conventions, and rank 0's aggregation and stragglers."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from meter.distributed import assemble, comm
from meter.distributed.comm import CommCase, moe_case
from meter.distributed.env import from_environment
from meter.errors import UsageError
from tests.conftest import run_meter

TORCHRUN_ENV = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1"}


def test_environment_from_torchrun_variables():
    assert from_environment(TORCHRUN_ENV) == (3, 4, 1, 2, 1)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"RANK": None}, "missing RANK"),
        ({"RANK": "2"}, "RANK 2 is not GROUP_RANK x LOCAL_WORLD_SIZE + LOCAL_RANK"),
        ({"WORLD_SIZE": "5", "RANK": "3"}, "WORLD_SIZE 5 is not a multiple of LOCAL_WORLD_SIZE 2"),
    ],
)
def test_environment_refuses_what_torchrun_would_not_set(change, message):
    env = {k: v for k, v in {**TORCHRUN_ENV, **change}.items() if v is not None}
    with pytest.raises(UsageError, match=re.escape(message)):
        from_environment(env)


def test_distributed_outside_torchrun_is_one_line_exit_2():
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    r = subprocess.run(
        [sys.executable, "-m", "meter", "bench", "--distributed", "--comm-only"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "runs under torchrun" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--comm-only", "--no-comm"], "--comm-only and --no-comm exclude each other"),
        (["--ceilings"], "--ceilings goes with one device"),
    ],
)
def test_conflicting_distributed_options(args, message):
    r = run_meter(
        "bench",
        "--distributed",
        *args,
        env={**TORCHRUN_ENV, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "GROUP_RANK": "0"},
    )
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1


def test_comm_options_need_distributed():
    r = run_meter("bench", "--comm-tokens", "64")
    assert r.returncode == 2 and "--comm-tokens goes with --distributed" in r.stderr


# --- what the communication cases move -----------------------------------------------------------


def test_moe_case_sizes_at_v3_shapes():
    # 4096 tokens x top-8 x hidden 7168 values per rank; fp8 carries a 4-byte scale per 128 values
    assert (
        moe_case("dispatch", tokens_per_rank=4096, hidden=7168, top_k=8, payload="bf16").bytes_per_rank == 469_762_048
    )
    assert moe_case("dispatch", tokens_per_rank=4096, hidden=7168, top_k=8, payload="fp8").bytes_per_rank == 242_221_056
    assert (
        moe_case("combine", tokens_per_rank=4096, hidden=7168, top_k=8, payload="bf16").id
        == "combine.t4096-h7168-k8.bf16"
    )


@pytest.mark.parametrize(
    "case, n, message, to_peers, factor",
    [
        (CommCase("all_reduce", 1 << 20), 8, 1 << 20, 2 * (1 << 20) * 7 / 8, 2 * 7 / 8),
        (CommCase("all_gather", 1 << 20), 8, 8 << 20, 7 << 20, 7 / 8),
        (CommCase("dispatch", 1000, "fp8", 10, 25, 4), 3, 999, 666, 2 / 3),  # 1000 bytes split 3 ways: 999 move
        (CommCase("combine", 4096), 2, 4096, 2048, 1 / 2),
    ],
)
def test_byte_counts_and_bus_factors_follow_nccl_tests(case, n, message, to_peers, factor):
    assert comm.message_bytes(case, n) == message
    assert comm.bytes_to_peers(case, n) == pytest.approx(to_peers)
    assert comm.bus_factor(case.collective, n) == pytest.approx(factor)


@pytest.mark.parametrize(
    "case, n",
    [
        (CommCase("all_reduce", 1 << 16), 4),
        (CommCase("all_gather", 4098), 3),
        (moe_case("dispatch", tokens_per_rank=16, hidden=256, top_k=4, payload="fp8"), 3),
        (moe_case("combine", tokens_per_rank=16, hidden=256, top_k=4, payload="bf16"), 4),
    ],
)
def test_buffers_hold_the_bytes_the_results_report(case, n):
    send, recv = comm.make_buffers(case, n, torch.device("cpu"))
    assert send.nbytes == comm.buffer_bytes(case, n)
    parts = recv if isinstance(recv, list) else [recv] if recv is not None else []
    if case.collective == "all_gather":
        assert sum(p.nbytes for p in parts) == comm.message_bytes(case, n)
    elif case.collective in ("dispatch", "combine"):
        assert recv.nbytes == send.nbytes and send.nbytes % n == 0
    assert send.float().std() > 0  # random data, never zeros


ALL_REDUCE_1M = CommCase("all_reduce", 1 << 20)


def _rank_result(rank, scope, seconds, case=ALL_REDUCE_1M, n=4, verified=True):
    return comm.RankTiming(case.id, scope, n, case, rank, rank // 2, seconds, verified)


def test_aggregate_takes_the_slowest_rank_per_round_then_the_median():
    per_rank = [
        [_rank_result(0, "world", [1.0, 5.0, 1.0])],
        [_rank_result(1, "world", [2.0, 1.0, 3.0])],
        [_rank_result(2, "world", [1.5, 1.0, 1.0])],
        [_rank_result(3, "world", [1.0, 1.0, 1.0], verified=False)],
    ]
    [r] = comm.aggregate(per_rank)
    # rounds end at 2.0, 5.0, 3.0: the median is 3.0
    assert r.time_s == 3.0 and r.time_min_s == 2.0 and r.time_max_s == 5.0
    assert r.algbw_gb_s == pytest.approx((1 << 20) / 3.0 / 1e9)
    assert r.busbw_gb_s == pytest.approx(r.algbw_gb_s * 1.5)
    assert r.verified is False  # one rank's check failed: the whole result is not verified
    assert r.per_rank_median_s == {"0": 1.0, "1": 2.0, "2": 1.0, "3": 1.0}


# --- rank 0's view of the cases -------------------------------------------------------------------


def _gathered(medians, throttled=(), failed=()):
    from meter.distributed.assemble import RankReport
    from meter.distributed.env import DistContext
    from meter.results import BenchCase, CaseResult, TelemetryInfo, TelemetryWindow
    from meter.results.document import DeviceInfo
    from tests.runs import ok_case

    spec = BenchCase("deepseek-v3", "moe", "train", batch=1, seq=4096)
    out = []
    for rank, median in enumerate(medians):
        window = TelemetryWindow(
            name=spec.id,
            duration_s=1.0,
            throttle_reasons=["hw_power_brake"] if rank in throttled else [],
            joules_per_token=0.1,
        )
        result = ok_case(spec, per_call_s=median, tokens=4096, flops=1e12, telemetry=window)
        if rank in failed:
            result = CaseResult(id=spec.id, case=spec, status="error", reason="CUDA out of memory")
        ctx = DistContext(
            rank=rank,
            world_size=len(medians),
            local_rank=rank % 2,
            local_world_size=2,
            node_rank=rank // 2,
            hostname=f"node{rank // 2}",
            backend="nccl",
        )
        device = DeviceInfo(
            kind="cuda", torch_device=f"cuda:{rank % 2}", name="NVIDIA H100 80GB HBM3", uuid=f"GPU-{rank}"
        )
        out.append(RankReport(ctx, device, [result], [], TelemetryInfo(enabled=False), None))
    return out


def test_aggregate_cases_reports_the_slowest_rank_beside_every_rank():
    [case] = assemble.aggregate_cases(_gathered([1.0, 1.02, 0.98, 1.3]))
    assert case.timing.median_s == 1.3 and case.ranks.slowest_rank == 3
    assert [r.median_s for r in case.per_rank] == [1.0, 1.02, 0.98, 1.3]
    assert case.ranks.spread_across_ranks == pytest.approx((1.3 - 0.98) / 1.01)


def test_a_case_that_failed_on_one_rank_is_not_reported_as_measured():
    [case] = assemble.aggregate_cases(_gathered([1.0, 1.0, 1.0, 1.0], failed={2}))
    assert case.status == "error" and "1 of 4 ranks: CUDA out of memory" in case.reason
    assert case.timing is None and case.metrics is None


def test_stragglers_are_slow_or_throttled_ranks():
    cases = assemble.aggregate_cases(_gathered([1.0, 1.02, 0.98, 1.3], throttled={1}))
    found = {s.rank: s for s in assemble.stragglers(cases)}
    assert set(found) == {1, 3}
    assert "29% slower than the median rank" in found[3].reasons[0] and found[3].hostname == "node1"
    assert found[1].reasons == ["throttled: hw_power_brake"]
    assert not assemble.stragglers(assemble.aggregate_cases(_gathered([1.0, 1.05, 0.97, 1.02])))


def test_layout_groups_ranks_by_node():
    lay = assemble.layout(_gathered([1.0] * 4))
    assert lay.world_size == 4 and lay.n_nodes == 2 and lay.launcher == "torchrun"
    assert [[r.rank for r in n.ranks] for n in lay.nodes] == [[0, 1], [2, 3]]
    assert [n.hostname for n in lay.nodes] == ["node0", "node1"]
