"""Ranges as part of a schema: dataclass fields that know their valid interval.

Configs (:class:`~aknet_cli.engine.config.RunConfig`) and model switches
(:class:`~aknet_cli.models.aknet.AKNetConfig`) declare each numeric field with
:func:`ranged`; :func:`check_fields` then checks every field of an instance against its
annotation and its range, so a TOML file, a ``--set`` override and the Python API go through
one check. NaN and infinities are refused everywhere: no setting of ours means them.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import typing
from typing import Any

from .exceptions import ConfigError

_RANGE = "range"


def ranged(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
           ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
           why: str = "") -> Any:
    """A dataclass field whose value must lie in the given interval (bounds may be omitted).

    ``why`` is appended to the error, e.g. ``"a negative decay would grow the weights"``.
    """
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt, "why": why}
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_RANGE: bounds})


def describe_range(bounds: dict[str, Any]) -> str:
    """``{"ge": 0, "lt": 1}`` → ``"in [0, 1)"``; one-sided bounds read ``">= 0"``."""
    low = ("[", bounds["ge"]) if bounds.get("ge") is not None else ("(", bounds.get("gt"))
    high = ("]", bounds["le"]) if bounds.get("le") is not None else (")", bounds.get("lt"))
    if low[1] is not None and high[1] is not None:
        return f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low[1] is not None:
        return f"{'>=' if low[0] == '[' else '>'} {low[1]:g}"
    return f"{'<=' if high[0] == ']' else '<'} {high[1]:g}"


def in_range(value: float, bounds: dict[str, Any]) -> bool:
    # operator's comparisons, not the dunders: int.__le__(1.0) is NotImplemented, which is truthy,
    # so an int would pass every bound of a float field (AKNetConfig(alpha=5))
    checks = (("ge", operator.ge), ("gt", operator.gt), ("le", operator.le), ("lt", operator.lt))
    return all(bounds.get(name) is None or test(value, bounds[name]) for name, test in checks)


def check_number(value: Any, key: str, *, integer: bool = False, bounds: dict[str, Any] | None = None) -> Any:
    """A real (or integer) number, finite, inside ``bounds``; else one :class:`ConfigError` line."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ConfigError(f"{key} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if bounds and not in_range(value, bounds):
        reason = f" ({bounds['why']})" if bounds.get("why") else ""
        raise ConfigError(f"{key} must be {describe_range(bounds)}, got {value!r}{reason}")
    return value


def check_fields(obj: Any, *, prefix: str = "") -> None:
    """Check every plain-typed field of a dataclass instance: its type and its declared range.

    Fields annotated ``int``, ``float``, ``bool`` or ``str`` are checked; unions and containers
    are left to their owner. ``prefix`` names the table in errors (``"optim."``).

    Raises:
        ConfigError: the first field that is of the wrong type, not finite, or out of range.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        hint, value = hints[f.name], getattr(obj, f.name)
        key = f"'{prefix}{f.name}'" if prefix else f.name
        bounds = f.metadata.get(_RANGE)
        if hint in (int, float):
            check_number(value, key, integer=hint is int, bounds=bounds)
        elif hint is bool and not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        elif hint is str and not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
