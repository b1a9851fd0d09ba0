"""Which kernel ``scaled_dot_product_attention`` runs on a device, and how a memory plan models it.

On a device that is here, torch's own selector (``torch._fused_sdp_choice``) answers for small
tensors of the case's head widths, dtype and masking: the choice depends on those, not on the
sequence length. For a GPU that is not here (a plan before renting) the rule is PyTorch's CUDA
one: flash attention when the query, key and value widths are equal and at most 256 in fp16 or
bf16, memory-efficient attention otherwise.

On the meta device SDPA always decomposes into the math path, which materialises the
``B x H x S x S`` score matrix: 64 GiB for V3's MLA at sequence 16384, where the fused kernels
keep ``O(S)`` (the output and a log-sum-exp per row). :class:`FusedSdpaOnMeta` makes a plan see
what the target runs: every SDPA call whose target kernel is fused becomes torch's
memory-efficient attention op, whose meta kernel allocates what the fused kernels keep.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from meter.device.select import ComputeDevice

NAMES = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn", 4: "overrideable"}
FUSED = {"flash", "efficient", "cudnn"}


def sdpa_backend(
    target: ComputeDevice, dtype: torch.dtype, qk_dim: int, v_dim: int, *, causal: bool, grad: bool
) -> str:
    """The SDPA kernel ``target`` runs for attention of these head widths (flash, efficient, cudnn, math)."""
    if not target.present:
        if target.kind == "cuda":
            flash = qk_dim == v_dim and qk_dim <= 256 and dtype in (torch.float16, torch.bfloat16)
            return "flash" if flash else "efficient"
        return _choice("cpu", dtype, qk_dim, v_dim, causal, grad)
    return _choice(target.torch_device, dtype, qk_dim, v_dim, causal, grad)


@functools.cache
def _choice(device: str, dtype: torch.dtype, qk_dim: int, v_dim: int, causal: bool, grad: bool) -> str:
    heads, seq = 2, 16
    q = torch.randn(1, heads, seq, qk_dim, device=device, dtype=dtype, requires_grad=grad)
    k = torch.randn(1, heads, seq, qk_dim, device=device, dtype=dtype, requires_grad=grad)
    v = torch.randn(1, heads, seq, v_dim, device=device, dtype=dtype, requires_grad=grad)
    try:
        return NAMES.get(int(torch._fused_sdp_choice(q, k, v, is_causal=causal)), "unknown")
    except (RuntimeError, AttributeError):  # a torch without the selector, or one that refuses these inputs
        return "unknown"


class FusedSdpaOnMeta(TorchFunctionMode):
    """Within this mode, SDPA on meta tensors allocates what ``target``'s kernel keeps (see module doc)."""

    def __init__(self, target: ComputeDevice):
        super().__init__()
        self.target = target

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        q, k, v = args[:3]
        if q.device.type != "meta":
            return func(*args, **kwargs)
        causal = bool(kwargs.get("is_causal", False))
        grad = q.requires_grad or k.requires_grad
        if sdpa_backend(self.target, q.dtype, q.shape[-1], v.shape[-1], causal=causal, grad=grad) not in FUSED:
            return func(*args, **kwargs)  # the math path is what runs there: let it materialise on meta too
        return _efficient(q, k, v, kwargs.get("attn_mask"), causal, kwargs.get("scale"))


def _efficient(q, k, v, mask, causal: bool, scale) -> torch.Tensor:
    if k.shape[-3] != q.shape[-3]:  # grouped-query attention: the plan expands K and V (an upper bound)
        repeat = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(repeat, dim=-3), v.repeat_interleave(repeat, dim=-3)
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, float("-inf"))
    grad = q.requires_grad or k.requires_grad or v.requires_grad
    out = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, mask, grad, is_causal=causal, scale=scale)
    return out[0]
