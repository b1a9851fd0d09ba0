"""Hardware configs: ``configs/hardware/NAME.yaml`` loaded into :class:`HardwareSpec`.

Every number in a hardware file must be covered by an entry of its ``sources`` list (which names
the fields it supports, with a date). A GPU is matched to its file by the exact name its driver
reports (``device_names``), compared case-insensitively with spaces folded: an "NVIDIA H800" must
never be given H100 figures because a prefix happened to match. ``device_names`` is optional: a
config without it is used by name only (``--hardware mi300x``). Files written before the key was
vendor-neutral call it ``nvml_names``; that key is still read, as an alias.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from meter.config.paths import ConfigLocator
from meter.config.schema import INTERNAL, build_dataclass, check_name_matches_file, gt, read_yaml
from meter.errors import ConfigError

PeakDtype = Literal["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "fp4"]
PEAK_DTYPES: tuple[str, ...] = PeakDtype.__args__  # type: ignore[attr-defined]


ComputeCapability = Literal["7.0", "7.5", "8.0", "8.6", "8.7", "8.9", "9.0", "10.0", "10.3", "12.0"]


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a set of figures comes from."""

    fields: list[str]
    source: str
    date: dt.date
    url: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class HardwareSpec:
    """Datasheet figures of one accelerator (or the generic CPU, whose peaks are measured)."""

    name: str
    display_name: str
    kind: Literal["gpu", "cpu"]
    device_names: list[str] = field(default_factory=list)  # as the driver reports them; YAML alias nvml_names
    # Dense (not 2:4 sparse) tensor peak, TFLOP/s, per dtype. An absent dtype is unsupported or unknown.
    # fp4 is the 4-bit float of the part's tensor cores (NVFP4/MXFP4 on Blackwell, MXFP4 on CDNA 4).
    peak_tflops: Mapping[PeakDtype, float] = field(default_factory=dict, metadata=gt(0))
    memory_gb: float | None = field(default=None, metadata=gt(0))
    memory_bandwidth_gb_s: float | None = field(default=None, metadata=gt(0))
    # The scale-up link, bidirectional per GPU, as the vendor quotes it: NVLink on NVIDIA parts; on AMD
    # Instinct parts the Infinity Fabric (xGMI) links to the other GPUs of the board, added up.
    nvlink_bandwidth_gb_s: float | None = field(default=None, metadata=gt(0))
    # GPUs that reach each other over that link: 8 on an HGX board or an 8-GPU OAM platform, 72 in an
    # NVL72 rack. Beyond it traffic goes over the scale-out network.
    scale_up_domain_gpus: int | None = field(default=None, metadata=gt(0))
    # Scale-out network per GPU, one direction, in the vendor's reference server.
    network_bandwidth_gb_s: float | None = field(default=None, metadata=gt(0))
    tdp_w: float | None = field(default=None, metadata=gt(0))
    # CUDA compute capability ("9.0" for Hopper): which kernels exist (fp8, grouped GEMMs) when
    # planning for a GPU that is not at hand.
    compute_capability: ComputeCapability | None = None
    sources: list[Source] = field(default_factory=list)
    notes: str | None = None
    path: Path | None = field(default=None, metadata=INTERNAL, compare=False)

    def peak_flops(self, dtype: str) -> float | None:
        """Dense peak in FLOP/s for a dtype, or None where the datasheet gives none."""
        tflops = self.peak_tflops.get(dtype)
        return None if tflops is None else tflops * 1e12

    @property
    def memory_bandwidth_bytes_per_s(self) -> float | None:
        return None if self.memory_bandwidth_gb_s is None else self.memory_bandwidth_gb_s * 1e9

    @property
    def memory_bytes(self) -> int | None:
        """The datasheet's memory in bytes (vendors' "80 GB" HBM parts hold 80 GiB)."""
        return None if self.memory_gb is None else int(self.memory_gb * 2**30)

    @property
    def capability(self) -> tuple[int, int] | None:
        if self.compute_capability is None:
            return None
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)

    def source_for(self, field_name: str) -> Source | None:
        """The source entry covering a field (``peak_tflops.bf16`` falls back to ``peak_tflops``)."""
        base = field_name.split(".")[0]
        for src in self.sources:
            if field_name in src.fields or base in src.fields:
                return src
        return None

    def matches(self, device_name: str) -> bool:
        return normalize_device_name(device_name) in {normalize_device_name(n) for n in self.device_names}


