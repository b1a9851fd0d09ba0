"""Expert-parallel communication time per training token, and how much of it the compute hides.

Per token and MoE layer, training runs four all-to-alls: forward dispatch (fp8 by default, as
DeepSeek-V3) and combine (bf16), and in the backward pass their gradients (bf16). Each takes the
longer of its network and NVLink legs (``meter.analytic.comm`` counts the copies); the legs run
concurrently because DeepSeek's kernels forward over NVLink while InfiniBand is still receiving.

Bandwidths are per GPU and direction: the hardware config's NVLink (quoted bidirectional, so
halved) and scale-out network, each times an efficiency assumption; or the effective bandwidths a
distributed run measured on the same hardware (``meter bench --distributed``), which replace
link x efficiency. ``comm_overlap`` is the share of this time the compute hides (DualPipe's claim
is all of it); only the rest adds to the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from meter.analytic.comm import PAYLOAD_BYTES, ep_bytes_per_token
from meter.results.document import RunDocument
from meter.results.records import CommResult

ALL_TO_ALLS = ("dispatch", "combine", "combine_grad", "dispatch_grad")


@dataclass(frozen=True)
class EpShape:
    """What the EP model needs of the model."""

    hidden: int
    top_k: int
    n_moe_layers: int  # MoE layers a training token passes (MTP's included)


def link_bandwidths(x: Mapping[str, Any]) -> tuple[Any, Any]:
    """(NVLink, network) effective bytes/s per GPU and direction: the link times its efficiency."""
    nvlink = x["nvlink_bytes_per_s"] * x.get("nvlink_efficiency", 1.0) if "nvlink_bytes_per_s" in x else None
    network = x["network_bytes_per_s"] * x.get("network_efficiency", 1.0) if "network_bytes_per_s" in x else None
    return nvlink, network


def all_to_all_legs(x: Mapping[str, Any], ep: EpShape, payload_bytes: Any) -> tuple[Any, Any]:
    """(network, NVLink) GPU-seconds of one dispatch-like all-to-all, for one token in one MoE layer."""
    gpus_per_node = x.get("gpus_per_node", 8)
    network_bytes, nvlink_bytes = ep_bytes_per_token(
        hidden=ep.hidden,
        top_k=ep.top_k,
        payload_bytes=payload_bytes,
        ep_degree=x["ep_degree"],
        gpus_per_node=gpus_per_node,
        max_nodes_per_token=x.get("max_nodes_per_token", None),
    )
    nvlink_bw, network_bw = link_bandwidths(x)
    spans_nodes = np.any(np.asarray(x["ep_degree"]) > gpus_per_node)
    if nvlink_bw is None or (network_bw is None and spans_nodes):
        raise ValueError("the EP communication model needs nvlink_bytes_per_s and, across nodes, network_bytes_per_s")
    network_s = network_bytes / network_bw if network_bw is not None else 0.0 * network_bytes
    return network_s, nvlink_bytes / nvlink_bw


def training_comm_seconds_per_token(x: Mapping[str, Any], ep: EpShape) -> dict[str, Any]:
    """EP communication of one training token over all its MoE layers: each leg, the total, the exposed part.

    The total is the slower leg of each all-to-all; the legs' own sums say which link binds.
    """
    dispatch = all_to_all_legs(x, ep, x.get("dispatch_bytes_per_value", PAYLOAD_BYTES["fp8"]))
    bf16 = all_to_all_legs(x, ep, PAYLOAD_BYTES["bf16"])  # combine, and both gradients
    network = ep.n_moe_layers * (dispatch[0] + 3 * bf16[0])
    nvlink = ep.n_moe_layers * (dispatch[1] + 3 * bf16[1])
    total = ep.n_moe_layers * (np.maximum(*dispatch) + 3 * np.maximum(*bf16))
    return {
        "ep_network_s_per_token": network,
        "ep_nvlink_s_per_token": nvlink,
        "ep_comm_s_per_token": total,
        "exposed_comm_s_per_token": total * (1 - x.get("comm_overlap", 0.0)),
    }


@dataclass(frozen=True)
class MeasuredLinks:
    """Effective EP bandwidths a distributed run measured, and on what."""

    nvlink_bytes_per_s: float | None  # intra-node all-to-all, bytes to peers per rank per second
    network_bytes_per_s: float | None  # inter-node all-to-all, the same
    hardware: str | None  # the hardware config the ranks matched
    cpu: bool
    source: str
    device: str = ""  # the GPUs' name as the run recorded it (for runs no hardware config matched)
    nvlink_from: str | None = None  # which collective each figure is: "all_to_all" or "all_reduce"
    network_from: str | None = None
    network_off_node_share: float = 1.0  # of an inter-node all-to-all's bytes to peers, the share that leaves the node


ALL_TO_ALL = ("dispatch", "combine", "all_to_all")


def measured_links(doc: RunDocument, path: str) -> MeasuredLinks:
    """The effective bandwidths of a distributed run's all-to-alls (dispatch and combine, or nccl-tests').

    Each link (intra-node: NVLink; inter-node: the network) is set by its scope's largest verified
    message: bytes a rank sent to its peers over the slowest rank's time, which is what the EP model
    divides by. A single-node run's world-scope all-to-all is intra-node. Each link takes the
    all-to-all where one was measured in that scope; only where none was does a ring all-reduce's
    bus bandwidth stand in (bytes to peers over time is exactly busbw). An all-to-all rarely does as
    well, so that figure is an upper bound, and the source says so, link by link.
    """
    meta = doc.metadata
    layout = meta.distributed
    single_node = layout is None or layout.n_nodes == 1
    picked = []
    for scopes in (("intra-node", "world") if single_node else ("intra-node",), ("inter-node",)):
        picked.append(_pick(doc, scopes))
    (intra_row, intra_what, intra_from), (inter_row, inter_what, inter_from) = picked
    intra = intra_row.peer_bytes_per_s if intra_row else None
    inter = inter_row.peer_bytes_per_s if inter_row else None
    parts = [f"NVLink from {intra_what}" if intra is not None else None]
    parts.append(f"network from {inter_what}" if inter is not None else None)
    what = "; ".join(p for p in parts if p) or "no verified all-to-all or all-reduce"
    if layout is not None:
        where = f"{layout.world_size} ranks on {layout.n_nodes} node(s), {layout.backend}"
    else:
        where = "a run without a distributed layout"
    return MeasuredLinks(
        intra,
        inter,
        meta.hardware.name if meta.hardware else None,
        meta.device.cpu,
        f"{path}: {what}, measured on {where}",
        device=meta.device.name,
        nvlink_from=intra_from,
        network_from=inter_from,
        network_off_node_share=_off_node_share(layout, inter_row) if inter_from == "all_to_all" else 1.0,
    )


def _off_node_share(layout, row: CommResult | None) -> float:
    """An all-to-all over all n ranks, g per node, sends (n - g) / (n - 1) of its bytes to peers on other nodes;
    meter's own inter-node groups hold one rank per node, so all of theirs leave it."""
    if layout is None or row is None or row.group_size != layout.world_size or layout.n_nodes < 2:
        return 1.0
    return (layout.world_size - layout.local_world_size) / (layout.world_size - 1)


def _pick(doc: RunDocument, scopes: tuple[str, ...]) -> tuple[CommResult | None, str, str | None]:
    """(the row, what it is, the collective) that sets one link: its all-to-all, else its all-reduce."""
    in_scope = [c for c in doc.communication if c.scope in scopes]
    a2a = [c for c in in_scope if c.case.collective in ALL_TO_ALL]
    for scope in scopes:
        row = _best([c for c in a2a if c.verified], scope)
        if row is not None:
            return row, "all-to-alls", "all_to_all"
    for scope in scopes:
        row = _best([c for c in in_scope if c.case.collective == "all_reduce" and c.verified], scope)
        if row is not None:
            why = f"its {len(a2a)} all-to-all row(s) not verified" if a2a else "no all-to-all measured in this scope"
            return row, f"ring all-reduce bus bandwidth ({why}: an upper bound)", "all_reduce"
    return None, "", None


def _best(comms: list[CommResult], scope: str) -> CommResult | None:
    picked = [c for c in comms if c.scope == scope]
    return max(picked, key=lambda c: c.message_bytes) if picked else None
