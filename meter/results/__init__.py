"""Run files: the one contract between measurement and meter.

Writers build the typed classes here and save them with :class:`RunRecorder`; readers get them
from :func:`load_run` (a path) or :func:`parse_run` (bytes, e.g. an HTTP body). Schema:
docs/run-file.md.
"""

from meter.results.cases import BenchCase, CommCase
from meter.results.document import (
    SCHEMA,
    SCHEMA_VERSION,
    Ceilings,
    DeviceInfo,
    HardwareSummary,
    ImportInfo,
    RunDocument,
    RunMetadata,
    TelemetryInfo,
    Timeline,
)
from meter.results.job import JobCost, JobGpu, JobResult, JobWindow, JobWindowTotal, JobWork
from meter.results.load import RunFileError, load_run, parse_run, run_from_dict
from meter.results.records import (
    CaseDetails,
    CaseMetrics,
    CaseResult,
    CommResult,
    Projection,
    ProjectionLayer,
    Straggler,
    TelemetryWindow,
    Timing,
    TimingSettings,
)
from meter.results.runfile import RunRecorder, RunWriteError, default_run_path

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "BenchCase",
    "CaseDetails",
    "CaseMetrics",
    "CaseResult",
    "Ceilings",
    "CommCase",
    "CommResult",
    "DeviceInfo",
    "HardwareSummary",
    "ImportInfo",
    "JobCost",
    "JobGpu",
    "JobResult",
    "JobWindow",
    "JobWindowTotal",
    "JobWork",
    "Projection",
    "ProjectionLayer",
    "RunDocument",
    "RunFileError",
    "RunMetadata",
    "RunRecorder",
    "RunWriteError",
    "Straggler",
    "TelemetryInfo",
    "TelemetryWindow",
    "Timeline",
    "Timing",
    "TimingSettings",
    "default_run_path",
    "load_run",
    "parse_run",
    "run_from_dict",
]
