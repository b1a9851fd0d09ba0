"""The torchrun environment: ranks, nodes, the process group, and groups within and across nodes.

``meter bench --distributed`` runs under ``torchrun`` (one process per GPU, any number of nodes):
torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and GROUP_RANK (the node's rank).
NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from typing import Any

from meter.errors import UsageError

REQUIRED = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK")


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    hostname: str
    backend: str

    @property
    def n_nodes(self) -> int:
        return self.world_size // self.local_world_size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def from_environment(environ: dict[str, str] | None = None) -> tuple[int, int, int, int, int]:
    """(rank, world, local rank, local world, node rank) from torchrun's variables."""
    env = os.environ if environ is None else environ
    missing = [k for k in REQUIRED if k not in env]
    if missing:
        raise UsageError(
            "--distributed runs under torchrun (missing " + ", ".join(missing) + "); e.g. "
            "torchrun --nproc-per-node 8 -m meter bench --distributed ..."
        )
    values = [int(env[k]) for k in REQUIRED]
    rank, world, local, local_world, node = values
    if rank != node * local_world + local:
        raise UsageError(
            f"RANK {rank} is not GROUP_RANK x LOCAL_WORLD_SIZE + LOCAL_RANK ({node} x {local_world} + "
            f"{local}): ranks must be contiguous per node, as torchrun assigns them"
        )
    if world % local_world:
        raise UsageError(
            f"WORLD_SIZE {world} is not a multiple of LOCAL_WORLD_SIZE {local_world}: "
            "every node must run the same number of processes"
        )
    return tuple(values)  # type: ignore[return-value]


def init(device_kind: str, timeout_s: float = 600.0) -> DistContext:
    """Join the process group (NCCL for CUDA, gloo for the CPU) and pin this rank's GPU."""
    import datetime as dt

    import torch
    import torch.distributed as dist

    rank, world, local_rank, local_world, node_rank = from_environment()
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=dt.timedelta(seconds=timeout_s))
    return DistContext(rank, world, local_rank, local_world, node_rank, socket.gethostname(), backend)


def node_groups(ctx: DistContext):
    """(this node's group, this local rank's group across nodes); every rank creates every group."""
    import torch.distributed as dist

    intra = inter = None
    for node in range(ctx.n_nodes):
        ranks = list(range(node * ctx.local_world_size, (node + 1) * ctx.local_world_size))
        group = dist.new_group(ranks)
        if node == ctx.node_rank:
            intra = group
    for local in range(ctx.local_world_size):
        ranks = [node * ctx.local_world_size + local for node in range(ctx.n_nodes)]
        group = dist.new_group(ranks)
        if local == ctx.local_rank:
            inter = group
    return intra, inter
