"""What each acceptance check is held to, and why. A lead, not a law: each says where it comes from."""

from __future__ import annotations

from dataclasses import dataclass

from meter.results.acceptance import Check, Verdict


@dataclass(frozen=True)
class Target:
    words: str
    why: str
    minimum: float | None = None
    maximum: float | None = None
    gpu_only: bool = True  # on a CPU dry run the figure is shown, the verdict is n/a

    def verdict(self, value: float | None, *, cpu: bool) -> Verdict:
        if value is None or (cpu and self.gpu_only):
            return "n/a"
        if self.minimum is not None and value < self.minimum:
            return "fail"
        if self.maximum is not None and value > self.maximum:
            return "fail"
        return "pass"


TARGETS: dict[str, Target] = {
    "copy": Target(
        ">= 0.80 of the datasheet memory bandwidth",
        "an H200 here copied 4.3 of its 4.8 TB/s (0.90); far less means slower memory or another part",
        minimum=0.80,
    ),
    "bf16": Target(
        ">= 0.70 of the datasheet dense bf16 peak",
        "an H200 here reached 769-798 of 989 TFLOP/s (0.78-0.81); under 0.70 is a power cap, throttling "
        "or a PCIe part (756 TFLOP/s peak) sold as SXM",
        minimum=0.70,
    ),
    "fp8": Target(
        ">= 0.50 of the datasheet dense fp8 peak",
        "a lead, not yet measured here: cuBLAS's rowwise fp8 GEMM should reach at least half the fp8 peak",
        minimum=0.50,
    ),
    "power_limit": Target(
        ">= 0.95 of the datasheet TDP",
        "an enforced limit below the board's TDP is a power-capped GPU",
        minimum=0.95,
    ),
    "slowdown": Target(
        "none (a power cap under full load is normal; thermal and hardware slowdowns are not)",
        "NVML's clock-event reasons during the steady load",
        maximum=0.0,
    ),
    "energy": Target(
        "<= 0.05 apart",
        "the energy counter and the integral of the sampled power over the same >= 10 s window must agree",
        maximum=0.05,
        gpu_only=False,
    ),
    "smi_power": Target(
        "<= 0.05 apart (median)",
        "the sampler and nvidia-smi read the same driver; nvidia-smi's power may average over a second",
        maximum=0.05,
        gpu_only=False,
    ),
    "smi_clock": Target(
        "<= 0.02 apart (median)", "the SM clock as the sampler and nvidia-smi read it", maximum=0.02, gpu_only=False
    ),
    "overhead": Target(
        "<= 0.02 of throughput",
        "sampling at 100 Hz must not slow the benchmark it measures",
        maximum=0.02,
    ),
    "moe_gemm": Target(
        ">= 0.70 of the measured dense bf16 GEMM rate",
        "docs/benchmarks.md: the grouped GEMM at >= 512 rows per expert is a dense GEMM in all but its grouping",
        minimum=0.70,
    ),
    "fp8_gemm": Target(
        ">= 0.60 of the measured fp8 GEMM ceiling",
        "DeepGEMM's grouped fp8 GEMMs reach 1100-1300 TFLOP/s on an H800 (shared/reference/kernels.md)",
        minimum=0.60,
    ),
    "mla_decode": Target(
        ">= 0.80 of the measured copy bandwidth",
        "docs/benchmarks.md; FlashMLA reaches about 0.90 on an H800 reading the latent cache once",
        minimum=0.80,
    ),
    "mla_train": Target(">= 0.50 of the dense bf16 peak", "docs/benchmarks.md", minimum=0.50),
    "layer_mfu": Target(
        ">= 0.39 MFU",
        "DeepSeek-V3 trained at 38.94% MFU end to end on H800s (ISCA'25 Table 4); one layer without communication should reach it",
        minimum=0.39,
    ),
}


def check(
    section: str, name: str, key: str, value: float | None, unit: str, *, cpu: bool, detail: str | None = None
) -> Check:
    t = TARGETS[key]
    return Check(
        section=section,
        name=name,
        verdict=t.verdict(value, cpu=cpu),
        value=value,
        unit=unit,
        target=t.words,
        detail=detail if detail is not None else t.why,
    )


def info(
    section: str, name: str, value: float | None = None, unit: str | None = None, detail: str | None = None
) -> Check:
    return Check(section=section, name=name, verdict="info", value=value, unit=unit, detail=detail)
