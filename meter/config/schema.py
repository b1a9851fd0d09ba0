"""Load YAML mappings into frozen dataclasses, refusing bad input with one precise message.

Every config kind (models, hardware, pricing, scenarios, suites) goes through
:func:`build_dataclass`, so type checks, unknown-field suggestions and range checks behave the
same everywhere. Range constraints come from the dataclass field's ``metadata`` (keys ``gt``,
``ge``, ``le``, ``lt``) or from a ``constraints`` mapping given by the caller, for dataclasses
that must not depend on this module (``kernels.args.ModelArgs``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import os
import re
import stat
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml

from meter.config.quantity import Quantity, QuantityError, from_yaml
from meter.errors import ConfigError, InputError

Constraints = Mapping[str, Mapping[str, float]]
_YAML11_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE]\d+$")


def gt(bound: float) -> dict[str, float]:
    """Field metadata: value must be greater than ``bound``."""
    return {"gt": bound}


def ge(bound: float) -> dict[str, float]:
    """Field metadata: value must be at least ``bound``."""
    return {"ge": bound}


def between(low: float, high: float) -> dict[str, float]:
    """Field metadata: ``low <= value <= high``."""
    return {"ge": low, "le": high}


INTERNAL = {"internal": True}  # field metadata: set by the loader, never read from YAML
ALLOW_EMPTY = "allow-empty"  # Annotated[str, ALLOW_EMPTY]: an empty string is a value (a command-line argument)


MAX_INT = 2**63  # the largest integer a field takes (a 64-bit count; floats lose more digits than that)
MAX_YAML_BYTES = 8 * 2**20  # a config is a few KiB; a larger file is a mistake, not a config
MAX_YAML_NODES = 200_000  # after expanding aliases: bounds "billion laughs" documents


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with three changes for configs people edit by hand:

    - duplicate keys are refused (PyYAML keeps the last one silently);
    - dates stay strings, so the schema parses them and names the field of an impossible one
      (PyYAML raises a bare ValueError for 2026-02-30);
    - aliases are allowed but their expansion is bounded (see :data:`MAX_YAML_NODES`).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark)
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


# No implicit timestamps: the schema's date fields parse strings themselves.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, mark: Any):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.problem_mark = key, mark


def _expanded_nodes(root: yaml.Node) -> int:
    """Nodes the document has once every alias is expanded, counted without expanding them."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a recursive alias counts once; the constructor refuses what it cannot build
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            total = 1
        sizes[id(node)] = min(total, MAX_YAML_NODES + 1)
        return sizes[id(node)]

    return size(root)


def read_yaml(path: Path) -> Any:
    """Parse one YAML file; every way it can be unreadable becomes a ConfigError naming the file."""
    text = read_input_text(path, max_bytes=MAX_YAML_BYTES, error=ConfigError, what="a config file")
    return read_yaml_text(text, path)


def read_yaml_text(text: str, path: Path | None) -> Any:
    """Parse YAML text as :func:`read_yaml` does (errors name ``path``)."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_nodes(node) > MAX_YAML_NODES:
                raise ConfigError(path, None, f"aliases expand to more than {MAX_YAML_NODES:,} values; refused")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except _DuplicateKey as exc:
        mark = exc.problem_mark
        raise ConfigError(path, str(exc.key), f"duplicate key at line {mark.line + 1}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, None, f"malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(path, None, "nested too deeply to be a config") from None


class DuplicateJsonKey(ValueError):
    """A JSON object that names one key twice (``json`` would keep the later silently)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: raises :class:`DuplicateJsonKey` on a repeated key."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateJsonKey(key)
        out[key] = value
    return out


def read_input_bytes(path: Path, *, max_bytes: int, error: type[InputError], what: str) -> bytes:
    """The bytes of an input file, or ``error`` naming the file: missing, a directory, unreadable, too large.

    ``what`` names the kind of file in messages ("a config file", "a run file").
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer would block forever; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(path, None, "no such file") from None
    except IsADirectoryError:
        raise error(path, None, f"is a directory, not {what}") from None
    except OSError as exc:
        raise error(path, None, f"cannot read file: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise error(path, None, f"is a directory, not {what}")
        if not stat.S_ISREG(mode):
            raise error(path, None, f"is {file_kind(mode)}, not a regular file; {what} must be a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as f:
            fd = -1  # the file object owns it now
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(path, None, f"cannot read file: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > max_bytes:
        raise error(path, None, f"larger than {max_bytes // 2**20} MiB; not {what}")
    return raw


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages ("a FIFO", "a character device")."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_input_text(path: Path, *, max_bytes: int, error: type[InputError], what: str) -> str:
    """:func:`read_input_bytes`, decoded as UTF-8."""
    return decode_utf8(read_input_bytes(path, max_bytes=max_bytes, error=error, what=what), path, error)


def decode_utf8(raw: bytes, path: Path | str | None, error: type[InputError]) -> str:
    """UTF-8 text of a file, or ``error`` naming the first bad byte (a binary or Latin-1 file)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex()
        raise error(path, None, f"not UTF-8 text (byte 0x{bad} at offset {exc.start})") from None


