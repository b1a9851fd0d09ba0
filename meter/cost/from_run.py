"""Measured rates from a run file: per-token time, efficiency, bytes and energy per phase.

The cost model uses a run in one of two ways:

- **direct**: the run measured the scenario's model on the scenario's GPU, so its per-token
  times are used as they are;
- **transfer**: otherwise (another GPU, another model, or a CPU) only the run's *efficiency* is
  carried over: the fraction of the dense bf16 peak it reached (or, on a CPU without a datasheet,
  of the GEMM rate measured on that CPU), and for decode also the fraction of memory bandwidth;
  the scenario's own FLOPs, bytes and peaks do the rest. Every result says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from meter.errors import MeterError
from meter.results.document import Ceilings, HardwareSummary, RunDocument
from meter.results.load import load_run
from meter.results.records import CaseResult, Projection


@dataclass(frozen=True)
class PhaseRate:
    phase: str
    model: str
    dtype: str
    batch: int
    seq: int
    context: int
    time_per_token_s: float  # the measured layers, GPU-seconds per token
    flops_per_token: float  # analytic FLOPs of those layers per token
    efficiency: float  # achieved FLOP/s over the basis below
    efficiency_basis: str
    bytes_per_token: float | None = None
    bandwidth_efficiency: float | None = None
    joules_per_token: float | None = None
    avg_power_w: float | None = None
    form: str | None = None  # MLA decode form of the attention case, when there is one


@dataclass(frozen=True)
class MeasuredRun:
    path: str
    device_kind: str
    device_name: str
    hardware: str | None
    phases: dict[str, list[PhaseRate]] = field(default_factory=dict)

    @property
    def cpu(self) -> bool:
        return self.device_kind == "cpu"

    @property
    def label(self) -> str:
        return f"CPU ({self.device_name})" if self.cpu else self.device_name

    def pick(
        self, phase: str, *, seq: int | None = None, batch: int | None = None, context: int | None = None
    ) -> PhaseRate | None:
        """The phase's measurement closest to the wanted shape (exact matches first, then the largest)."""
        rates = self.phases.get(phase, [])
        if not rates:
            return None

        def score(r: PhaseRate):
            # Serving uses the absorbed MLA form, so prefer it; then the wanted shape; then the largest.
            return (
                r.form == "naive",
                seq is not None and r.seq != seq,
                batch is not None and r.batch != batch,
                context is not None and r.context != context,
                -(r.batch * max(r.seq, 1)),
            )

        return min(rates, key=score)


def load_measured(path: Path | str) -> MeasuredRun:
    return measured_from_doc(load_run(path), str(path))


def measured_from_doc(doc: RunDocument, path: str) -> MeasuredRun:
    """Rates from an already loaded (and validated) run document; ``path`` names it in messages."""
    meta = doc.metadata
    if not doc.ok_cases():
        raise MeterError(f"{path}: the run has no successful case to measure a rate from")
    cases = {c.id: c for c in doc.ok_cases()}
    phases: dict[str, list[PhaseRate]] = {}
    for p in doc.projections:
        rate = _phase_rate(p, cases, meta.hardware, meta.ceilings)
        if rate is not None:
            phases.setdefault(p.phase, []).append(rate)
    if not phases:
        raise MeterError(
            f"{path}: the run has no whole-model projection (it needs attention, MoE and FFN "
            f"results at one shape; run 'meter run' or a suite that measures all three)"
        )
    return MeasuredRun(
        path=str(path),
        device_kind=meta.device.kind,
        device_name=meta.device.name,
        hardware=meta.hardware.name if meta.hardware else None,
        phases=phases,
    )


def _phase_rate(
    p: Projection, cases: dict[str, CaseResult], hardware: HardwareSummary | None, ceilings: Ceilings | None
) -> PhaseRate | None:
    achieved = p.flops_per_token / p.time_per_token_s
    if hardware and hardware.peak_flops("bf16"):
        basis_value = hardware.peak_flops("bf16")
        basis = f"dense bf16 datasheet peak of {hardware.name}"
    elif ceilings and ceilings.gemm(p.dtype):
        basis_value = ceilings.gemm(p.dtype)
        basis = f"{p.dtype} GEMM rate measured on this device (no datasheet)"
    else:
        return None
    bytes_per_token = joules = 0.0
    power_time = weighted_power = 0.0
    have_joules = True
    for layer in p.layers.values():
        case = cases.get(layer.case_id)
        if case is None:
            return None
        m = case.metrics
        bytes_per_token += layer.count * m.bytes_per_call / m.tokens_per_call
        tele = case.telemetry
        if tele is None or tele.joules_per_token is None:
            have_joules = False
        else:
            joules += layer.count * tele.joules_per_token
        if tele is not None and tele.avg_power_w is not None:
            weight = layer.count * layer.time_per_token_s
            weighted_power += tele.avg_power_w * weight
            power_time += weight
    achieved_bw = bytes_per_token / p.time_per_token_s
    if hardware and hardware.memory_bandwidth_bytes_per_s:
        bandwidth = achieved_bw / hardware.memory_bandwidth_bytes_per_s
    elif ceilings:
        bandwidth = achieved_bw / ceilings.copy_bytes_per_s
    else:
        bandwidth = None
    attention = cases.get(p.layers["mla"].case_id) if "mla" in p.layers else None
    form = attention.case.form if p.phase == "decode" and attention is not None else None
    return PhaseRate(
        phase=p.phase,
        model=p.model,
        dtype=p.dtype,
        batch=p.batch,
        seq=p.seq,
        form=form,
        context=p.context,
        time_per_token_s=p.time_per_token_s,
        flops_per_token=p.flops_per_token,
        efficiency=achieved / basis_value,
        efficiency_basis=basis,
        bytes_per_token=bytes_per_token,
        bandwidth_efficiency=bandwidth,
        joules_per_token=joules if have_joules else None,
        avg_power_w=weighted_power / power_time if power_time else None,
    )
