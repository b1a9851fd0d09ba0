"""Which batch job a process belongs to, from its environment: Slurm's job id or torchrun's run id.

Read from ``/proc/<pid>/environ``, which only the process's owner (or root) can read, and only
from the same pid namespace as the driver's pids (a container needs ``hostPID``). Where it cannot
be read the job is unknown: None, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
MAX_ENVIRON_BYTES = 1 << 20  # an environment is at most a few hundred KiB; stop reading past this
# (variable, scheduler) in order of preference: a Slurm step run under torchrun is a Slurm job.
JOB_VARIABLES = (
    ("SLURM_JOB_ID", "slurm"),
    ("TORCHELASTIC_RUN_ID", "torchrun"),
)


@dataclass(frozen=True)
class JobRef:
    scheduler: str  # "slurm" or "torchrun"
    job_id: str


def job_of(pid: int, proc: Path = PROC) -> JobRef | None:
    """The job a process belongs to, or None when its environment names none or cannot be read."""
    try:
        with open(proc / str(pid) / "environ", "rb") as f:
            raw = f.read(MAX_ENVIRON_BYTES)
    except OSError:
        return None
    env = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    for variable, scheduler in JOB_VARIABLES:
        value = env.get(variable, "").strip()
        if value and len(value) <= 128 and value.isprintable():
            return JobRef(scheduler, value)
    return None
