"""What a cost estimate gives its readers: its outputs as typed views, one field per output.

Inside the Monte Carlo the outputs are arrays by name (one formula runs on floats and on samples);
a consumer (the CLI, ``meter run``, the report, the exporter) reads ``TrainingCost.total_usd``, so
renaming an output breaks at the reader instead of silently dropping a line or a Prometheus series.
The field names are the output names of :data:`meter.config.scenarios.TRAIN_OUTPUTS` and
``SERVE_OUTPUTS``; a test keeps them the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from meter.cost.montecarlo import Summary

PER_STAGE = ("stage_gpu_hours", "stage_usd")  # outputs named "<output>.<stage>"


@dataclass(frozen=True)
class TrainingCost:
    """A training estimate's outputs (each a :class:`Summary`; None where the estimate has none)."""

    total_gpu_hours: Summary | None = None
    total_usd: Summary | None = None
    pretraining_gpu_hours: Summary | None = None
    pretraining_usd: Summary | None = None
    gpu_hours_per_trillion_tokens: Summary | None = None
    days_per_trillion_tokens_on_cluster: Summary | None = None
    days_on_cluster: Summary | None = None
    mfu: Summary | None = None
    energy_kwh: Summary | None = None
    energy_usd: Summary | None = None
    ownership_usd_per_gpu_hour: Summary | None = None
    ownership_usd: Summary | None = None
    programme_usd: Summary | None = None
    experiments_usd: Summary | None = None
    data_usd: Summary | None = None
    staff_usd: Summary | None = None
    final_run_share_of_programme: Summary | None = None
    final_run_share_of_fleet_capex: Summary | None = None
    fleet_capex_usd: Summary | None = None
    fleet_capex_per_gpu_usd: Summary | None = None
    cumulative_usd: Summary | None = None
    implied_mfu: Summary | None = None
    compute_s_per_token: Summary | None = None
    ep_comm_s_per_token: Summary | None = None
    exposed_comm_s_per_token: Summary | None = None
    ep_network_s_per_token: Summary | None = None
    ep_nvlink_s_per_token: Summary | None = None
    training_flops: Summary | None = None
    achieved_flops_per_s_per_gpu: Summary | None = None
    stage_gpu_hours: dict[str, Summary] = field(default_factory=dict)  # by stage name
    stage_usd: dict[str, Summary] = field(default_factory=dict)

    @classmethod
    def of(cls, outputs: Mapping[str, Summary]) -> TrainingCost:
        return cls(**_fields(cls, outputs))


@dataclass(frozen=True)
class ServingCost:
    """A serving estimate's outputs (each a :class:`Summary`; None where the estimate has none)."""

    usd_per_day: Summary | None = None
    revenue_usd_per_day: Summary | None = None
    cost_profit_margin: Summary | None = None
    usd_per_m_output_tokens: Summary | None = None
    usd_per_m_input_tokens: Summary | None = None
    usd_per_m_input_tokens_miss: Summary | None = None
    gpus_needed: Summary | None = None
    joules_per_output_token: Summary | None = None
    joules_per_input_token: Summary | None = None
    energy_usd_per_m_output_tokens: Summary | None = None
    output_tokens_per_s_per_gpu: Summary | None = None
    prefill_tokens_per_s_per_gpu: Summary | None = None
    decode_bound_tokens_per_s_per_gpu: Summary | None = None
    prefill_bound_tokens_per_s_per_gpu: Summary | None = None
    decode_efficiency: Summary | None = None
    prefill_efficiency: Summary | None = None
    implied_decode_efficiency: Summary | None = None
    implied_prefill_efficiency: Summary | None = None
    usd_per_m_output_tokens_at_bound: Summary | None = None
    usd_per_m_input_tokens_at_bound: Summary | None = None

    @classmethod
    def of(cls, outputs: Mapping[str, Summary]) -> ServingCost:
        return cls(**_fields(cls, outputs))

    def implied_efficiency(self, phase: str) -> Summary | None:
        """The share of ``phase``'s bound a published throughput implies."""
        return self.implied_decode_efficiency if phase == "decode" else self.implied_prefill_efficiency


def _fields(cls: type, outputs: Mapping[str, Summary]) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict = {k: v for k, v in outputs.items() if k in names and k not in PER_STAGE}
    for prefix in PER_STAGE:
        if prefix in names:
            out[prefix] = {k.split(".", 1)[1]: v for k, v in outputs.items() if k.startswith(prefix + ".")}
    return out