_NUMERIC_FIELDS = (
    "memory_gb",
    "memory_bandwidth_gb_s",
    "nvlink_bandwidth_gb_s",
    "scale_up_domain_gpus",
    "network_bandwidth_gb_s",
    "tdp_w",
)
# A narrower dtype's peak is never below a wider one's on any part (fp4 >= fp8 >= bf16 >= tf32).
_PEAK_ORDER = ("tf32", "bf16", "fp8", "fp4")
_SOURCED_FIELDS = (*_NUMERIC_FIELDS, "compute_capability")


def normalize_device_name(name: str) -> str:
    return " ".join(name.split()).casefold()


def load_hardware(name_or_path: str, locator: ConfigLocator | None = None) -> HardwareSpec:
    locator = locator or ConfigLocator.from_env()
    path = locator.find("hardware", name_or_path)
    return parse_hardware(read_yaml(path), path)


# Keys older files use, and the key each now is.
KEY_ALIASES = {"nvml_names": "device_names"}


def parse_hardware(data: object, path: Path | None) -> HardwareSpec:
    spec = build_dataclass(HardwareSpec, _resolve_aliases(data, path), path=path)
    spec = dataclasses.replace(spec, path=path)
    check_name_matches_file(spec.name, path)
    _check_sources(spec, path)
    if spec.kind == "gpu" and "bf16" not in spec.peak_tflops:
        raise ConfigError(path, "peak_tflops.bf16", "a GPU needs its dense bf16 peak (the MFU denominator)")
    present = [d for d in _PEAK_ORDER if d in spec.peak_tflops]
    for wide, narrow in zip(present, present[1:], strict=False):
        if spec.peak_tflops[narrow] < spec.peak_tflops[wide]:
            raise ConfigError(
                path,
                f"peak_tflops.{narrow}",
                f"below peak_tflops.{wide} ({spec.peak_tflops[wide]:g}); a dense {narrow} peak is never lower",
                spec.peak_tflops[narrow],
            )
    if spec.kind == "cpu" and spec.peak_tflops:
        raise ConfigError(path, "peak_tflops", "a cpu config takes no datasheet peaks; they are measured at run time")
    return spec


def _resolve_aliases(data: object, path: Path | None) -> object:
    if not isinstance(data, Mapping):
        return data  # build_dataclass says what is wrong with it
    out = dict(data)
    for old, new in KEY_ALIASES.items():
        if old in out:
            if new in out:
                raise ConfigError(path, old, f"is the old name of {new}; give one of them, not both")
            out[new] = out.pop(old)
    return out


def _check_sources(spec: HardwareSpec, path: Path | None) -> None:
    known = set(_SOURCED_FIELDS) | {"peak_tflops"} | {f"peak_tflops.{d}" for d in PEAK_DTYPES}
    for i, src in enumerate(spec.sources):
        for name in src.fields:
            if name not in known:
                raise ConfigError(path, f"sources[{i}].fields", "names no numeric field of this file", name)
    present = [f for f in _SOURCED_FIELDS if getattr(spec, f) is not None]
    present += [f"peak_tflops.{d}" for d in spec.peak_tflops]
    for name in present:
        if spec.source_for(name) is None:
            raise ConfigError(path, name, "has no entry in 'sources' (every figure needs a source and date)")


def list_hardware(locator: ConfigLocator | None = None) -> list[HardwareSpec]:
    """All hardware configs, refusing two files that claim the same device name."""
    locator = locator or ConfigLocator.from_env()
    specs = [parse_hardware(read_yaml(p), p) for p in locator.names("hardware").values()]
    owner: dict[str, HardwareSpec] = {}
    for spec in specs:
        for device_name in spec.device_names:
            key = normalize_device_name(device_name)
            if key in owner:
                raise ConfigError(
                    spec.path,
                    "device_names",
                    f"also claimed by {owner[key].path}; a GPU must match exactly one config",
                    device_name,
                )
            owner[key] = spec
    return specs


def match_device_name(device_name: str, specs: list[HardwareSpec]) -> HardwareSpec | None:
    """The hardware config whose ``device_names`` list this exact device name, or None."""
    matches = [s for s in specs if s.matches(device_name)]
    return matches[0] if len(matches) == 1 else None
