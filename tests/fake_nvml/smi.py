"""A fake ``nvidia-smi`` for the tests: answers ``--query-gpu`` from the fake NVML driver.

It reads the driver through pynvml, as NVIDIA's tool reads the real one, so the sampler and this
tool see one device and a comparison of the two tests the comparison's own plumbing. Only what
``meter.telemetry.validate.query_smi`` asks is implemented: ``--id=N --query-gpu=F,...
--format=csv,noheader,nounits``.
"""

from __future__ import annotations

import sys

import pynvml as nv

FIELDS = {
    "power.draw": lambda h: nv.nvmlDeviceGetPowerUsage(h) / 1000.0,
    "clocks.sm": lambda h: float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)),
    "utilization.gpu": lambda h: float(nv.nvmlDeviceGetUtilizationRates(h).gpu),
    "temperature.gpu": lambda h: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
    "memory.used": lambda h: nv.nvmlDeviceGetMemoryInfo(h).used / 2**20,
}


def main(argv: list[str]) -> int:
    opts = dict(a.lstrip("-").split("=", 1) for a in argv if "=" in a)
    if "query-gpu" not in opts or opts.get("format") != "csv,noheader,nounits":
        print("fake nvidia-smi: only --id=N --query-gpu=... --format=csv,noheader,nounits", file=sys.stderr)
        return 2
    nv.nvmlInit()
    try:
        h = nv.nvmlDeviceGetHandleByIndex(int(opts.get("id", 0)))
        values = []
        for name in opts["query-gpu"].split(","):
            try:
                values.append(f"{FIELDS[name](h):g}")
            except (KeyError, nv.NVMLError):
                values.append("[N/A]")
        print(", ".join(values))
    finally:
        nv.nvmlShutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