def build_dataclass(
    cls: type,
    data: Any,
    *,
    path: Path | None,
    prefix: str = "",
    constraints: Constraints | None = None,
    ignore: frozenset[str] = frozenset(),
) -> Any:
    """Build ``cls`` from a mapping, checking every field.

    Args:
        cls: a dataclass type.
        data: the parsed YAML value (must be a mapping).
        path: the file it came from, for messages.
        prefix: dotted path of ``data`` inside the file, for messages.
        constraints: extra range checks by field name (merged over the field metadata).
        ignore: keys of ``data`` that the caller consumes itself.
    """
    where = prefix.rstrip(".") or None
    if not isinstance(data, Mapping):
        raise ConfigError(path, where, f"expected a mapping of fields, found {_type_name(data)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")}
    for key in data:
        if key in ignore:
            continue
        if not isinstance(key, str) or key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(path, f"{prefix}{key}", f"unknown field{hint}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        dotted = f"{prefix}{name}"
        if name not in data:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required:
                raise ConfigError(path, dotted, "missing required field")
            continue
        value = _coerce(hints[name], data[name], path=path, dotted=dotted)
        bounds = {k: v for k, v in f.metadata.items() if k in ("gt", "ge", "lt", "le")}
        if constraints and name in constraints:
            bounds.update(constraints[name])
        _check_bounds(value, bounds, path=path, dotted=dotted)
        kwargs[name] = value
    return cls(**kwargs)


def check_name_matches_file(name: str, path: Path | None) -> None:
    """A config is found by its file name, so its ``name`` field must agree with it."""
    if path is not None and name != path.stem:
        raise ConfigError(path, "name", f"differs from the file name '{path.stem}'", name)


def _coerce(tp: Any, value: Any, *, path: Path | None, dotted: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        if args[0] is str and ALLOW_EMPTY in args[1:] and isinstance(value, str):
            return value
        return _coerce(args[0], value, path=path, dotted=dotted)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for option in non_none:
            try:
                return _coerce(option, value, path=path, dotted=dotted)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(path, dotted, f"must be one of {choices}", value)
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(path, dotted, "expected a list", value)
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, path=path, dotted=f"{dotted}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(path, dotted, "expected a mapping", value)
        key_tp, val_tp = args if args else (str, Any)
        out = {}
        for k, v in value.items():
            key = _coerce(key_tp, k, path=path, dotted=f"{dotted}.{k}")
            out[key] = _coerce(val_tp, v, path=path, dotted=f"{dotted}.{k}")
        return out
    if tp is Quantity:
        try:
            return from_yaml(value)
        except QuantityError as exc:
            raise ConfigError(path, dotted, str(exc), value) from None
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, path=path, prefix=f"{dotted}.")
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, dotted, "expected true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, dotted, "expected an integer", value)
        if abs(value) >= MAX_INT:  # every integer is used beside floats; 10**400 overflows them
            raise ConfigError(path, dotted, f"too large for a number (at most {MAX_INT - 1})", value)
        return value
    if tp is float:
        if isinstance(value, str) and _YAML11_EXPONENT.match(value):
            value = float(value)  # PyYAML (YAML 1.1) reads 671e9, without an exponent sign, as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, dotted, "expected a number", value)
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(path, dotted, "too large for a number", value) from None
        if math.isnan(value) or math.isinf(value):
            raise ConfigError(path, dotted, "must be a finite number", value)
        return value
    if tp is str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(path, dotted, "expected a non-empty string", value)
        return value
    if tp is dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return _parse_partial_date(value)
            except ValueError:
                pass
        raise ConfigError(path, dotted, "expected a date (YYYY-MM-DD or YYYY-MM)", value)
    if tp is dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(
                    value.strip().removesuffix("Z") + ("+00:00" if value.strip().endswith("Z") else "")
                )
            except ValueError:
                pass
        raise ConfigError(path, dotted, "expected an ISO 8601 date and time", value)
    raise TypeError(f"schema: unsupported field type {tp!r} at {dotted}")  # a bug in our dataclasses


def _parse_partial_date(text: str) -> dt.date:
    """ISO date; a bare year-month (as many datasheets are dated) means its first day."""
    text = text.strip()
    if len(text) == 7:
        return dt.date.fromisoformat(text + "-01")
    return dt.date.fromisoformat(text)


def _check_bounds(value: Any, bounds: Mapping[str, float], *, path: Path | None, dotted: str) -> None:
    if not bounds or value is None:
        return
    values = value.values() if isinstance(value, Mapping) else value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if "gt" in bounds and not v > bounds["gt"]:
            raise ConfigError(path, dotted, f"must be greater than {_fmt(bounds['gt'])}", v)
        if "ge" in bounds and not v >= bounds["ge"]:
            raise ConfigError(path, dotted, f"must be at least {_fmt(bounds['ge'])}", v)
        if "lt" in bounds and not v < bounds["lt"]:
            raise ConfigError(path, dotted, f"must be less than {_fmt(bounds['lt'])}", v)
        if "le" in bounds and not v <= bounds["le"]:
            raise ConfigError(path, dotted, f"must be at most {_fmt(bounds['le'])}", v)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _type_name(value: Any) -> str:
    return "nothing (an empty file?)" if value is None else f"a {type(value).__name__}"
