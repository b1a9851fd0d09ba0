"""The bytes the analytic model credits each MLA decode form with, against what the eager forms run.

The eager absorbed decode is run at DeepSeek-V3 shapes on torch's meta device (no memory, no
time) under a dispatch mode that adds up the bytes every ATen operation reads and writes: the
analytic model of that kernel sequence must agree with it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from kernels.mla import MLA, LatentKVCache
from meter.analytic.memory import attention_layer_bytes, kv_cache_elements_per_token_per_layer, mla_decode_traffic
from meter.analytic.params import attention_params
from meter.config.models import load_model


def physical_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor spans, counting a broadcast (stride 0) dimension once."""
    broadcast = math.prod(n for n, s in zip(t.shape, t.stride()) if s == 0)
    return t.numel() // max(broadcast, 1) * t.element_size()


class CountBytes(TorchDispatchMode):
    """Bytes in and out of every ATen operation that is not a view."""

    def __init__(self):
        super().__init__()
        self.total = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.is_view or func is torch.ops.aten._unsafe_view.default:
            return out
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        self.total += sum(physical_bytes(t) for t in tensors)
        self.ops += 1
        return out


def counted_decode_bytes(form: str, batch: int, context: int, q_len: int, dtype: torch.dtype) -> CountBytes:
    a = load_model("deepseek-v3").args
    with torch.device("meta"):
        layer = MLA(a, max_seq_len=context, dtype=dtype)
        cache = LatentKVCache(batch, context, a, dtype)
        x = torch.randn(batch, q_len, a.dim, dtype=dtype)
    counter = CountBytes()
    with torch.no_grad(), counter:
        layer.decode(x, cache, context - q_len, form)
    return counter


@pytest.mark.parametrize(
    ("batch", "context", "q_len", "dtype"),
    [(128, 8192, 1, torch.bfloat16), (128, 4096, 2, torch.bfloat16), (16, 16384, 1, torch.float32)],
)
def test_absorbed_bytes_match_the_operations_it_runs(batch, context, q_len, dtype):
    counted = counted_decode_bytes("absorbed", batch, context, q_len, dtype)
    e = torch.finfo(dtype).bits // 8
    model = mla_decode_traffic(
        load_model("deepseek-v3").args, batch=batch, context=context, form="absorbed", q_len=q_len, dtype_bytes=e
    )
    # The model leaves out the norms' and RoPE's elementwise passes over small per-token tensors.
    assert model.total == pytest.approx(counted.total, rel=0.03)
    assert model.total < counted.total


def test_v3_worked_figures():
    """The numbers docs/benchmarks.md quotes: batch 128, context 8192, bf16."""
    a = load_model("deepseek-v3").args
    absorbed = mla_decode_traffic(a, batch=128, context=8192, form="absorbed")
    fused = mla_decode_traffic(a, batch=128, context=8192, form="fused")
    naive = mla_decode_traffic(a, batch=128, context=8192, form="naive")
    cache = 128 * 8192 * 576 * 2
    assert cache == 1_207_959_552  # the latent cache: 1.21 GB
    assert absorbed.cache_reads == 128 * 8192 * (2 * 512 + 64) * 2  # kv twice, pe once
    assert absorbed.scores == 128 * 128 * 8192 * 36  # 36 bytes per bf16 score
    assert absorbed.total == pytest.approx(7.592e9, rel=1e-3)
    assert absorbed.minimum == pytest.approx(1.5858e9, rel=1e-3)  # 1.21 GB cache + 0.37 GB weights
    assert fused.cache_reads == cache and fused.scores == 0
    assert absorbed.ratio_to_minimum == pytest.approx(4.79, abs=0.01)
    assert fused.ratio_to_minimum == pytest.approx(1.04, abs=0.01)
    assert naive.ratio_to_minimum > 100


def test_minimum_is_the_cache_and_weights_once():
    a = load_model("deepseek-v3").args
    t = mla_decode_traffic(a, batch=8, context=1000, form="fused", q_len=2, splits=4)
    assert t.minimum == attention_layer_bytes(a, batch=8, q_len=2, kv_len=1000, dtype_bytes=2, cached=True)
    per_token = kv_cache_elements_per_token_per_layer(a) * 2
    assert t.minimum == attention_params(a) * 2 + 2 * 8 * 2 * a.dim * 2 + 8 * 1000 * per_token
    assert t.split_partials == 2 * 8 * 2 * 128 * 4 * (512 + 1) * 4
    assert mla_decode_traffic(a, batch=8, context=1000, form="fused", q_len=2).split_partials == 0


def test_bad_shapes_and_forms_are_refused():
    a = load_model("deepseek-v3").args
    with pytest.raises(ValueError, match="unknown MLA decode form"):
        mla_decode_traffic(a, batch=1, context=10, form="flash")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least"):
        mla_decode_traffic(a, batch=1, context=1, form="fused", q_len=2)
    with pytest.raises(ValueError, match="MLA model"):
        mla_decode_traffic(load_model("llama-3.1-405b").args, batch=1, context=10, form="fused")
