"""The precision a model's weights are stored in, per component, and what that costs in bytes.

Checkpoints mix formats: DeepSeek-V3 keeps its embedding, output head and router in bf16 and every
other matrix in fp8 with one float32 scale per 128 x 128 block; gpt-oss stores only its experts in
MXFP4; NVIDIA's NVFP4 checkpoints quantize the experts (and often more) to 4 bits with an fp8 scale
per 16 values. This module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

WeightFormat = Literal["fp32", "bf16", "fp16", "fp8", "mxfp4", "nvfp4"]

FP32_SCALE_BYTES = 4
# OCP Microscaling Formats (MX) v1.0: MXFP4 is 32 fp4 (e2m1) values sharing one 8-bit E8M0 scale.
MXFP4_BLOCK = 32
# NVIDIA NVFP4: 16 fp4 (e2m1) values share one fp8 (e4m3) scale, plus one fp32 scale per tensor.
NVFP4_BLOCK = 16


@dataclass(frozen=True, kw_only=True)
class WeightPrecision:
    """Storage format of each component's weights (vectors such as norms stay in the model dtype)."""

    attention: WeightFormat = "bf16"
    dense_ffn: WeightFormat = "bf16"
    shared_experts: WeightFormat = "bf16"
    routed_experts: WeightFormat = "bf16"
    router: WeightFormat = "bf16"
    embedding: WeightFormat = "bf16"
    output_head: WeightFormat = "bf16"
    # fp8 weights carry one float32 scale per block of this shape (DeepSeek: 128 x 128); None: one
    # scale per tensor, which costs nothing per weight.
    fp8_block: tuple[int, int] | None = None

    def bytes_per_weight(self, fmt: WeightFormat) -> float:
        """Bytes one weight takes in ``fmt``, its share of the block scales included."""
        if fmt == "fp32":
            return 4.0
        if fmt in ("bf16", "fp16"):
            return 2.0
        if fmt == "fp8":
            if self.fp8_block is None:
                return 1.0
            return 1.0 + FP32_SCALE_BYTES / (self.fp8_block[0] * self.fp8_block[1])
        if fmt == "mxfp4":
            return 0.5 + 1.0 / MXFP4_BLOCK
        if fmt == "nvfp4":
            return 0.5 + 1.0 / NVFP4_BLOCK
        raise ValueError(f"unknown weight format {fmt!r}")

    def formats(self) -> dict[str, str]:
        """Component -> format, for reports."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "fp8_block"}
