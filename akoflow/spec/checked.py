"""Checked dataclasses: the little of pydantic the spec models need, without its start-up cost.

Every `akoflow` command builds a spec or reads one, and importing pydantic and building its
model schemas took ~0.15 s per process: a tenth of running 1,000 no-op tasks. The YAML loader
already checks every field with its line (`_fields.py`); what is left here is the safety net
for specs built in Python (the decorator API, importers, tests): per-field converters run in
`__post_init__`, and every problem of a model is raised at once as `ValidationError`, whose
`errors()` keeps pydantic's shape (`loc`, `msg`) so callers report the field path.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

Conv = Callable[[Any], Any]


class ValidationError(ValueError):
    """Every field problem of one model; `errors()` lists `{"loc": (...), "msg": ...}`."""

    def __init__(self, model: str, errors: list[dict[str, Any]]) -> None:
        self._errors = errors
        lines = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        super().__init__(f"invalid {model}: {lines}")

    def errors(self) -> list[dict[str, Any]]:
        return list(self._errors)


@functools.cache
def camel(name: str) -> str:
    """`time_limit` → `timeLimit`: the YAML spelling of a field."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def to_str(v: Any) -> str:
    if isinstance(v, str):
        return str.__str__(v)  # a str subclass (an Enum member, markup): its plain text
    raise ValueError(f"must be a string, not {type(v).__name__}")


def to_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (numbers.Real, str)):
        raise ValueError(f"must be a number, not {type(v).__name__}")
    try:
        x = float(v)
    except (ValueError, OverflowError):
        raise ValueError(f"must be a finite number, not {v!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"must be a finite number, not {v!r}")
    return x


def to_int(v: Any) -> int:
    """A whole number: an int (numpy's too), or a float or numeric string with no fraction."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return int(v)
    x: Any = v
    if isinstance(v, str) and v.strip().lstrip("+-").replace(".", "", 1).isdigit():
        x = float(v)
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        try:
            f = float(x)
        except OverflowError:
            f = math.inf
        if math.isfinite(f) and f.is_integer():
            return int(f)
    raise ValueError(f"must be a whole number, not {v!r}")


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    raise ValueError(f"must be true or false, not {v!r}")


def optional(conv: Conv) -> Conv:
    return lambda v: None if v is None else conv(v)


def str_dict(v: Any) -> dict[str, str]:
    if not isinstance(v, Mapping):
        raise ValueError(f"must be a mapping of strings, not {type(v).__name__}")
    for key, val in v.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise ValueError(f"must be a mapping of strings ({key!r}: {val!r})")
    return {str(k): str(x) for k, x in v.items()}


def str_list(v: Any) -> list[str]:
    """A list of strings; any other iterable of strings (tuple, set, generator) is listed."""
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
        raise ValueError("must be a list of strings")
    out = list(v)
    if not all(isinstance(x, str) for x in out):
        raise ValueError("must be a list of strings")
    return [str(x) for x in out]


def one_of(*choices: str) -> Conv:
    def conv(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {v!r}")
        return str(v)

    return conv


def nested(cls: type[Checked]) -> Conv:
    """An instance of `cls`, or a mapping of its fields."""

    def conv(v: Any) -> Checked:
        if isinstance(v, cls):
            return v
        if isinstance(v, dict):
            names = {camel(f.name): f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
            try:
                return cls(**{names.get(str(k), str(k)): x for k, x in v.items()})
            except TypeError as e:  # an unknown or missing field
                raise ValueError(str(e).split(".", 1)[-1].strip()) from None
        raise ValueError(f"must be a {cls.__name__} or a mapping, not {type(v).__name__}")

    return conv


def nested_list(cls: type[Checked], *, min_length: int = 0) -> Conv:
    one = nested(cls)

    def conv(v: Any) -> list[Any]:
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"must be a list, not {type(v).__name__}")
        if len(v) < min_length:
            raise ValueError(f"must have at least {min_length} item(s)")
        out: list[Any] = []
        errors: list[dict[str, Any]] = []
        for i, item in enumerate(v):
            try:
                out.append(one(item))
            except ValidationError as e:
                errors += [{"loc": (i, *err["loc"]), "msg": err["msg"]} for err in e.errors()]
            except ValueError as e:
                errors.append({"loc": (i,), "msg": str(e)})
        if errors:
            raise ValidationError(cls.__name__, errors)
        return out

    return conv


class Checked:
    """Base of the spec dataclasses: `_conv` converts/checks fields, `_hidden` stay out of dumps."""

    _conv: ClassVar[dict[str, Conv]] = {}
    _hidden: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        errors: list[dict[str, Any]] = []
        for name, conv, default in _plan(type(self)):
            value = getattr(self, name)
            if value is default:  # the field's own (valid) default: nothing to convert
                continue
            try:
                setattr(self, name, conv(value))
            except ValidationError as e:
                errors += [{"loc": (camel(name), *err["loc"]), "msg": err["msg"]}
                           for err in e.errors()]
            except ValueError as e:
                errors.append({"loc": (camel(name),), "msg": str(e)})
        if errors:
            raise ValidationError(type(self).__name__, errors)

    def model_dump(self, *, by_alias: bool = False) -> dict[str, Any]:
        """Plain data (nested models as dicts); camelCase keys with `by_alias`."""
        out: dict[str, Any] = {}
        for name, key in _keys(type(self), by_alias):
            v = getattr(self, name)
            out[key] = v if type(v) in _SCALARS else _plain(v, by_alias)
        return out

    def model_dump_json(self, *, by_alias: bool = False) -> str:
        return json.dumps(self.model_dump(by_alias=by_alias), separators=(",", ":"),
                          ensure_ascii=False)


_NO_DEFAULT = object()
_plans: dict[type, list[tuple[str, Conv, Any]]] = {}


def _plan(cls: type[Checked]) -> list[tuple[str, Conv, Any]]:
    """(field, converter, plain default) per checked field; built once per class."""
    plan = _plans.get(cls)
    if plan is None:
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        plan = _plans[cls] = [
            (name, conv, defaults.get(name, _NO_DEFAULT)) for name, conv in cls._conv.items()
        ]
    return plan


_key_lists: dict[tuple[type, bool], list[tuple[str, str]]] = {}
_SCALARS = (str, int, float, bool, type(None))


def _keys(cls: type[Checked], by_alias: bool) -> list[tuple[str, str]]:
    """(field, dump key) of the fields a dump shows, once per class and spelling."""
    keys = _key_lists.get((cls, by_alias))
    if keys is None:
        keys = _key_lists[cls, by_alias] = [
            (f.name, camel(f.name) if by_alias else f.name)
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.name not in cls._hidden]
    return keys


def _plain(v: Any, by_alias: bool) -> Any:
    if isinstance(v, Checked):
        return v.model_dump(by_alias=by_alias)
    if isinstance(v, list):
        return [x if type(x) in _SCALARS else _plain(x, by_alias) for x in v]
    if isinstance(v, dict):
        return {k: x if type(x) in _SCALARS else _plain(x, by_alias) for k, x in v.items()}
    return v
