"""What a measured job is priced and rated against: a rental price, electricity and PUE, a model.

The price is ``--price`` when given, else the price table's for the GPUs' hardware config (the
central value when the table lists several providers); electricity and PUE are the price
table's defaults unless given. A model turns tokens into FLOPs through the analytic model, at
the phase and sequence length the job ran, and MFU is against the GPUs' dense bf16 peak.
"""

from __future__ import annotations

from meter.config.hardware import HardwareSpec
from meter.config.models import load_model
from meter.config.paths import ConfigLocator
from meter.config.pricing import load_prices
from meter.errors import UsageError
from meter.measure.figures import Prices, WorkModel
from meter.results.cases import PHASES


def resolve_prices(
    *,
    price: float | None,
    hardware: HardwareSpec | None,
    tier: str | None,
    usd_per_kwh: float | None,
    pue: float | None,
    locator: ConfigLocator,
) -> Prices:
    """The job's prices, each with its source; a price the table lacks stays None (no dollars)."""
    table = load_prices(locator=locator)
    usd, source = price, "given" if price is not None else None
    if price is None and hardware is not None and hardware.kind == "gpu":
        from meter.cost.configs import price_input

        found = price_input(hardware.name, tier, locator)
        if found is not None:
            q = found.quantity
            usd = q.central
            spread = "" if q.is_point else f"central of {q.describe()} USD/GPU-hour; "
            source = f"{spread}{found.source}"
    electricity = table.default_electricity()
    default_pue = table.default_pue()
    energy_parts = [
        "given $/kWh" if usd_per_kwh is not None else f"{electricity.name}: {electricity.source} ({electricity.date})",
        "given PUE" if pue is not None else f"PUE {default_pue.name}: {default_pue.source} ({default_pue.date})",
    ]
    return Prices(
        usd_per_gpu_hour=usd,
        price_source=source,
        usd_per_kwh=usd_per_kwh if usd_per_kwh is not None else electricity.usd_per_kwh,
        pue=pue if pue is not None else default_pue.pue,
        energy_source="; ".join(energy_parts),
    )


def work_model(
    model_name: str, *, phase: str, seq: int, hardware: HardwareSpec | None, locator: ConfigLocator
) -> WorkModel:
    """FLOPs per token of ``model_name`` at ``phase`` and ``seq``, and the peak MFU is against."""
    from meter.analytic import flops as F

    if phase not in PHASES:
        raise UsageError(f"--phase must be one of {', '.join(PHASES)}, not {phase!r}")
    model = load_model(model_name, locator)
    a = model.args
    per_token = {
        "train": lambda: F.train_flops_per_token(a, seq),
        "prefill": lambda: F.prefill_flops_per_token(a, seq),
        "decode": lambda: F.decode_flops_per_token(a, seq),
    }[phase]()
    return given_work_model(model.name, per_token.total, phase=phase, seq=seq, hardware=hardware)


def given_work_model(
    label: str, flops_per_token: float, *, phase: str, seq: int, hardware: HardwareSpec | None
) -> WorkModel:
    """A model known by its FLOPs per token alone (your own: e.g. 6 x parameters for training)."""
    if isinstance(flops_per_token, bool) or not isinstance(flops_per_token, (int, float)) or not flops_per_token > 0:
        raise UsageError(f"flops_per_token must be a positive number, not {flops_per_token!r}")
    if phase not in PHASES:
        raise UsageError(f"phase must be one of {', '.join(PHASES)}, not {phase!r}")
    peak = hardware.peak_flops("bf16") if hardware is not None and hardware.kind == "gpu" else None
    if peak:
        basis = f"dense bf16 datasheet peak of {hardware.name} ({peak / 1e12:g} TFLOP/s)"
    elif hardware is None:
        basis = "no MFU: no GPU hardware config (no GPU seen, or none matched; give --hardware NAME)"
    else:
        basis = f"no MFU: {hardware.name} has no dense bf16 GPU peak"
    return WorkModel(
        model=label, phase=phase, seq=seq, flops_per_token=float(flops_per_token), peak_flops_per_gpu=peak, basis=basis
    )
