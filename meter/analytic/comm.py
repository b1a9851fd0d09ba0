"""What expert parallelism moves: bytes per value of a payload, and copies of a token over each link.

For one token and one MoE layer, dispatch sends the token's hidden vector to its ``top_k`` experts,
spread over an EP group of ``ep_degree`` GPUs on ``ep_degree / gpus_per_node`` nodes; combine
brings the weighted outputs back the same way. DeepSeek-V3 (paper section 3.2.2) limits each token
to at most 4 nodes and sends one copy per target node over InfiniBand, to the GPU with the same
in-node index, which forwards it over NVLink to the experts on that node. So per token and
direction, on average:

- network copies ``= nodes_hit x (1 - 1/nodes)``, where ``nodes_hit`` is the expected number of
  distinct nodes among the top-k experts (uniform routing), capped by the node limit; the token's
  own node is one of them with probability ``1/nodes`` and costs nothing;
- NVLink copies ``= top_k x (1 - 1/min(gpus_per_node, ep_degree))``: every expert copy lands on
  the right GPU through NVLink unless it is already there.

All functions broadcast over numpy arrays, so Monte Carlo samples pass straight through.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Bytes per value of a dispatch or combine payload. fp8 carries one fp32 scale per 128 values, as
# DeepSeek-V3's fine-grained quantization does (1 x 128 tiles for activations).
PAYLOAD_BYTES: dict[str, float] = {"bf16": 2.0, "fp8": 1.0 + 4.0 / 128, "fp32": 4.0}


def expected_nodes_hit(top_k: Any, nodes: Any) -> Any:
    """Expected distinct nodes among ``top_k`` experts routed uniformly over ``nodes`` nodes."""
    nodes = np.maximum(np.asarray(nodes, dtype=float), 1.0)
    return nodes * (1.0 - (1.0 - 1.0 / nodes) ** top_k)


def ep_copies_per_token(
    *, ep_degree: Any, gpus_per_node: Any, top_k: int, max_nodes_per_token: Any | None = None
) -> tuple[Any, Any]:
    """(network copies, NVLink copies) of one token's hidden vector in one dispatch."""
    ep_degree = np.asarray(ep_degree, dtype=float)
    nodes = np.maximum(ep_degree / gpus_per_node, 1.0)
    hit = expected_nodes_hit(top_k, nodes)
    if max_nodes_per_token is not None:
        hit = np.minimum(hit, max_nodes_per_token)
    network = hit * (1.0 - 1.0 / nodes)
    nvlink = top_k * (1.0 - 1.0 / np.minimum(gpus_per_node, ep_degree))
    return network, nvlink


def ep_bytes_per_token(
    *,
    hidden: int,
    top_k: int,
    payload_bytes: float,
    ep_degree: Any,
    gpus_per_node: Any,
    max_nodes_per_token: Any | None = None,
) -> tuple[Any, Any]:
    """(network bytes, NVLink bytes) one token sends in one dispatch or combine of one layer."""
    network, nvlink = ep_copies_per_token(
        ep_degree=ep_degree, gpus_per_node=gpus_per_node, top_k=top_k, max_nodes_per_token=max_nodes_per_token
    )
    value_bytes = hidden * payload_bytes
    return network * value_bytes, nvlink * value_bytes


def tp_allreduce_bytes_per_gpu(*, tokens: float, hidden: int, tp: int, value_bytes: float) -> float:
    """Bytes one GPU sends in a ring all-reduce of ``tokens`` hidden vectors over ``tp`` GPUs.

    A ring all-reduce (reduce-scatter, then all-gather) sends ``2 (tp - 1) / tp`` of the message
    from every GPU; tensor parallelism runs two per layer (after attention and after the MLP).
    """
    if tp <= 1:
        return 0.0
    return 2.0 * (tp - 1) / tp * tokens * hidden * value_bytes
