"""The costing methods, chosen before anything is computed, and the inputs each one reads.

Training:

- **mfu** (end to end): GPU-seconds per token = FLOPs / (mfu x peak), or FLOPs / achieved FLOP/s;
  the MFU already includes bubbles, communication, recomputation and MTP, so those inputs are
  left out;
- **compute mfu**: compute at ``compute_mfu``, with the overheads modelled apart (bubble,
  recomputation, MTP; communication flat or, with ``ep_degree``, the expert-parallel model);
- **run (direct)** / **run (transfer)**: a measured run's training layers, with the same modelled
  overheads and the output head; direct when it ran the scenario's model on the scenario's GPU.

Serving:

- **throughput**: the scenario's own throughput per GPU (DeepSeek's published figures);
- **bound x efficiency (given)**: the deployment's bound times ``--efficiency``;
- **bound x efficiency (measured, direct|transfer)**: times the efficiency a run's cases reached
  in each regime, on the target GPU itself or on another device;
- **bound**: the bound alone (no efficiency given or measured): throughput at 100% of it, shown
  as a floor on cost, not as an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICE = frozenset({"usd_per_gpu_hour"})
ENERGY = frozenset({"avg_power_w", "server_power_overhead", "pue", "usd_per_kwh"})
OWNERSHIP = frozenset(
    {"gpu_capex_usd", "server_network_overhead", "depreciation_years", "utilization", "colocation_usd_per_kw_month"}
)
PROGRAMME = frozenset(
    {
        "experiment_multiplier",
        "data_usd",
        "staff_count",
        "staff_usd_per_year",
        "programme_years",
        "fleet_gpus",
        "fleet_capex_usd",
    }
)
OVERHEADS = frozenset({"pipeline_bubble", "exposed_communication", "recompute_factor", "mtp_overhead"})
EP_INPUTS = frozenset(
    {
        "ep_degree",
        "gpus_per_node",
        "max_nodes_per_token",
        "dispatch_bytes_per_value",
        "nvlink_bytes_per_s",
        "network_bytes_per_s",
        "nvlink_efficiency",
        "network_efficiency",
        "comm_overlap",
    }
)
TRAIN_COMMON = PRICE | ENERGY | OWNERSHIP | PROGRAMME

SERVE_LOAD = frozenset(
    {
        "input_tokens_per_day",
        "output_tokens_per_day",
        "cache_hit_rate",
        "cache_hit_cost_ratio",
        "price_input_hit_usd_per_m",
        "price_input_miss_usd_per_m",
        "price_output_usd_per_m",
    }
)
SERVE_COMMON = PRICE | ENERGY | SERVE_LOAD | frozenset({"serving_utilization"})


@dataclass(frozen=True)
class Method:
    """A way of costing: the inputs that set its rate (one of them is needed, unless ``rate`` is
    empty) and every input it reads; anything else is left out, for the reason ``why``."""

    name: str
    rate: tuple[str, ...]
    uses: frozenset[str]
    why: str
    composed: bool = False  # compute and overheads apart (training): the EP model may apply

    def reads(self, *, ep: bool = False) -> frozenset[str]:
        """Every input read; with the EP model, its inputs instead of the flat communication share."""
        uses = self.uses | set(self.rate)
        return (uses | EP_INPUTS) - {"exposed_communication"} if ep else uses


END_TO_END = Method(
    "mfu",
    ("mfu", "achieved_tflops"),
    TRAIN_COMMON,
    "an end-to-end mfu already includes them (use --assume compute_mfu=... to model them)",
)
COMPUTE_MFU = Method(
    "compute mfu",
    ("compute_mfu",),
    TRAIN_COMMON | OVERHEADS,
    "compute_mfu and the modelled overheads replace an end-to-end mfu",
    composed=True,
)
_RUN_USES = TRAIN_COMMON | OVERHEADS | {"head_embedding_overhead"}
_RUN_WHY = "the run's measured rate replaces them"
RUN_DIRECT = Method("run (direct)", ("measured_efficiency",), _RUN_USES, _RUN_WHY, composed=True)
RUN_TRANSFER = Method("run (transfer)", ("measured_efficiency",), _RUN_USES, _RUN_WHY, composed=True)

THROUGHPUT = Method(
    "throughput",
    ("decode_tokens_per_s_per_gpu", "prefill_tokens_per_s_per_gpu"),
    SERVE_COMMON | {"gpus", "exposed_communication"},
    "the scenario's throughput is used as given",
)
_BOUND_WHY = "the deployment's bound x efficiency replaces the throughput and sizes the GPUs from the load"
BOUND_GIVEN = Method("bound x efficiency (given)", ("efficiency",), SERVE_COMMON, _BOUND_WHY)
BOUND_MEASURED_DIRECT = Method(
    "bound x efficiency (measured, direct)", ("compute_efficiency", "memory_efficiency"), SERVE_COMMON, _BOUND_WHY
)
BOUND_MEASURED_TRANSFER = Method(
    "bound x efficiency (measured, transfer)", ("compute_efficiency", "memory_efficiency"), SERVE_COMMON, _BOUND_WHY
)
BOUND_ONLY = Method(
    "bound",
    (),
    SERVE_COMMON,
    "with no efficiency given or measured, only the bound is computed (give --efficiency or --from-run)",
)
