"""Expert-parallel communication in the training cost: the traffic by hand, the composed step time,
measured links, and meter cost cluster."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from meter.analytic import flops as F
from meter.analytic.comm import ep_copies_per_token, expected_nodes_hit
from meter.config.models import load_model
from meter.config.quantity import Quantity
from meter.config.scenarios import load_scenario
from meter.cost.configs import load_and_estimate_train
from meter.cost.ep_comm import EpShape, measured_links, training_comm_seconds_per_token
from meter.cost.training_formula import StagePlan, TrainContext, train_cost
from meter.results.atomic import write_json_atomic
from tests.conftest import run_meter

V3 = load_model("deepseek-v3").args
V3_EP = EpShape(hidden=7168, top_k=8, n_moe_layers=59)  # 58 MoE layers + the MTP module's
H800 = {"nvlink_bytes_per_s": 200e9, "network_bytes_per_s": 50e9}  # per direction: 400 GB/s bidirectional, CX7


def test_copies_per_token_with_node_limited_routing():
    # EP64 over 8 nodes, at most 4 nodes a token: 4 copies cross the network unless one is home (1/8)
    network, nvlink = ep_copies_per_token(ep_degree=64, gpus_per_node=8, top_k=8, max_nodes_per_token=4)
    assert network == pytest.approx(3.5) and nvlink == pytest.approx(7.0)
    # EP8 in one node: nothing on the network, 7 of 8 expert copies leave the GPU over NVLink
    network, nvlink = ep_copies_per_token(ep_degree=8, gpus_per_node=8, top_k=8)
    assert network == 0 and nvlink == pytest.approx(7.0)
    # without a node limit, 8 experts over 16 nodes hit 16 x (1 - (15/16)^8) nodes on average
    assert expected_nodes_hit(8, 16) == pytest.approx(16 * (1 - (15 / 16) ** 8))
    network, _ = ep_copies_per_token(ep_degree=128, gpus_per_node=8, top_k=8)
    assert network == pytest.approx(16 * (1 - (15 / 16) ** 8) * 15 / 16)
    # Monte Carlo samples broadcast
    network, _ = ep_copies_per_token(ep_degree=np.array([8.0, 64.0]), gpus_per_node=8, top_k=8, max_nodes_per_token=4)
    assert network.tolist() == pytest.approx([0.0, 3.5])


def test_training_comm_by_hand_on_an_h800():
    x = {
        "ep_degree": 64,
        "gpus_per_node": 8,
        "max_nodes_per_token": 4,
        "dispatch_bytes_per_value": 1.03125,
        "comm_overlap": 0.75,
        **H800,
    }
    out = training_comm_seconds_per_token(x, V3_EP)
    fp8_net, bf16_net = 3.5 * 7168 * 1.03125 / 50e9, 3.5 * 7168 * 2 / 50e9  # 0.517 us, 1.004 us
    fp8_nvl, bf16_nvl = 7 * 7168 * 1.03125 / 200e9, 7 * 7168 * 2 / 200e9  # 0.259 us, 0.502 us
    assert out["ep_network_s_per_token"] == pytest.approx(59 * (fp8_net + 3 * bf16_net))
    assert out["ep_nvlink_s_per_token"] == pytest.approx(59 * (fp8_nvl + 3 * bf16_nvl))
    assert out["ep_comm_s_per_token"] == pytest.approx(2.0815e-4, rel=1e-4)  # the network binds
    assert out["exposed_comm_s_per_token"] == pytest.approx(out["ep_comm_s_per_token"] * 0.25)
    # in one node NVLink binds, and H100's 900 GB/s (450 per direction) cuts it by 200/450
    ep8 = training_comm_seconds_per_token({**x, "ep_degree": 8}, V3_EP)["ep_comm_s_per_token"]
    assert ep8 == pytest.approx(59 * (fp8_nvl + 3 * bf16_nvl))
    h100 = training_comm_seconds_per_token({**x, "ep_degree": 8, "nvlink_bytes_per_s": 450e9}, V3_EP)
    assert h100["ep_comm_s_per_token"] == pytest.approx(ep8 * 200 / 450)
    # efficiencies scale the links
    slow = training_comm_seconds_per_token({**x, "network_efficiency": 0.5}, V3_EP)
    assert slow["ep_network_s_per_token"] == pytest.approx(2 * out["ep_network_s_per_token"])


def test_step_time_composes_compute_communication_and_bubble():
    ctx = TrainContext(
        stages=[StagePlan("pre", "tokens", flops_per_token=1e9)],
        peak_flops=1e15,
        rate="compute_mfu",
        pretraining="pre",
        ep=V3_EP,
    )
    x = {
        "stage.pre.tokens": 3.6e9,
        "compute_mfu": 0.5,
        "mtp_overhead": 0.1,
        "recompute_factor": 1.1,
        "pipeline_bubble": 0.2,
        "ep_degree": 64,
        "max_nodes_per_token": 4,
        "comm_overlap": 0.5,
        **H800,
    }
    out = train_cost(x, ctx)
    compute = 1e9 * 1.1 * 1.1 / (0.5 * 1e15)
    exposed = training_comm_seconds_per_token(x, V3_EP)["ep_comm_s_per_token"] * 0.5
    assert out["compute_s_per_token"] == pytest.approx(compute)
    assert out["exposed_comm_s_per_token"] == pytest.approx(exposed)
    assert out["pretraining_gpu_hours"] == pytest.approx(3.6e9 * (compute + exposed) / 0.8 / 3600)
    assert out["mfu"] == pytest.approx(1e9 / ((compute + exposed) / 0.8) / 1e15)
    # without ep_degree, the flat exposed_communication share applies instead
    flat = train_cost(x | {"exposed_communication": 0.3}, dataclasses.replace(ctx, ep=None))
    assert flat["pretraining_gpu_hours"] == pytest.approx(3.6e9 * compute * 1.3 / 0.8 / 3600)


def _cluster(hardware, ep, **assume):
    overrides = {"ep_degree": Quantity.point(ep), **{k: Quantity.point(v) for k, v in assume.items()}}
    return load_and_estimate_train(
        load_scenario("deepseek-v3-cluster"), overrides=overrides, hardware=hardware, samples=0
    )


def test_nvlink_matters_in_a_node_not_across_nodes():
    h800_64, h100_64 = _cluster("h800-sxm", 64, comm_overlap=0), _cluster("h100-sxm", 64, comm_overlap=0)
    h800_8, h100_8 = _cluster("h800-sxm", 8, comm_overlap=0), _cluster("h100-sxm", 8, comm_overlap=0)
    gpu_hours = {
        k: e.outputs["pretraining_gpu_hours"].point
        for k, e in {"h800_64": h800_64, "h100_64": h100_64, "h800_8": h800_8, "h100_8": h100_8}.items()
    }
    # same dense bf16 peak, same 400 Gb/s NIC per GPU: EP64 across nodes costs the same GPU-hours
    assert gpu_hours["h800_64"] == pytest.approx(gpu_hours["h100_64"])
    assert h800_64.outputs["compute_s_per_token"].point == pytest.approx(h100_64.outputs["compute_s_per_token"].point)
    # within a node NVLink binds, and H100's wider NVLink saves GPU-hours
    comm8 = {k: e.outputs["ep_comm_s_per_token"].point for k, e in (("h800", h800_8), ("h100", h100_8))}
    assert comm8["h100"] == pytest.approx(comm8["h800"] * 400 / 900)
    assert gpu_hours["h100_8"] < gpu_hours["h800_8"] < gpu_hours["h800_64"]
    # all communication hidden: the link no longer matters
    hidden = [_cluster(hw, 8, comm_overlap=1).outputs["pretraining_gpu_hours"].point for hw in ("h800-sxm", "h100-sxm")]
    assert hidden[0] == pytest.approx(hidden[1])


def test_cluster_scenario_inputs_and_sources():
    e = _cluster("h800-sxm", 64)
    assert e.method == "compute mfu"
    assert (
        e.inputs["nvlink_bytes_per_s"].quantity.central == 200e9
        and e.inputs["nvlink_bytes_per_s"].origin == "hardware config"
    )
    assert "ISCA" in e.inputs["network_bytes_per_s"].source
    assert "mtp_overhead" in e.inputs and "head_embedding_overhead" not in e.inputs  # FLOPs already count the head
    flops = F.train_flops_per_token(V3, 4096).total
    x = {k: v.quantity.central for k, v in e.inputs.items()}
    compute = flops * (1 + x["mtp_overhead"]) * x["recompute_factor"] / (x["compute_mfu"] * 989.4e12)
    assert e.outputs["compute_s_per_token"].point == pytest.approx(compute)


def _comm_doc(path: Path, hardware: str, kind: str = "cuda") -> Path:
    """A distributed run's communication results, built through the run-file types."""
    from meter.config.hardware import load_hardware
    from meter.jsonable import to_jsonable
    from meter.results import CommCase, CommResult, RunDocument
    from meter.results.document import DeviceInfo, DistributedLayout
    from meter.results.metadata import hardware_summary, utc_now
    from tests.runs import cpu_metadata

    def result(scope, collective, message, to_peers, t):
        case = CommCase(collective, int(message), "bf16", 4096, 7168, 8)
        return CommResult(
            id=case.id,
            scope=scope,
            group_size=8,
            case=case,
            time_s=t,
            time_min_s=t,
            time_max_s=t,
            message_bytes=int(message),
            bytes_to_peers_per_rank=to_peers,
            algbw_gb_s=message / t / 1e9,
            busbw_gb_s=message / t / 1e9 * 7 / 8,
            verified=True,
            ranks=16,
        )

    device = DeviceInfo(kind=kind, torch_device="cuda:0" if kind == "cuda" else "cpu", name="NVIDIA H100 80GB HBM3")
    layout = DistributedLayout(world_size=16, local_world_size=8, n_nodes=2, backend="nccl", launcher="torchrun")
    doc = RunDocument(
        run_id="r1",
        status="complete",
        started_at=utc_now(),
        metadata=cpu_metadata(device=device, hardware=hardware_summary(load_hardware(hardware)), distributed=layout),
        cases=[],
        communication=[
            result("intra-node", "dispatch", 1e8, 8.75e7, 8.75e7 / 300e9),
            result("intra-node", "dispatch", 1e6, 8.75e5, 8.75e5 / 100e9),  # smaller: ignored
            result("inter-node", "combine", 1e8, 5e7, 5e7 / 40e9),
            result("world", "all_reduce", 1e8, 1e8, 1.0),
        ],
    )
    write_json_atomic(path, to_jsonable(doc))
    return path


