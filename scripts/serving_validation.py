"""The step model against a points file: uncalibrated, fitted, and leave-one-layout-out (docs/cost.md).

    PYTHONPATH=. python scripts/serving_validation.py ../shared/reference/serving-points-h200.tsv h200-sxm

Prints the median absolute errors of output tokens/s per GPU and tokens/s per user, the fitted
parameters, and the largest measured / bound ratio. A full fit of 246 points takes about 10 s of
one core; leave-one-layout-out fits once per layout.
"""

from __future__ import annotations

import sys

from meter.cli.serving_frontier import observations
from meter.config.deployments import load_deployment
from meter.config.models import load_model
from meter.config.paths import ConfigLocator
from meter.cost.serving_fit import FREE, fit, leave_one_layout_out, validate
from meter.cost.serving_step import DEFAULTS


def main(path: str, hardware: str, model: str = "deepseek-v3", deployment: str = "deepseek-v3-day6") -> None:
    loc = ConfigLocator.from_env()
    m = load_model(model, loc)
    obs = observations(path, m.args, load_deployment(deployment, loc), loc, only_hardware=hardware)
    print(f"{len(obs)} points of {path} on {hardware}")
    raw = validate(obs, DEFAULTS)
    worst = max(p.measured_output_tokens_per_s_per_gpu / p.output_tokens_per_s_per_gpu_bound for p in raw.points)
    print(f"uncalibrated: median error {raw.median_abs_error:.1%} (output tok/s/GPU), "
          f"{raw.median_abs_error_per_user:.1%} (tok/s/user); {len(raw.points_above_bound)} above the bound; "
          f"largest measured / bound {worst:.2f}")  # fmt: skip
    c = fit(obs)
    fitted = ", ".join(
        f"{n} {c.mtp_acceptance if n == 'mtp_acceptance' else getattr(c.efficiencies, n):.3g}" for n, _, _ in FREE
    )
    print(f"fitted: {fitted}; median error {c.median_abs_error:.1%} / {c.median_abs_error_per_user:.1%}")
    by = {}
    for p in validate(obs, c.efficiencies, c.mtp_acceptance).points:
        by.setdefault(p.setup.split()[0], []).append(abs(p.error))
    for framework, errors in sorted(by.items()):
        print(f"  {framework}: {len(errors)} points, median error {sorted(errors)[len(errors) // 2]:.1%}")
    lolo = leave_one_layout_out(obs)
    print(f"leave one layout out: median error {lolo.median_abs_error:.1%} / {lolo.median_abs_error_per_user:.1%}")


if __name__ == "__main__":
    main(*sys.argv[1:])
