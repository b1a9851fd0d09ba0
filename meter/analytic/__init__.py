"""The analytic model: parameters, FLOPs and bytes of a model, as pure functions of its shape."""

from meter.analytic.flops import (
    FlopsPerToken,
    decode_flops_per_token,
    mtp_train_flops_per_token,
    prefill_flops_per_token,
    train_flops_per_token,
)
from meter.analytic.memory import DecodeStepBytes, decode_step_bytes, kv_cache_bytes_per_token
from meter.analytic.params import ParamCounts, count_params

__all__ = [
    "DecodeStepBytes",
    "FlopsPerToken",
    "ParamCounts",
    "count_params",
    "decode_flops_per_token",
    "decode_step_bytes",
    "kv_cache_bytes_per_token",
    "mtp_train_flops_per_token",
    "prefill_flops_per_token",
    "train_flops_per_token",
]