def test_measured_links_replace_the_datasheet_on_the_same_hardware(tmp_path):
    from meter.results import load_run

    path = _comm_doc(tmp_path / "comm.json", "h100-sxm")
    links = measured_links(load_run(path), str(path))
    assert links.nvlink_bytes_per_s == pytest.approx(300e9) and links.network_bytes_per_s == pytest.approx(40e9)
    scenario = load_scenario("deepseek-v3-cluster")
    e = load_and_estimate_train(scenario, hardware="h100-sxm", samples=0, comm=links)
    assert e.inputs["nvlink_bytes_per_s"].origin == "measured run" and e.inputs[
        "nvlink_bytes_per_s"
    ].quantity.central == pytest.approx(300e9)
    assert "nvlink_efficiency" not in e.inputs and "network_efficiency" not in e.inputs
    x = {k: v.quantity.central for k, v in e.inputs.items()}
    expected = training_comm_seconds_per_token(x, V3_EP)["ep_comm_s_per_token"]
    assert e.outputs["ep_comm_s_per_token"].point == pytest.approx(expected)
    assert e.outputs["ep_network_s_per_token"].point == pytest.approx(59 * 3.5 * 7168 * (1.03125 + 6) / 40e9)
    # another GPU's links are not this one's
    other = load_and_estimate_train(scenario, hardware="h800-sxm", samples=0, comm=links)
    assert other.inputs["nvlink_bytes_per_s"].origin == "hardware config"
    assert any("was on h100-sxm, not h800-sxm" in n for n in other.notes)
    # an override on the command line still has the last word
    pinned = load_and_estimate_train(
        scenario, hardware="h100-sxm", samples=0, comm=links, overrides={"network_bytes_per_s": Quantity.point(25e9)}
    )
    assert pinned.inputs["network_bytes_per_s"].quantity.central == 25e9


