"""meter bench --distributed for real: torchrun launches gloo ranks on the CPU, one node and two
nodes (two torchrun agents meeting at a c10d rendezvous on 127.0.0.1), and rank 0's run file is
checked: the layout, every rank's results, the communication byte counts and bandwidths."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from meter.config.models import load_model
from meter.cost.ep_comm import measured_links
from meter.distributed.comm import PAYLOAD_BYTES
from meter.results import load_run
from tests.conftest import REPO, run_meter

pytestmark = pytest.mark.slow
TINY = load_model("deepseek-v3-tiny").args  # hidden 256, top-4
COMM = ["--comm-tokens", "16", "--comm-sizes", "4K"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str, tmp: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *args,
        "-m",
        "meter",
        "bench",
        "--distributed",
        "--device",
        "cpu",  # gloo ranks on the CPU, also on a machine with one GPU (NCCL cannot put two ranks on it)
        "--model",
        "deepseek-v3-tiny",
    ]


def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "METER_CACHE_DIR": str(tmp / "cache"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def _expected_comm_bytes(n: int) -> dict[str, tuple[int, float]]:
    """case id -> (message bytes, bytes each rank sends to its peers), by hand for the tiny model."""
    values = 16 * TINY.n_activated_experts * TINY.dim  # 16 tokens x top-4 x hidden 256 = 16384 values
    assert values == 16384
    out = {}
    for collective, payload in (("dispatch", "fp8"), ("dispatch", "bf16"), ("combine", "bf16")):
        size = int(values * PAYLOAD_BYTES[payload])
        size -= size % n
        out[f"{collective}.t16-h256-k4.{payload}"] = (size, size * (n - 1) / n)
    out["all_reduce.4096B.fp32"] = (4096, 2 * 4096 * (n - 1) / n)
    out["all_gather.4096B.fp32"] = (4096 * n, 4096 * (n - 1))
    return out


def _check_comm(doc, scope: str, n: int, ranks_in_results: int) -> None:
    results = {c.id: c for c in doc.communication if c.scope == scope}
    expected = _expected_comm_bytes(n)
    assert set(results) == set(expected)
    for case_id, (message, to_peers) in expected.items():
        r = results[case_id]
        assert r.group_size == n and r.verified is True and r.ranks == ranks_in_results
        assert r.message_bytes == message and r.bytes_to_peers_per_rank == pytest.approx(to_peers)
        factor = 2 * (n - 1) / n if r.case.collective == "all_reduce" else (n - 1) / n
        assert r.algbw_gb_s == pytest.approx(message / r.time_s / 1e9)
        assert r.busbw_gb_s == pytest.approx(r.algbw_gb_s * factor)
        assert r.time_min_s <= r.time_s <= r.time_max_s
        assert len(r.per_rank_median_s) == ranks_in_results


def test_one_node_two_ranks_gathers_every_rank(tmp_path):
    out = tmp_path / "run.json"
    cmd = _torchrun("--standalone", "--nproc-per-node", "2", tmp=tmp_path) + [
        "--layers",
        "moe,ffn",
        "--phase",
        "train,decode",
        "--seq",
        "256",
        "--batch",
        "1",
        "--min-time",
        "0.05",
        "--output",
        str(out),
        *COMM,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 ranks on 1 node(s), 2 per node, gloo" in r.stdout
    doc = load_run(out)
    assert doc.status == "complete" and doc.metadata.device.kind == "cpu"
    lay = doc.metadata.distributed
    assert (lay.world_size, lay.n_nodes, lay.local_world_size, lay.backend) == (2, 1, 2, "gloo")
    assert [r.rank for r in lay.nodes[0].ranks] == [0, 1]
    assert len(doc.metadata.telemetry.per_rank) == 2
    assert doc.metadata.method.cpu_run is True and doc.metadata.software.torch
    # every case measured on both ranks; the reported timing is the slower rank's
    assert {c.id for c in doc.cases} == {
        "moe.train.b1-s256.fp32",
        "moe.decode.b1.fp32",
        "ffn.train.b1-s256.fp32",
        "ffn.decode.b1.fp32",
    }
    for case in doc.cases:
        assert case.status == "ok" and case.ranks.count == 2
        medians = [p.median_s for p in case.per_rank]
        assert [p.rank for p in case.per_rank] == [0, 1]
        assert case.timing.median_s == max(medians)
    assert isinstance(doc.stragglers, list)
    # one node: only the world scope, which is intra-node
    assert {c.scope for c in doc.communication} == {"world"}
    _check_comm(doc, "world", 2, 2)
    links = measured_links(doc, str(out))
    assert links.cpu and links.nvlink_bytes_per_s > 0 and links.network_bytes_per_s is None


def test_two_nodes_meet_at_a_rendezvous_on_localhost(tmp_path):
    out = tmp_path / "run.json"
    port = _free_port()
    common = [
        "--nnodes",
        "2",
        "--nproc-per-node",
        "2",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        f"meter-test-{port}",
    ]
    procs = [
        subprocess.Popen(
            _torchrun(*common, "--node-rank", str(node), tmp=tmp_path) + ["--comm-only", "--output", str(out), *COMM],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(tmp_path),
            cwd=tmp_path,
        )
        for node in (0, 1)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    doc = load_run(out)
    lay = doc.metadata.distributed
    assert (lay.world_size, lay.n_nodes, lay.local_world_size) == (4, 2, 2)
    assert [[(r.rank, r.local_rank) for r in n.ranks] for n in lay.nodes] == [
        [(0, 0), (1, 1)],
        [(2, 0), (3, 1)],
    ]
    assert doc.cases == []  # --comm-only
    assert {c.scope for c in doc.communication} == {"world", "intra-node", "inter-node"}
    _check_comm(doc, "world", 4, 4)
    _check_comm(doc, "intra-node", 2, 4)  # two node groups of two, all four ranks reporting
    _check_comm(doc, "inter-node", 2, 4)  # two cross-node pairs (local rank 0s, local rank 1s)
    links = measured_links(doc, str(out))
    assert links.nvlink_bytes_per_s > 0 and links.network_bytes_per_s > 0
    assert "4 ranks on 2 node(s), gloo" in links.source

    # the cost meter takes the run, and says plainly that gloo on a CPU is no measure of a GPU's links
    r = run_meter("cost", "cluster", "--comm-run", str(out), "--samples", "0", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert all(
        row["links"] == {"nvlink_bytes_per_s": "hardware config", "network_bytes_per_s": "hardware config"}
        for row in report["rows"]
    )
    assert any("was on the CPU (gloo)" in n for e in report["estimates"] for n in e["notes"])
