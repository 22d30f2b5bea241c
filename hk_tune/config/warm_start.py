"""The paper's presets (Table 1 rows) as points of a search space: the warm start a search
evaluates first, in the space's own parameter names."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hk_tune.config.space import OFF, Entry, is_position_switch
from hk_tune.dropout.spec import PRESETS
from hk_tune.errors import ConfigError


def preset_point(entries: Sequence[Entry], file: str, preset: str) -> dict[str, Any]:
    """A preset of the paper's Table 1 in the parameter names of a space's `entries`.

    Dropout entries take the preset's values (its rates, 0.1 and λ = 1, moved to the nearest
    value the entry allows); other entries take their middle value. Raises `ConfigError`,
    naming `file`, when the space cannot express the preset (e.g. it has no switch for one of
    its positions).
    """
    where = f"{file}: warm_start"
    if preset not in PRESETS:
        raise ConfigError(f"{where}: unknown preset {preset!r}; allowed: {sorted(PRESETS)}")
    flat = PRESETS[preset].to_dict()
    point: dict[str, Any] = {}
    pending = list(entries)
    while pending:
        entry = pending.pop(0)
        key = entry.path.removeprefix("dropout.")
        if is_position_switch(entry.path):
            wanted = OFF if flat[f"{key}.rate"] == 0 else flat[f"{key}.pattern"]
        elif entry.path.startswith("dropout.") and key in flat:
            wanted = flat[key]
        else:
            wanted = None
        value = closest(entry, wanted)
        if value not in entry.values and entry.type == "categorical":
            if is_position_switch(entry.path) or key.endswith((".pattern", "consistency.loss")):
                raise ConfigError(f"{where}: preset {preset!r} needs {entry.path} = {wanted!r}; "
                              f"allowed there: {list(entry.values)}")
            value = entry.values[0]  # a setting the preset leaves open, e.g. layers: auto
        point[entry.name] = value
        pending += entry.branches.get(value, ())
    return point


def closest(entry: Entry, wanted: Any) -> Any:
    """The value `entry` allows nearest to `wanted`; its middle value when nothing is wanted."""
    if entry.type == "categorical":
        return wanted if wanted is not None else entry.values[0]
    if entry.type == "grid":
        numbers = [v for v in entry.values if isinstance(v, (int, float))]
        if wanted is None or not isinstance(wanted, (int, float)) or not numbers:
            return wanted if wanted in entry.values else entry.values[len(entry.values) // 2]
        return min(numbers, key=lambda v: abs(v - wanted))
    if wanted is None:
        middle = (math.sqrt(entry.low * entry.high) if entry.type == "log_float"
                  else (entry.low + entry.high) / 2)
        return round(middle) if entry.type == "int" else middle
    return min(max(wanted, entry.low), entry.high)
