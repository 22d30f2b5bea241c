"""Search-space files: YAML + `key=value` overrides -> a validated `SearchConfig`, before Ray
starts.

    space = load_space("search_spaces/quickstart.yaml", ["optim.max_steps=50"])

The format is documented in `search_spaces/README.md`. Every value an entry can produce is
checked against `RunConfig` when the file is loaded, so a sampled configuration always builds;
errors name the file, the key and the allowed values.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hk_tune.config import fields
from hk_tune.config.files import parse_override, read_yaml, set_key
from hk_tune.config.run import SCALARS, SECTIONS, RunConfig
from hk_tune.config.sources import source_task
from hk_tune.config.space import (
    METRIC_SCOPES,
    OFF,
    TYPES,
    Entry,
    SearchConfig,
    is_position_switch,
    walk,
)
from hk_tune.config.study import check_study_storage
from hk_tune.config.warm_start import preset_point
from hk_tune.dropout.pattern import PATTERNS
from hk_tune.dropout.spec import POSITIONS, valid_keys
from hk_tune.errors import ConfigError
from hk_tune.tasks import metric_mode, selection_metric

EXECUTORS = ("auto", "train", "inprocess")
SCHEDULERS = ("none", "asha")
SETTINGS = ("fixed", "search", "metric", "metric_scope", "mode", "num_samples", "max_concurrent",
            "scheduler", "resources", "seed", "warm_start", "confirm", "executor", "name",
            "storage_path", "experiment", "time_budget_s", "stop", "optuna_storage")
STORAGE_ENV = "HK_TUNE_STORAGE_PATH"  # storage_path when neither the file nor overrides set it
# The MLflow experiment when the file sets none: MLflow's own variable, else hk_tune's default.
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "hk_tune"


def load_space(path: str | Path, overrides: Sequence[str] = ()) -> SearchConfig:
    """Reads, overrides and validates a search-space file; nothing is trained or started.

    Overrides `key=value` set top-level settings (`num_samples=20`, `confirm.seeds=5`,
    `resources.cpus_per_worker=2`) or fixed RunConfig keys (`data.source=my.csv`).

    Raises:
        ConfigError: naming the file, the key and the allowed values.
    """
    where = str(path)
    raw = read_yaml(path, "search space")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(raw).__name__}")
    raw.setdefault("name", Path(path).stem)
    return build_space(apply_space_overrides(raw, overrides, where), where)


def apply_space_overrides(raw: dict, overrides: Sequence[str], where: str) -> dict:
    """A copy of `raw` with each `key=value` applied (values parsed as YAML)."""
    raw = copy.deepcopy(raw)
    fixed = dict(fields.mapping(raw.get("fixed") or {}, f"{where}: fixed"))
    for override in overrides:
        key, value = parse_override(override, where)
        head, _, rest = key.partition(".")
        if head in ("search", "fixed"):
            raise ConfigError(f"{where}: override {key!r}: edit the file to change the search; "
                              "overrides set fixed keys (data.source=...) and settings")
        if head in SETTINGS:
            if rest:
                section = raw.get(head) or {}
                if not isinstance(section, dict):
                    section = {"type": section} if head == "scheduler" else {}
                raw[head] = {**section, rest: value}
            else:
                raw[head] = value
        else:
            fixed[key] = value
    raw["fixed"] = fixed
    return raw


def build_space(raw: dict[str, Any], where: str) -> SearchConfig:
    """Validates a parsed search-space mapping and returns the `SearchConfig`.

    Every value each entry can take is checked against `RunConfig`, and so is one point per
    value of every entry (its nested entries and fixed values included), so that any
    configuration the search can sample builds.

    Raises:
        ConfigError: an unknown key, a bad value, or a value `RunConfig` rejects.
    """
    unknown = [key for key in raw if key not in SETTINGS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {list(SETTINGS)}")
    fixed = fields.mapping(raw.get("fixed") or {}, f"{where}: fixed")
    for key in fixed:
        check_path(key, f"{where}: fixed")
    resources = fields.mapping(raw.get("resources") or {}, f"{where}: resources")
    allowed = ("num_workers", "cpus_per_worker", "gpus_per_worker")
    for key, value in resources.items():
        if key not in allowed:
            raise ConfigError(f"{where}: resources: unknown key {key!r}; allowed: {list(allowed)}")
        fixed[f"scaling.{key}"] = value
    if resources.get("gpus_per_worker"):
        fixed["scaling.use_gpu"] = True
    base = _fixed_config(fixed, where)
    entries = tuple(parse_entries(fields.mapping(raw.get("search") or {}, f"{where}: search"),
                                  f"{where}: search"))
    if not entries:
        raise ConfigError(f"{where}: search: empty; give at least one searched key, e.g. "
                          "dropout.attn_logits.rate: {type: grid, values: [0.05, 0.1]}; "
                          f"allowed types: {list(TYPES)}")
    _check_repeats(entries, where)
    for entry in walk(entries):
        for value in entry.candidates():
            _check_value(base, entry, value, where)

    task = source_task(base.data.source, base.data.task)
    metric, mode = _metric_and_mode(raw, fixed, task, where)
    fixed["metric"] = metric  # every trial tracks the best of the metric it is scored by
    base = dataclasses.replace(base, metric=metric)
    scheduler = raw.get("scheduler") or "none"
    scheduler = scheduler if isinstance(scheduler, dict) else {"type": scheduler}
    for key in scheduler:
        fields.choice(key, ("type", "grace_period", "reduction_factor"), f"{where}: scheduler key")
    fields.choice(scheduler.get("type", "none"), SCHEDULERS, f"{where}: scheduler")
    confirm = fields.mapping(raw.get("confirm") or {}, f"{where}: confirm")
    for key in confirm:
        fields.choice(key, ("top_k", "seeds"), f"{where}: confirm key")
    warm_start = raw.get("warm_start") or []
    if not isinstance(warm_start, list) or not all(isinstance(p, str) for p in warm_start):
        raise ConfigError(f"{where}: warm_start: expected a list of preset names, got "
                          f"{warm_start!r}")
    space = SearchConfig(
        file=where,
        fixed=fixed,
        base=base,
        entries=entries,
        metric=metric,
        mode=mode,
        metric_scope=fields.choice(raw.get("metric_scope", "best"), METRIC_SCOPES,
                             f"{where}: metric_scope"),
        num_samples=fields.integer(raw.get("num_samples", 8), f"{where}: num_samples", 1),
        max_concurrent=None if raw.get("max_concurrent") is None else fields.integer(
            raw["max_concurrent"], f"{where}: max_concurrent", 1),
        scheduler=scheduler.get("type", "none"),
        grace_period=fields.integer(scheduler.get("grace_period", 1),
                                    f"{where}: scheduler.grace_period", 1),
        reduction_factor=fields.integer(scheduler.get("reduction_factor", 2),
                                  f"{where}: scheduler.reduction_factor", 2),
        resources={k: float(v) for k, v in resources.items()},
        seed=fields.seed(raw.get("seed", 0), f"{where}: seed"),
        warm_start=tuple(warm_start),
        warm_start_points=tuple(preset_point(entries, where, preset) for preset in warm_start),
        confirm_top_k=fields.integer(confirm.get("top_k", 0), f"{where}: confirm.top_k", 0),
        confirm_seeds=fields.integer(confirm.get("seeds", 0), f"{where}: confirm.seeds", 0),
        executor=fields.choice(raw.get("executor", "auto"), EXECUTORS, f"{where}: executor"),
        name=fields.coerce(raw.get("name"), str, where, "name"),
        # From the file or an override, else the environment (a cluster's shared storage).
        storage_path=str(raw.get("storage_path") or os.environ.get(STORAGE_ENV, "hk_tune_runs")),
        experiment=_experiment(raw.get("experiment"), where),
        time_budget_s=_budget(raw.get("time_budget_s"), where),
        stop=None if raw.get("stop") is None else fields.number(raw["stop"], f"{where}: stop"),
        optuna_storage=check_study_storage(raw.get("optuna_storage"), where),
    )
    RunConfig.from_dict({**space.raw_config({}), "name": space.name}, where=where)
    for point in space.warm_start_points:
        RunConfig.from_dict(space.raw_config(point), where=f"{where}: warm_start")
    for point in branch_points(entries):
        RunConfig.from_dict(space.raw_config(point), where=f"{where}: search")
    return space


def _budget(value: Any, where: str) -> float | None:
    """Seconds the search may run before Tune stops starting and running trials; None: no
    limit."""
    if value is None:
        return None
    seconds = fields.number(value, f"{where}: time_budget_s")
    if seconds <= 0:
        raise ConfigError(f"{where}: time_budget_s: {value!r} is not allowed; allowed: seconds "
                          "> 0, or null for no limit")
    return seconds


def _experiment(value: Any, where: str) -> str:
    """The MLflow experiment: the file's `experiment`, else MLFLOW_EXPERIMENT_NAME, else
    hk_tune. MLflow names are free text up to 500 characters; an empty one is refused."""
    if value is None:
        value = os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT
    if not isinstance(value, str) or not value.strip() or len(value) > 500:
        raise ConfigError(f"{where}: experiment: {value!r}; allowed: a non-empty MLflow "
                          f"experiment name of at most 500 characters (default: "
                          f"${EXPERIMENT_ENV}, else {DEFAULT_EXPERIMENT!r})")
    return value


def branch_points(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """One point per value of every entry, nested entries included: the value taken, its
    branch's entries each at their own values in turn, every other entry at its first value.
    Together they take every choice and every fixed value under one."""
    points = [_complete(entries, {})]
    for entry in entries:
        for value in entry.candidates():
            for chosen in branch_points(entry.branches.get(value, ())) or [{}]:
                points.append(_complete(entries, {**chosen, entry.name: value}))
    return points


def _complete(entries: Sequence[Entry], chosen: dict[str, Any]) -> dict[str, Any]:
    """`chosen`, with every entry it leaves open at its first value, and the constants of the
    choices taken (as the search's define-by-run function returns them)."""
    point: dict[str, Any] = {}
    pending = list(entries)
    while pending:
        entry = pending.pop(0)
        value = chosen.get(entry.name, entry.candidates()[0])
        point[entry.name] = value
        pending += entry.branches.get(value, ())
        for path, constant in entry.constants.get(value, {}).items():
            point[path.replace(".", "/", 1)] = constant
    return point


def parse_entries(raw: dict[str, Any], where: str) -> list[Entry]:
    """Entries from a `search:` mapping (or a choice's nested mapping)."""
    return [parse_entry(path, spec, where) for path, spec in raw.items()]


def parse_entry(path: str, spec: Any, where: str) -> Entry:
    """One `path: {type: ..., ...}` entry; choices with nested entries become branches."""
    check_path(path, where)
    key = f"{where}.{path}"
    spec = fields.mapping(spec, key)
    kind = spec.get("type")
    fields.choice(kind, TYPES, f"{key}: type")
    allowed = {"float": ("low", "high", "step"), "log_float": ("low", "high"),
               "int": ("low", "high", "step"), "categorical": ("choices",),
               "grid": ("values",)}[kind]
    for name in spec:
        if name != "type" and name not in allowed:
            raise ConfigError(f"{key}: unknown key {name!r} for type {kind}; allowed: "
                              f"{['type', *allowed]}")
    if kind in ("float", "log_float", "int"):
        low, high = (fields.number(spec.get(end), f"{key}: {end}") for end in ("low", "high"))
        if not low < high:
            raise ConfigError(f"{key}: low {low!r} must be below high {high!r}")
        if kind == "log_float" and low <= 0:
            raise ConfigError(f"{key}: low {low!r}: a log_float range needs low > 0")
        step = spec.get("step")
        if step is not None:
            step = (fields.integer(step, f"{key}: step", 1) if kind == "int"
                    else fields.number(step, f"{key}: step"))
            if not 0 < step <= high - low:
                raise ConfigError(f"{key}: step {step!r}; allowed: a step above 0 and at most "
                                  f"high - low ({high - low:g})")
        return Entry(path, kind, low=low, high=high, step=step)
    if kind == "grid":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{key}: values: expected a non-empty list, got {values!r}")
        return Entry(path, kind, values=tuple(values))
    choices = spec.get("choices")
    if is_position_switch(path):  # YAML 1.1 reads a bare `off` as false
        if isinstance(choices, list):
            choices = [OFF if c is False else c for c in choices]
        elif isinstance(choices, dict):
            choices = {OFF if c is False else c: v for c, v in choices.items()}
    if isinstance(choices, (list, dict)) and len(set(map(repr, choices))) < len(choices):
        raise ConfigError(f"{key}: choices: {choices!r} names a choice twice; allowed: "
                          "distinct choices")
    if isinstance(choices, list) and choices:
        return Entry(path, kind, values=tuple(choices))
    if not isinstance(choices, dict) or not choices:
        raise ConfigError(f"{key}: choices: expected a list or a mapping of choice -> "
                          f"conditional entries, got {choices!r}")
    branches, constants = {}, {}
    for choice, nested in choices.items():
        nested = fields.mapping(nested or {}, f"{key}: choices.{choice}")
        searched = {p: s for p, s in nested.items() if isinstance(s, dict)}
        branches[choice] = tuple(parse_entries(searched, f"{key}: choices.{choice}"))
        constants[choice] = {p: v for p, v in nested.items() if not isinstance(v, dict)}
        for constant_path in constants[choice]:
            check_path(constant_path, f"{key}: choices.{choice}")
    return Entry(path, kind, values=tuple(choices), branches=branches, constants=constants)


def check_path(path: str, where: str) -> None:
    """Raises unless `path` is a dotted RunConfig key (or a position switch)."""
    head, _, rest = path.partition(".")
    sections = [f.name for f in dataclasses.fields(RunConfig)]
    if head not in sections:
        raise ConfigError(f"{where}: unknown key {path!r}; allowed: dotted RunConfig keys "
                          f"starting with {sections}")
    if head == "dropout":
        allowed = [*valid_keys(), *POSITIONS]
    elif head in SECTIONS:
        allowed = [f.name for f in dataclasses.fields(SECTIONS[head])]
    else:
        allowed = []
    if head in SCALARS and rest:
        raise ConfigError(f"{where}: unknown key {path!r}; {head} is a plain value")
    if head == "model" and not rest:
        return
    if rest and rest not in allowed or (not rest and head not in SCALARS):
        raise ConfigError(f"{where}: unknown key {path!r}; allowed: "
                          f"{[f'{head}.{key}' for key in allowed]}")


# -- helpers -----------------------------------------------------------------------------------


def _fixed_config(fixed: dict[str, Any], where: str) -> RunConfig:
    raw: dict[str, Any] = {}
    for path, value in fixed.items():
        set_key(raw, path, value, f"{where}: fixed")
    return RunConfig.from_dict(raw, where=f"{where}: fixed")


def _check_value(base, entry: Entry, value: Any, where: str) -> None:
    """Builds a RunConfig with `value` at `entry.path` on top of the fixed ones."""
    key = f"{where}: search.{entry.path}"
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise ConfigError(f"{key}: {value!r}: values must be strings, numbers or booleans")
    raw = base.to_dict()
    if is_position_switch(entry.path):
        fields.choice(value, (OFF, *PATTERNS), f"{key}: choice")
        if value != OFF:
            raw["dropout"][f"{entry.path.split('.', 1)[1]}.pattern"] = value
    else:
        set_key(raw, entry.path, value, where)
    try:
        RunConfig.from_dict(raw, where=where)
    except ConfigError as error:
        # RunConfig names the file and the dotted key already; say it is a searched value.
        reason = str(error).removeprefix(f"{where}: ")
        raise ConfigError(f"{key}: the searched value {value!r} is not allowed: {reason}"
                          ) from None


def _check_repeats(entries: Sequence[Entry], where: str) -> None:
    """A path under several choices must be searched the same way (one Optuna distribution)."""
    seen: dict[str, Entry] = {}
    for entry in walk(entries):
        other = seen.setdefault(entry.path, entry)
        if other is not entry and (other.type, other.low, other.high, other.step,
                                   other.values) != (entry.type, entry.low, entry.high,
                                                     entry.step, entry.values):
            raise ConfigError(f"{where}: search.{entry.path}: appears under several choices "
                              "with different ranges; give it the same one everywhere")


def _metric_and_mode(raw: dict, fixed: dict, task: str | None, where: str) -> tuple[str, str]:
    """The metric a search scores trials by and its direction, checked against what the task's
    evaluations report, before anything runs.

    Raises:
        ConfigError: a metric the task does not report, or a mode against its direction.
    """

    metric = raw.get("metric") or fixed.get("metric")
    if metric is not None and not isinstance(metric, str):
        raise ConfigError(f"{where}: metric: expected a string such as 'eval_accuracy', got "
                          f"{metric!r}")
    if fixed.get("metric") not in (None, metric):
        raise ConfigError(f"{where}: fixed: metric {fixed['metric']!r} differs from the "
                          f"search's metric {metric!r}; set it once, as `metric:`")
    if task is None:  # a local source without data.task: the check before Ray refuses it
        return metric or "eval_loss", raw.get("mode") or "min"
    try:
        metric = selection_metric(task, metric)
    except ValueError as error:
        raise ConfigError(f"{where}: metric: {error}") from None
    known = metric_mode(metric)
    mode = raw.get("mode") or known
    fields.choice(mode, ("max", "min"), f"{where}: mode")
    if mode != known:
        raise ConfigError(f"{where}: mode: {mode!r} is not allowed for {metric}, where "
                          f"{'higher' if known == 'max' else 'lower'} is better; allowed: "
                          f"{known!r} (or leave mode out)")
    return metric, mode
