"""Block sizes and the number of context splits of the fused MLA decode kernel.

A pure function of the batch, the query rows (heads x new tokens), the context and the latent
width; no Triton, no torch. The rule (see docs/benchmarks.md, "The fused decode kernel"):

- ``block_h`` query rows per program: the rows rounded up to a power of two, between 16 (the
  smallest tensor-core tile ``tl.dot`` takes) and 64. All rows of a head block share each cache
  tile the program loads; V3 without tensor parallelism (128 heads) has two head blocks per
  sequence, launched next to each other so the second one finds the tile in L2.
- ``block_n`` cache positions per loop step: 32 for a 512-wide latent (a [32, 576] bf16 tile is
  36 KiB, so two pipeline stages and the query fit in shared memory), 64 for narrower latents.
- ``num_splits``: 1 when ``batch * head_blocks`` programs already fill every streaming
  multiprocessor (each split adds fp32 partials, ``B * S * H * C * 8`` bytes written and read:
  5.6% of V3's cache traffic per split at batch 128 and 8K context). Otherwise enough splits for about two
  waves, ``ceil(2 * SMs / (batch * head_blocks))``, but no split shorter than
  ``MIN_SPLIT_POSITIONS`` cache positions and no more than ``MAX_SPLITS``. V3 (128 heads) on 132
  SMs: 1 split at batch 128; 3 at batch 64; 64 splits of 256 positions at batch 1 over 16K.

Each of the three can be overridden (``meter bench --fused-plan h64n32s4``, or a ``DecodePlan``).
These defaults were chosen from the arithmetic above, not tuned on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

DEFAULT_SMS = 132  # H100 / H200 SXM; the real count is read from the device when there is one
MIN_SPLIT_POSITIONS = 256
MAX_SPLITS = 64


@dataclass(frozen=True)
class DecodePlan:
    """Launch shape of the fused decode: tile sizes, context splits and the compiler's knobs."""

    block_h: int
    block_n: int
    num_splits: int
    num_warps: int = 4
    num_stages: int = 2

    def __post_init__(self) -> None:
        for name in ("block_h", "block_n"):
            value = getattr(self, name)
            if value < 16 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two of at least 16, not {value}")
        if self.num_splits < 1:
            raise ValueError(f"num_splits must be at least 1, not {self.num_splits}")

    def head_blocks(self, rows: int) -> int:
        return -(-rows // self.block_h)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def plan_decode(
    *,
    batch: int,
    rows: int,
    max_context: int,
    latent_dim: int,
    num_sms: int = DEFAULT_SMS,
    block_h: int | None = None,
    block_n: int | None = None,
    num_splits: int | None = None,
) -> DecodePlan:
    """The launch plan for ``batch`` sequences of ``rows`` query rows over up to ``max_context`` positions."""
    if min(batch, rows, max_context, latent_dim, num_sms) < 1:
        raise ValueError("batch, rows, max_context, latent_dim and num_sms must be at least 1")
    bh = block_h or min(64, max(16, _pow2_at_least(rows)))
    bn = block_n or (32 if latent_dim >= 512 else 64)
    programs = batch * -(-rows // bh)
    if num_splits:
        splits = num_splits
    elif programs >= num_sms:
        splits = 1
    else:
        splits = max(1, min(-(-2 * num_sms // programs), -(-max_context // MIN_SPLIT_POSITIONS), MAX_SPLITS))
    plan = DecodePlan(block_h=bh, block_n=bn, num_splits=splits)
    return replace(plan, num_warps=8 if bh * bn >= 64 * 32 else 4)
