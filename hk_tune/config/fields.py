"""The one validator every configuration value passes through: a YAML value checked against the
field's type hint, unknown keys refused with the allowed ones, ranges and choices named.

Types are checked where a mapping becomes a section (`section`); each section's
`__post_init__` checks its ranges with the helpers below, raising `ConfigError("key: ...")`,
which `section` prefixes with the file and the section. Every message names the file, the dotted
key and what is allowed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Iterable
from typing import Any

from hk_tune.errors import ConfigError


def section(cls: type, raw: Any, where: str, name: str) -> Any:
    """Builds the section dataclass `cls` from the mapping `raw` of the file `where`.

    Raises:
        ConfigError: `raw` is not a mapping; an unknown key (listing the allowed ones); a value
            of the wrong type; a value `cls` refuses. Each names `where` and `name.key`.
    """
    raw = mapping(raw, f"{where}: {name}")
    reject_unknown(raw, [f.name for f in dataclasses.fields(cls)], where, prefix=f"{name}.")
    hints = typing.get_type_hints(cls)
    values = {key: coerce(value, hints[key], where, f"{name}.{key}") for key, value in raw.items()}
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{where}: {name}.{error}") from None


def coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    """`value` in the type `hint` names (int, float, bool, str, tuple[X, ...], optional ones).

    A float field takes an int, and a string such as `1e-4`, which YAML 1.1 reads as text.
    """
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:  # tuple[str, ...]: YAML gives a list
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, args[0]) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: {key}: expected a list of {args[0].__name__}, got {value!r}")
    if hint is float:
        found = _as_number(value)
        ok, value = found is not None, value if found is None else found
    else:
        ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if not ok:
        expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
        raise ConfigError(f"{where}: {key}: expected {expected.get(hint, hint)}, got {value!r}")
    return value


def number(value: Any, where: str) -> float:
    """A finite number (int or float; a string such as `1e-4` too)."""
    found = _as_number(value)
    if found is None:
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return found


def _as_number(value: Any) -> float | None:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# The seeds numpy's generators take (torch's take more): every seed a run accepts reaches them.
MAX_SEED = 2**32 - 1


def integer(value: Any, where: str, minimum: int, maximum: int | None = None) -> int:
    """An integer of at least `minimum` (and at most `maximum`)."""
    if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
            or (maximum is not None and value > maximum)):
        allowed = f"an integer >= {minimum}" if maximum is None else (
            f"an integer from {minimum} to {maximum}")
        raise ConfigError(f"{where}: {value!r} is not allowed; use {allowed}")
    return value


def seed(value: Any, where: str) -> int:
    return integer(value, where, 0, MAX_SEED)


def choice(value: Any, allowed: Iterable, where: str) -> Any:
    """`value` when it is one of `allowed`."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not allowed; allowed: {allowed}")
    return value


def check_positive(obj: Any, *names: str) -> None:
    """Each named field of `obj` is None or > 0."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{name}: {value!r} is not allowed; use a number > 0")


def reject_unknown(raw: dict, allowed: list[str], where: str, prefix: str = "") -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'; allowed: {sorted(allowed)}")


def mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {value!r}")
    return dict(value)