def test_end_to_end_mfu_keeps_ep_inputs_out():
    e = load_and_estimate_train(load_scenario("deepseek-v3"), samples=0, overrides={"ep_degree": Quantity.point(64)})
    assert "ep_degree" not in e.inputs and any("left unused" in n for n in e.notes)
    assert "ep_comm_s_per_token" not in e.outputs


def test_cluster_command_rows(tmp_path):
    r = run_meter("cost", "cluster", "--ep", "8,64", "--samples", "0", "--json")
    assert r.returncode == 0, r.stderr
    rows = {(row["hardware"], row["ep_degree"]): row for row in json.loads(r.stdout)["rows"]}
    assert set(rows) == {("h800-sxm", 8), ("h800-sxm", 64), ("h100-sxm", 8), ("h100-sxm", 64)}
    assert rows["h800-sxm", 64]["binds"] == rows["h100-sxm", 64]["binds"] == "network"
    assert rows["h800-sxm", 8]["binds"] == rows["h100-sxm", 8]["binds"] == "NVLink"
    assert rows["h100-sxm", 8]["ep_comm_s_per_token"] < rows["h800-sxm", 8]["ep_comm_s_per_token"]
    assert rows["h800-sxm", 64]["nvlink_bandwidth_gb_s"] == 400 and rows["h100-sxm", 64]["nvlink_bandwidth_gb_s"] == 900
    text = run_meter("cost", "cluster", "--samples", "0")
    assert text.returncode == 0 and "Cluster projection: deepseek-v3-cluster" in text.stdout
    assert "h800-sxm" in text.stdout and "(network;" in text.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scenario", "deepseek-v3", "--ep", "64"], "has an end-to-end mfu, which already includes communication"),
        (["--scenario", "deepseek-v3"], "has no ep_degree; give --ep N"),
        (["--scenario", "deepseek-v3-day6"], "is a serve scenario"),
        (["--assume", "comm_overlap=1.5"], "input comm_overlap = 1.5 (command line): must lie in [0, 1]"),
        (["--hardware", "h900"], "no such hardware config"),
        (["--comm-run", "missing.json"], "missing.json: no such file"),
    ],
)
def test_cluster_command_errors(args, message):
    r = run_meter("cost", "cluster", "--samples", "0", *args)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_comm_run_without_communication_is_refused(tmp_path):
    path = _comm_doc(tmp_path / "comm.json", "h100-sxm")
    doc = json.loads(path.read_text())
    doc["communication"] = []
    path.write_text(json.dumps(doc))
    r = run_meter("cost", "train", "--scenario", "deepseek-v3-cluster", "--comm-run", str(path), "--samples", "0")
    assert r.returncode == 2 and "no communication results" in r.stderr and r.stderr.count("\n") == 1


def test_a_dense_model_has_no_expert_parallelism():
    r = run_meter(
        "cost",
        "train",
        "llama-3.1-405b",
        "--tokens",
        "15T",
        "--hardware",
        "h100-sxm",
        "--assume",
        "compute_mfu=0.4",
        "--assume",
        "ep_degree=8",
        "--samples",
        "0",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["method"] == "compute mfu" and "ep_degree" not in out["inputs"]
    assert any("a dense model has no expert parallelism" in n for n in out["notes"])
    assert out["outputs"]["mfu"]["point"] == pytest.approx(0.4)  # nothing else in the step: MFU = compute_mfu
