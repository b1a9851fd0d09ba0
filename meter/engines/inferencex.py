"""InferenceX's per-point result JSON, read into :class:`meter.engines.points.ServingPoint` rows.

InferenceX (SemiAnalysis, formerly InferenceMAX, Apache-2.0) writes one aggregated JSON per benchmark
point, ``agg_<result>.json``, from the benchmark client's result and the run's environment
(``utils/process_result.py``, read 2026-12). The fields read here:

- every point: ``hw``, ``conc``, ``model``, ``framework``, ``precision``, ``spec_decoding`` (``mtp`` or
  ``none``; older files: an optional ``mtp`` key), ``disagg``, ``isl``, ``osl``, ``is_multinode`` (absent in
  older files: single node), ``image``, ``infmax_model_prefix``;
- single node: ``tp``, ``ep``, ``dp_attention`` (the environment's ``"true"``/``"false"``), ``pp``,
  ``dcp_size``, ``pcp_size`` (newer files; GPUs = tp x pp x pcp);
- multinode (disaggregated): ``prefill_tp``, ``prefill_ep``, ``prefill_dp_attention``,
  ``prefill_num_workers``, ``decode_tp``, ``decode_ep``, ``decode_dp_attention``, ``decode_num_workers``,
  ``num_prefill_gpu``, ``num_decode_gpu`` (and ``prefill_pp``/``decode_pp``... in newer files);
- results: ``tput_per_gpu`` (input + output tokens/s over all GPUs), ``output_tput_per_gpu`` (output tokens/s
  over the GPUs that decode: all of a single-node point, the decode GPUs of a multinode one),
  ``input_tput_per_gpu``; every latency of the client in seconds (``median_tpot``, ``median_ttft``, ...) and
  ``median_intvty`` = 1 / median TPOT in tokens/s.

A file holds one point (an object) or several (a list, as a results directory's collected rows).
Booleans and whole numbers are accepted as JSON values or as the strings the environment gave.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meter.config.schema import read_input_text
from meter.engines.points import MAX_WHOLE, ServingPoint, check_point, positive_number, whole_number
from meter.errors import InputError

MAX_RESULT_BYTES = 64 * 2**20
INTERACTIVITY_TOLERANCE = 0.02  # median_intvty against 1 / median_tpot (InferenceX adds 1e-8 s in some versions)


class InferenceXFileError(InputError):
    """An InferenceX result file that cannot be used."""


def load_inferencex(path: Path | str, *, source_id: str | None = None, date: str | None = None) -> list[ServingPoint]:
    """Every point of one InferenceX result file (one aggregated JSON, or a list of them)."""
    path = Path(path)
    text = read_input_text(path, max_bytes=MAX_RESULT_BYTES, error=InferenceXFileError, what="an InferenceX result")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InferenceXFileError(path, None, f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise InferenceXFileError(path, None, "nested too deeply to be an InferenceX result") from None
    if isinstance(data, dict):
        records = [("", data)]
    elif isinstance(data, list) and data:
        records = [(f"[{i}].", r) for i, r in enumerate(data)]
    else:
        raise InferenceXFileError(path, None, "expected a result object or a non-empty list of them", data)
    return [_point(_Record(raw, path, prefix), source_id or path.stem, date) for prefix, raw in records]


class _Record:
    """Typed access to one result's fields; a refusal names the file, the field and the value."""

    def __init__(self, raw: Any, path: Path, prefix: str):
        if not isinstance(raw, dict):
            raise InferenceXFileError(path, prefix.rstrip(".") or None, "expected a JSON object", raw)
        self.raw, self.path, self.prefix = raw, path, prefix

    def fail(self, key: str, problem: str, value: Any = InputError._MISSING) -> InferenceXFileError:
        return InferenceXFileError(self.path, f"{self.prefix}{key}", problem, value)

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def get(self, key: str) -> Any:
        if not self.has(key):
            raise self.fail(key, "missing; not an InferenceX result (utils/process_result.py)?")
        return self.raw[key]

    def text(self, key: str, default: str | None = None) -> str:
        if default is not None and not self.has(key):
            return default
        value = self.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "expected a non-empty string", value)
        return value.strip()

    def whole(self, key: str, default: int | None = None) -> int:
        if default is not None and not self.has(key):
            return default
        value = self.get(key)
        number = whole_number(value)  # a JSON number, or the environment's string ("1024")
        if number is None:
            raise self.fail(key, f"expected a whole number, at least 1 (at most {MAX_WHOLE:,})", value)
        return number

    def flag(self, key: str, default: bool | None = None) -> bool:
        if default is not None and not self.has(key):
            return default
        value = self.get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise self.fail(key, 'expected true or false (or "true"/"false")', value)

    def positive(self, key: str) -> float:
        value = self.get(key)
        number = positive_number(value)
        if number is None:
            raise self.fail(key, "expected a finite number above 0", value)
        return number


