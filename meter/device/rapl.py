"""CPU package energy from Linux powercap (Intel RAPL, also exposed for AMD), where readable.

``/sys/class/powercap/intel-rapl:N/energy_uj`` counts microjoules and wraps at
``max_energy_range_uj``; since 2020 kernels make it readable by root only. Where no domain can be
read, CPU energy is reported as unavailable, never estimated from a TDP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/sys/class/powercap")


@dataclass
class _Domain:
    name: str
    energy_path: Path
    max_range_uj: int
    last_raw_uj: int
    total_uj: int = 0


class RaplCounter:
    """Accumulated energy of every top-level RAPL package domain, with wraparound handled."""

    def __init__(self, domains: list[_Domain]):
        self.domains = domains
        self.last_t: float | None = None
        self.last_total_j: float | None = None

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.domains]

    def read_energy_j(self) -> float:
        for d in self.domains:
            raw = int(d.energy_path.read_text().strip())
            delta = raw - d.last_raw_uj
            if delta < 0:  # wrapped around
                delta += d.max_range_uj
            d.total_uj += delta
            d.last_raw_uj = raw
        return sum(d.total_uj for d in self.domains) / 1e6

    def read_power_w(self) -> tuple[float, float | None]:
        """(energy J, average power W since the previous call, or None on the first)."""
        t = time.monotonic()
        energy = self.read_energy_j()
        power = None
        if self.last_t is not None and t > self.last_t:
            power = (energy - self.last_total_j) / (t - self.last_t)
        self.last_t, self.last_total_j = t, energy
        return energy, power


def open_rapl(root: Path = DEFAULT_ROOT) -> tuple[RaplCounter | None, str | None]:
    """(counter, None), or (None, why CPU energy is unavailable)."""
    if not root.is_dir():
        return None, f"{root} does not exist (no powercap driver, or a VM without RAPL)"
    domains = []
    refused = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:
            continue  # sub-domains (core, dram) are inside their package: count packages only
        try:
            name = (zone / "name").read_text().strip()
            raw = int((zone / "energy_uj").read_text().strip())
            max_range = int((zone / "max_energy_range_uj").read_text().strip())
        except PermissionError:
            refused.append(zone.name)
            continue
        except (OSError, ValueError):
            continue
        domains.append(_Domain(name, zone / "energy_uj", max_range, raw))
    if domains:
        return RaplCounter(domains), None
    if refused:
        return None, f"RAPL energy counters are not readable by this user ({', '.join(refused)}); run as root"
    return None, f"no RAPL package domain under {root}"
