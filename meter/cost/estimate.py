"""From a scenario (plus command-line overrides and, optionally, a measured run) to a cost estimate.

Every input ends up in ``CostEstimate.inputs`` with where it came from: the scenario (with its
source, date and confidence), the command line, the price table, a measured run, the hardware
config, or the analytic model. Outputs carry their central value and, when any input is a range,
P10/P50/P90. Training: :mod:`meter.cost.train_estimate`; serving: :mod:`meter.cost.serve_estimate`;
the costing methods each declares its inputs in :mod:`meter.cost.methods`.
"""

from meter.cost.result import DEFAULT_SAMPLES, Comparison, CostEstimate, Reproduction
from meter.cost.serve_estimate import LayoutOverrides, estimate_serve
from meter.cost.train_estimate import estimate_train

__all__ = [
    "DEFAULT_SAMPLES",
    "Comparison",
    "CostEstimate",
    "LayoutOverrides",
    "Reproduction",
    "estimate_serve",
    "estimate_train",
]
