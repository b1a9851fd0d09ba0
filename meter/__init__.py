"""gpu-cost-meter: measure what training and serving a model really costs on GPUs.

Layers, bottom to top (nothing lower imports anything higher):

- ``meter.config``, ``meter.analytic``: YAML configs and the pure arithmetic of a model.
- ``meter.device``, ``meter.telemetry``, ``meter.results``: NVML, sampling, run files.
- ``meter.bench``, ``meter.cost``: benchmarks and the cost model.
- ``meter.exporter``, ``meter.report``, ``meter.distributed``.
- ``meter.cli``: the ``meter`` command.
"""

__version__ = "0.1.0"
