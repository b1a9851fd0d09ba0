"""A serving engine's benchmark priced: $ per million tokens from the GPUs the server used and a price.

The benchmark ran ``gpus`` GPUs for ``duration_s``; at ``usd_per_gpu_hour`` that time cost
``gpus x duration_s / 3600 x price``. A server does prefill and decode on the same GPUs at once,
so that cost is not split between input and output tokens; three figures are given instead:

- ``usd_per_m_output_tokens``: the whole cost per million output tokens (how serving cost is
  usually quoted: the input tokens of the same requests ride along);
- ``usd_per_m_input_tokens``: the whole cost per million input tokens (the same cost, per input);
- ``usd_per_m_tokens``: per million tokens of either kind.

They are not additive. Throughputs per GPU are the benchmark's over ``gpus``; the latency
percentiles (TTFT, TPOT, ITL, end to end) are carried through as the engine reported them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meter.engines.serving import LatencyStats, ServingBenchmark
from meter.errors import UsageError


@dataclass(frozen=True)
class BenchPrice:
    """The rental price per GPU-hour and where it came from."""

    usd_per_gpu_hour: float
    source: str
    hardware: str | None = None


@dataclass(frozen=True)
class ServingBenchCost:
    bench: ServingBenchmark
    gpus: int
    price: BenchPrice
    gpu_hours: float
    usd: float  # what the benchmark's GPU time cost
    output_tokens_per_s_per_gpu: float
    input_tokens_per_s_per_gpu: float
    usd_per_m_output_tokens: float | None
    usd_per_m_input_tokens: float | None
    usd_per_m_tokens: float | None

    @property
    def latencies(self) -> dict[str, LatencyStats]:
        return dict(self.bench.latencies)

    def as_dict(self) -> dict[str, Any]:
        from meter.jsonable import to_jsonable

        b = self.bench
        return {
            "source": b.source,
            "engine": b.engine,
            "model_id": b.model_id,
            "backend": b.backend,
            "date": b.date,
            "request_rate_per_s": b.request_rate_per_s,
            "paced_by": b.paced_by,
            "max_concurrency": b.max_concurrency,
            "duration_s": b.duration_s,
            "completed": b.completed,
            "failed": b.failed,
            "total_input_tokens": b.total_input_tokens,
            "total_output_tokens": b.total_output_tokens,
            "gpus": self.gpus,
            "hardware": self.price.hardware,
            "usd_per_gpu_hour": self.price.usd_per_gpu_hour,
            "price_source": self.price.source,
            "gpu_hours": self.gpu_hours,
            "usd": self.usd,
            "output_tokens_per_s": b.output_tokens_per_s,
            "input_tokens_per_s": b.input_tokens_per_s,
            "output_tokens_per_s_per_gpu": self.output_tokens_per_s_per_gpu,
            "input_tokens_per_s_per_gpu": self.input_tokens_per_s_per_gpu,
            "usd_per_m_output_tokens": self.usd_per_m_output_tokens,
            "usd_per_m_input_tokens": self.usd_per_m_input_tokens,
            "usd_per_m_tokens": self.usd_per_m_tokens,
            "latencies_ms": to_jsonable(dict(b.latencies)),
        }


def price_serving_bench(bench: ServingBenchmark, *, gpus: int, price: BenchPrice) -> ServingBenchCost:
    """$ per million tokens of one benchmark result, from its GPU time."""
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise UsageError(f"--gpus must be a whole number of GPUs, at least 1, not {gpus!r}")
    gpu_hours = gpus * bench.duration_s / 3600.0
    usd = gpu_hours * price.usd_per_gpu_hour

    def per_million(tokens: int) -> float | None:
        return usd / tokens * 1e6 if tokens > 0 else None

    return ServingBenchCost(
        bench=bench,
        gpus=gpus,
        price=price,
        gpu_hours=gpu_hours,
        usd=usd,
        output_tokens_per_s_per_gpu=bench.output_tokens_per_s / gpus,
        input_tokens_per_s_per_gpu=bench.input_tokens_per_s / gpus,
        usd_per_m_output_tokens=per_million(bench.total_output_tokens),
        usd_per_m_input_tokens=per_million(bench.total_input_tokens),
        usd_per_m_tokens=per_million(bench.total_input_tokens + bench.total_output_tokens),
    )


@dataclass(frozen=True)
class BenchEfficiency:
    """How much of a deployment's bound the engine reached on the benchmark's own load.

    The bound says how many GPU-seconds the benchmark's tokens need at best if the GPUs did one
    phase at a time (input tokens at the prefill bound, output tokens at the decode bound); the
    engine used ``gpus x duration``. Their ratio is the engine's efficiency.
    """

    deployment: str
    prefill_context: int
    decode_context: int
    decode_batch_per_gpu: int | None
    prefill_bound_tokens_per_s_per_gpu: float
    decode_bound_tokens_per_s_per_gpu: float
    bound_gpu_s: float
    measured_gpu_s: float

    @property
    def efficiency(self) -> float:
        return self.bound_gpu_s / self.measured_gpu_s

    def as_dict(self) -> dict[str, Any]:
        import dataclasses

        return {**dataclasses.asdict(self), "efficiency": self.efficiency}


def bench_shape(bench: ServingBenchmark, gpus: int) -> tuple[int, int, int | None]:
    """(prefill context, decode context, decode sequences per GPU) of the benchmark's requests: the
    mean prompt, the mean KV length a generated token reads (prompt + half the output), and the
    concurrency over the GPUs when the benchmark capped it."""
    n = max(bench.completed, 1)
    prompt = max(1, round(bench.total_input_tokens / n))
    decode = max(1, round((bench.total_input_tokens + bench.total_output_tokens / 2) / n))
    batch = -(-bench.max_concurrency // gpus) if bench.max_concurrency else None
    return prompt, decode, batch


def bench_efficiency(cost: ServingBenchCost, bound) -> BenchEfficiency:
    """``bound`` is a :class:`meter.cost.layout.DeploymentBound` at the benchmark's shape."""
    b = cost.bench
    prefill, decode = bound.prefill.tokens_per_s_per_gpu, bound.decode.tokens_per_s_per_gpu
    return BenchEfficiency(
        deployment=bound.deployment.name,
        prefill_context=bound.prefill.pool.context,
        decode_context=bound.decode.pool.context,
        decode_batch_per_gpu=bound.decode.pool.batch_per_gpu,
        prefill_bound_tokens_per_s_per_gpu=prefill,
        decode_bound_tokens_per_s_per_gpu=decode,
        bound_gpu_s=b.total_input_tokens / prefill + b.total_output_tokens / decode,
        measured_gpu_s=cost.gpus * b.duration_s,
    )
