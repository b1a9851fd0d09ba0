"""The machine: GPUs through the vendor-neutral seam (``gpu``) and its backends (``nvidia``), CPU energy
through Linux powercap (``rapl``), what the host is and runs (``host``), and who holds a GPU (``jobs``, ``kubelet``).
"""
