"""PyTorch workloads of gpu-cost-meter: DeepSeekMoE, MLA (and DeepSeek-V3.2's sparse MLA), dense SwiGLU FFN and GQA attention.

A leaf package: it imports torch (and optionally Triton), never ``meter``. Layers take a
:class:`kernels.args.ModelArgs`. Import layer modules explicitly (``kernels.moe``,
``kernels.mla``, ``kernels.dsa``, ``kernels.dense``); this file stays free of torch so that configs load fast.
"""

from kernels.args import ModelArgs

# Lets `meter` tell this package apart from the unrelated PyPI distribution also named `kernels`.
__gpu_cost_meter__ = True

__all__ = ["ModelArgs"]
