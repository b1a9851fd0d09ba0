"""Measured rates from run files: per-case efficiencies by regime, and whole-model projections.

The cost model uses a run in two ways:

- **training** takes the run's whole-model training projection: its layers' measured time, or
  (measured on another GPU, another model or a CPU) the *efficiency* that time reached against
  the run's basis (the dense bf16 peak of its GPU, or on a CPU the GEMM rate measured there),
  applied to the scenario's hardware and model. Every result says which (direct or transfer).
- **serving** takes, for each regime, the fraction of the device's own ceilings that the run's
  cases in that regime reached: a case is *compute*-bound when its arithmetic intensity is at or
  above the device's ridge point (GEMM ceiling / copy bandwidth), *memory*-bound below it,
  whatever its label says. The deployment's bound on the target hardware is then scaled by those.

Several runs of the same device may be given: their cases' spread enters the Monte Carlo
(:mod:`meter.cost.measured`). Runs of different devices are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from meter.cost.measured import CaseSpread, MeasuredQuantity
from meter.errors import MeterError
from meter.results.document import Ceilings, HardwareSummary, RunDocument
from meter.results.load import load_run
from meter.results.records import CaseResult, Projection

Regime = Literal["compute", "memory"]
REGIMES: tuple[Regime, ...] = ("compute", "memory")


@dataclass(frozen=True)
class LayerRate:
    """One layer kind of a projection: the case that measured it, how many the model has, its rate."""

    case_id: str
    count: int
    s_per_token: float
    flops_per_token: float


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
    basis_flops_per_s: float
    layers: tuple[LayerRate, ...] = ()
    basis_repeat_ratio: float | None = None  # the measured basis over its repeat measurement
    bytes_per_token: float | None = None
    bandwidth_efficiency: float | None = None
    joules_per_token: float | None = None
    avg_power_w: float | None = None
    form: str | None = None  # MLA decode form of the attention case, when there is one

    def same_shape(self, other: PhaseRate) -> bool:
        return (self.phase, self.model, self.batch, self.seq, self.context, self.form) == (
            other.phase,
            other.model,
            other.batch,
            other.seq,
            other.context,
            other.form,
        )


@dataclass(frozen=True)
class CaseRate:
    """One successful case: its regime on the device that ran it, its efficiency there, its timing."""

    case_id: str
    regime: Regime
    intensity_flop_per_byte: float | None
    ridge_flop_per_byte: float
    efficiency: float  # achieved over the ceiling of its regime, at the median time
    median_s: float
    p10_s: float
    p90_s: float
    avg_power_w: float | None = None
    efficiency_repeat: float | None = None  # against the same ceiling measured again (a CPU run's end)


@dataclass(frozen=True)
class CaseTiming:
    median_s: float
    p10_s: float
    p90_s: float


@dataclass(frozen=True)
class RunRates:
    """What one run file measured."""

    path: str
    phases: dict[str, list[PhaseRate]]
    cases: dict[str, CaseRate]  # the cases a ceiling of the device rates
    timings: dict[str, CaseTiming]  # every successful case
    ceilings: str  # what the case efficiencies are against


@dataclass(frozen=True)
class MeasuredRun:
    """One run file, or several of the same device (the first one's projections are picked)."""

    device_kind: str
    device_name: str
    hardware: str | None
    runs: tuple[RunRates, ...] = field(default_factory=tuple)

    @property
    def path(self) -> str:
        return " + ".join(r.path for r in self.runs)

    @property
    def phases(self) -> dict[str, list[PhaseRate]]:
        return self.runs[0].phases

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

    def decode_shapes(self) -> list[tuple[int, int]]:
        """(batch, context) of every decode projection of the first run, absorbed MLA form first."""
        return sorted({(r.batch, r.context) for r in self.phases.get("decode", []) if r.form != "naive"})

    def projection_efficiency(self, rate: PhaseRate) -> MeasuredQuantity:
        """The projection's efficiency against its basis, drawn from its layers' timing in every run."""
        spreads, weights = [], []
        for layer in rate.layers:
            per_run = []
            for run in self.runs:
                match = next((r for r in run.phases.get(rate.phase, []) if r.same_shape(rate)), None)
                same = next((x for x in match.layers if x.case_id == layer.case_id), None) if match else None
                t = run.timings.get(layer.case_id)
                if same is None or t is None:
                    continue
                efficiency = same.flops_per_token / (same.s_per_token * match.basis_flops_per_s)
                per_run.append((efficiency, t.median_s, t.p10_s, t.p90_s))
                if match.basis_repeat_ratio:  # the basis measured twice: both moments are draws
                    per_run.append((efficiency * match.basis_repeat_ratio, t.median_s, t.p10_s, t.p90_s))
            spreads.append(CaseSpread.from_timing(layer.case_id, per_run))
            weights.append(layer.count * layer.flops_per_token)
        return MeasuredQuantity(
            tuple(spreads), "harmonic", tuple(weights), what=f"the {rate.phase} projection's {len(spreads)} layers"
        )

    def regime_efficiency(self, regime: Regime) -> MeasuredQuantity | None:
        """The median over the run's cases in ``regime`` of the share of the ceiling each reached."""
        by_case: dict[str, list[tuple[float, float, float, float]]] = {}
        for run in self.runs:
            for c in run.cases.values():
                if c.regime == regime:
                    by_case.setdefault(c.case_id, []).append((c.efficiency, c.median_s, c.p10_s, c.p90_s))
                    if c.efficiency_repeat is not None:  # the ceiling measured twice: both moments are draws
                        by_case[c.case_id].append((c.efficiency_repeat, c.median_s, c.p10_s, c.p90_s))
        if not by_case:
            return None
        spreads = tuple(CaseSpread.from_timing(k, v) for k, v in sorted(by_case.items()))
        return MeasuredQuantity(spreads, "median", what=f"median of {len(spreads)} {regime}-bound cases")

    @property
    def avg_power_w(self) -> float | None:
        """Average power over every case with telemetry, weighted by time (the first run)."""
        cases = [c for c in self.runs[0].cases.values() if c.avg_power_w is not None]
        total = sum(c.median_s for c in cases)
        return sum(c.avg_power_w * c.median_s for c in cases) / total if total else None


def load_measured(paths: Path | str | Sequence[Path | str]) -> MeasuredRun:
    """One run file or several (of the same device)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return measured_from_docs([(load_run(p), str(p)) for p in paths])


def measured_from_doc(doc: RunDocument, path: str) -> MeasuredRun:
    """Rates from an already loaded (and validated) run document; ``path`` names it in messages."""
    return measured_from_docs([(doc, path)])


def measured_from_docs(docs: Sequence[tuple[RunDocument, str]]) -> MeasuredRun:
    first, first_path = docs[0]
    device = first.metadata.device
    hardware = first.metadata.hardware.name if first.metadata.hardware else None
    for doc, path in docs[1:]:
        other = doc.metadata.device
        theirs = doc.metadata.hardware.name if doc.metadata.hardware else None
        if (other.kind, other.name, theirs) != (device.kind, device.name, hardware):
            raise MeterError(
                f"{path}: measured on {other.label}, not {device.label} as {first_path}; several --from-run "
                "files must be runs of one device"
            )
    return MeasuredRun(device.kind, device.name, hardware, tuple(_run_rates(doc, path) for doc, path in docs))


def _run_rates(doc: RunDocument, path: str) -> RunRates:
    if doc.kind == "job":
        from meter.cost.from_job import job_rate

        rate = job_rate(doc, path)
        raise MeterError(
            f"{path}: a measured job is priced by the MFU it achieved ({rate.mfu:.4g}), end to end; "
            f"use meter calibrate or meter report with it, or --mfu {rate.mfu:.4g}"
        )
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
    ceilings = _Ceilings.of(meta.hardware, meta.ceilings)
    rates = {c.id: r for c in cases.values() if (r := _case_rate(c, ceilings)) is not None}
    timings = {c.id: CaseTiming(c.timing.median_s, c.timing.p10_s, c.timing.p90_s) for c in cases.values()}
    return RunRates(str(path), phases, rates, timings, ceilings.description if ceilings else "")


@dataclass(frozen=True)
class _Ceilings:
    """A device's own ceilings: measured on it (preferred) or its datasheet's."""

    gemm: Ceilings | None
    datasheet: HardwareSummary | None
    description: str

    @classmethod
    def of(cls, hardware: HardwareSummary | None, measured: Ceilings | None) -> _Ceilings | None:
        if measured is not None:
            doubt = f" (FLAGGED: {'; '.join(measured.flags)}: the efficiencies against them are in doubt)"
            return cls(
                measured,
                None,
                "the GEMM rate and copy bandwidth measured on the device" + (doubt if measured.flags else ""),
            )
        if hardware is not None and hardware.memory_bandwidth_bytes_per_s:
            return cls(None, hardware, f"the datasheet peaks of {hardware.name}")
        return None

    def compute(self, dtype: str, fp8: bool) -> float | None:
        if self.gemm is not None:
            return self.gemm.gemm("bf16" if fp8 else dtype)
        return self.datasheet.peak_flops("fp8" if fp8 else dtype)

    @property
    def memory(self) -> float:
        return self.gemm.copy_bytes_per_s if self.gemm is not None else self.datasheet.memory_bandwidth_bytes_per_s


def _case_rate(c: CaseResult, ceilings: _Ceilings | None) -> CaseRate | None:
    compute = ceilings.compute(c.case.dtype, bool(c.case.fp8)) if ceilings else None
    if not compute:
        return None
    m, t = c.metrics, c.timing
    ridge = compute / ceilings.memory
    intensity = m.flops_per_call / m.bytes_per_call if m.bytes_per_call else None
    regime: Regime = "compute" if intensity is None or intensity >= ridge else "memory"
    rate = (
        m.flops_per_call / t.median_s / compute
        if regime == "compute"
        else m.bytes_per_call / t.median_s / ceilings.memory
    )
    if rate <= 0:
        return None
    power = c.telemetry.avg_power_w if c.telemetry is not None else None
    ratio = None
    if ceilings.gemm is not None:
        ratio = ceilings.gemm.repeat_ratio(("bf16" if c.case.fp8 else c.case.dtype) if regime == "compute" else "copy")
    return CaseRate(
        c.id, regime, intensity, ridge, rate, t.median_s, t.p10_s, t.p90_s, power, rate * ratio if ratio else None
    )


def _phase_rate(
    p: Projection, cases: dict[str, CaseResult], hardware: HardwareSummary | None, ceilings: Ceilings | None
) -> PhaseRate | None:
    achieved = p.flops_per_token / p.time_per_token_s
    repeat_ratio = None
    if hardware and hardware.peak_flops("bf16"):
        basis_value = hardware.peak_flops("bf16")
        basis = f"dense bf16 datasheet peak of {hardware.name}"
    elif ceilings and ceilings.gemm(p.dtype):
        basis_value = ceilings.gemm(p.dtype)
        basis = f"{p.dtype} GEMM rate measured on this device (no datasheet)"
        repeat_ratio = ceilings.repeat_ratio(p.dtype)
    else:
        return None
    bytes_per_token = joules = 0.0
    power_time = weighted_power = 0.0
    have_joules = True
    layers = []
    for layer in p.layers.values():
        case = cases.get(layer.case_id)
        if case is None:
            return None
        layers.append(LayerRate(layer.case_id, layer.count, layer.time_per_token_s, layer.flops_per_token))
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
        basis_flops_per_s=basis_value,
        basis_repeat_ratio=repeat_ratio,
        layers=tuple(layers),
        bytes_per_token=bytes_per_token,
        bandwidth_efficiency=bandwidth,
        joules_per_token=joules if have_joules else None,
        avg_power_w=weighted_power / power_time if power_time else None,
    )
