"""Configuration files: YAML read into plain values, `key=value` overrides applied to them, and
YAML written back under a header comment.

    raw = read_yaml("run.yaml", "config")
    raw = apply_overrides(raw, ["optim.lr=1e-4", "dropout=hiddenkey"], "run.yaml")
    write_yaml("best_config.yaml", config, header="The best configuration of ...")

Dotted keys address sections (`optim.lr`); dropout keys are flat under `dropout`
(`dropout.attn_logits.rate`), as a `DropoutSpec` takes them.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hk_tune import storage
from hk_tune.errors import ConfigError


def read_yaml(path: str | Path, what: str) -> Any:
    """The YAML document in `path` ({} for an empty file).

    Raises:
        ConfigError: one line naming the file: unreadable, or not YAML (with the line and
            column where the parser stopped).
    """
    import yaml

    where = str(path)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(f"{where}: cannot read the {what}: {reason}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}; allowed: a YAML mapping of "
                          "keys") from None
    return {} if raw is None else raw


def write_yaml(path: str | Path, data: Any, header: str = "") -> None:
    """Writes `data` as YAML to `path` (a local path or an object-store URI), under `header` as
    comment lines."""
    import yaml

    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    storage.write_text(path, comment + yaml.safe_dump(plain(data), sort_keys=False,
                                                      allow_unicode=True))


def parse_override(override: str, where: str) -> tuple[str, Any]:
    """`key=value` -> (key, value parsed as YAML, so `optim.lr=1e-4` is a number; text that is
    not YAML stays text)."""
    import yaml

    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"{where}: override {override!r} is not key=value")
    try:
        return key, yaml.safe_load(text)
    except yaml.YAMLError:
        return key, text


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], where: str) -> dict:
    """Returns a copy of `raw` with each `section.key=value` applied."""
    raw = copy.deepcopy(raw)
    for override in overrides:
        set_key(raw, *parse_override(override, where), where)
    return raw


def set_key(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Sets the dotted `key` (`optim.lr`, `dropout.attn_logits.rate`) in the nested config dict
    `raw`, in place. A string section is its short form (`model: minilm`, `dropout: hiddenkey`);
    dropout keys stay flat under `dropout`."""
    head, _, rest = key.partition(".")
    if not rest:
        raw[head] = value
        return
    section = raw.get(head)
    if head == "model" and isinstance(section, str):
        section = {"name": section}
    if head == "dropout" and isinstance(section, str):
        section = {"preset": section}
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: {head}: is {section!r}, not a section; cannot set {key}")
    section = flatten(section) if head == "dropout" else dict(section)
    section[rest] = value
    raw[head] = section


def flatten(section: dict, prefix: str = "") -> dict:
    """Nested mappings as one level of dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def plain(value: Any) -> Any:
    """`value` with numpy scalars, tuples and other oddities turned into YAML-safe builtins."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)
