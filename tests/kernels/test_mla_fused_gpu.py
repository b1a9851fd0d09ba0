"""The compiled fused MLA decode kernel at DeepSeek-V3 shapes (128 heads, 512 + 64 latent), on a GPU.

Skipped without CUDA. The interpreter tests (test_mla_fused.py) check the same kernel's logic on
the CPU; these check what only a GPU shows: compilation with the installed Triton, the bf16
tensor-core path and CUDA-graph capture.
"""

from __future__ import annotations

import pytest
import torch

from kernels.triton.plan import DecodePlan
from kernels.triton.reference import mla_decode_reference
from tests.kernels.test_mla_fused import assert_matches, paged_inputs

pytestmark = pytest.mark.gpu


def on_gpu(x):
    for name in ("q_lat", "q_pe", "kv", "pe", "block_table", "lengths"):
        setattr(x, name, getattr(x, name).cuda())
    return x


@pytest.mark.parametrize("s", [1, 2])
@pytest.mark.parametrize("plan", [None, DecodePlan(64, 32, 4), DecodePlan(32, 64, 1)])
def test_compiled_kernel_at_v3_shapes(s: int, plan):
    from kernels.triton.mla_decode import mla_decode

    x = on_gpu(paged_inputs([4096, 1000, 4033, 17, 2500, 64, 3999, 4097], s, 128, 512, 64, 64, torch.bfloat16))
    scale = 192**-0.5
    got = mla_decode(x.q_lat, x.q_pe, x.kv, x.pe, x.block_table, x.lengths, scale, plan)
    wide = [t.float() for t in (x.q_lat, x.q_pe, x.kv, x.pe)]
    assert_matches(got, mla_decode_reference(*wide, x.block_table, x.lengths, scale))


def test_compiled_kernel_replays_from_a_cuda_graph():
    from kernels.triton.mla_decode import mla_decode

    x = on_gpu(paged_inputs([2048, 300, 1777, 2048], 1, 128, 512, 64, 64, torch.bfloat16, seed=5))
    args = (x.q_lat, x.q_pe, x.kv, x.pe, x.block_table, x.lengths, 192**-0.5)
    eager = mla_decode(*args)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = mla_decode(*args)
    x.q_lat.mul_(-1)
    graph.replay()
    torch.cuda.synchronize()
    assert not torch.equal(out, eager)  # the replay read the new queries
    torch.testing.assert_close(out, mla_decode(*args), atol=0, rtol=0)