def _point(r: _Record, source_id: str, date: str | None) -> ServingPoint:
    multinode = r.flag("is_multinode", default=False)
    disagg = r.flag("disagg", default=multinode)
    if disagg and not multinode:
        raise r.fail("disagg", "true on a single-node result (is_multinode false); InferenceX refuses that too")
    prefix = "decode_" if multinode else ""
    for key in ("pp", "dcp_size", "pcp_size"):
        for side in ("prefill_", "decode_") if multinode else ("",):
            if r.whole(side + key, default=1) != 1:
                raise r.fail(
                    side + key, "is not 1: a points file holds TP/EP/attention-DP layouts only", r.raw[side + key]
                )
    if r.has("prefill_hw") and r.text("prefill_hw") != r.text("decode_hw"):
        # a points row has one hardware column; a prefill pool on other GPUs cannot be priced from it
        raise r.fail(
            "prefill_hw",
            f"differs from decode_hw ({r.text('decode_hw')!r}): one hardware per point",
            r.raw["prefill_hw"],
        )
    tp, ep = r.whole(prefix + "tp"), r.whole(prefix + "ep")
    dp_attention = r.flag(prefix + "dp_attention")
    prefill: dict[str, Any] = dict.fromkeys(
        ("prefill_tp", "prefill_ep", "prefill_dp_attention", "num_prefill_gpu", "num_decode_gpu")
    )
    if multinode:
        prefill = {
            "prefill_tp": r.whole("prefill_tp"),
            "prefill_ep": r.whole("prefill_ep"),
            "prefill_dp_attention": r.flag("prefill_dp_attention"),
            "num_prefill_gpu": r.whole("num_prefill_gpu"),
            "num_decode_gpu": r.whole("num_decode_gpu"),
        }
    median_tpot_s = r.positive("median_tpot")
    tok_s_user = 1 / median_tpot_s
    if r.has("median_intvty"):
        stated = r.positive("median_intvty")
        if abs(stated - tok_s_user) > INTERACTIVITY_TOLERANCE * tok_s_user:
            raise r.fail("median_intvty", f"disagrees with 1 / median_tpot ({tok_s_user:.6g})", stated)
    spec = r.text("spec_decoding", default="mtp" if r.has("mtp") else "none")
    notes = [f"InferenceX result {r.path.name}" + (f" {r.prefix.rstrip('.')}" if r.prefix else "")]
    for key in ("infmax_model_prefix", "image"):
        if r.has(key):
            notes.append(f"{key}={r.text(key)}")
    point = ServingPoint(
        source_id=source_id,
        model=r.text("model"),
        precision=r.text("precision"),
        hardware=r.text("hw"),
        framework=r.text("framework"),
        spec_method=spec,
        disagg=disagg,
        tp=tp,
        ep=ep,
        dp_attention=dp_attention,
        isl=r.whole("isl"),
        osl=r.whole("osl"),
        conc=r.whole("conc"),
        median_tpot_ms=median_tpot_s * 1000,
        tok_s_user=tok_s_user,
        output_tok_s_gpu=r.positive("output_tput_per_gpu"),
        total_tok_s_gpu=r.positive("tput_per_gpu"),
        date=date,
        kind="measured",
        notes="; ".join(notes),
        **prefill,
    )
    problem = check_point(point)
    if problem is not None:
        column, text, value = problem
        field = {"tp": "decode_tp", "ep": "decode_ep"}.get(column, column) if multinode else column
        field = {"output_tok_s_gpu": "output_tput_per_gpu", "tok_s_user": "median_intvty"}.get(field, field)
        raise r.fail(field, text, value)
    return point
