"""hk_tune's values as MLflow params, metrics and tags, within MLflow's limits."""

from __future__ import annotations

import numbers
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

MAX_VALUE = 5000  # characters; below MLflow's 6000 (params) and 8000 (tags)
BATCH = 100  # MLflow takes at most 100 params or tags per log_batch
METRIC_BATCH = 1000  # and at most 1000 metrics
# Keys of a history row that are its step, not a metric.
STEP_KEYS = ("step", "training_iteration")


# hk_tune's trial status -> MLflow's run status.
STATUSES = {"completed": "FINISHED", "stopped": "KILLED", "errored": "FAILED"}


def metrics(
    values: Mapping[str, Any], step: int, timestamp: int, skip: tuple[str, ...] = ()
) -> list:
    """`mlflow.entities.Metric`s of the numeric values; anything else is left out."""
    from mlflow.entities import Metric

    return [
        Metric(key_of(key), float(value), timestamp, int(step))
        for key, value in values.items()
        if key not in skip and is_number(value)
    ]


def tags(values: Mapping[str, Any]) -> list:
    """`mlflow.entities.RunTag`s, values cut to `MAX_VALUE` characters."""
    from mlflow.entities import RunTag

    return [RunTag(key, str(value)[:MAX_VALUE]) for key, value in values.items()]


def params(values: Mapping[str, Any]) -> list:
    """`mlflow.entities.Param`s, keys made valid and values cut to `MAX_VALUE` characters."""
    from mlflow.entities import Param

    return [Param(key_of(key), str(value)[:MAX_VALUE]) for key, value in values.items()]


def flat(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Nested settings as dotted keys with text values: {"optim": {"lr": 1e-3}} -> optim.lr."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", str(value)


def step_of(row: Mapping[str, Any], index: int) -> int:
    """A history row's step: its `step` or `training_iteration`, else its position from 1."""
    for key in STEP_KEYS:
        if is_number(row.get(key)):
            return int(row[key])
    return index + 1


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def key_of(name: object) -> str:
    # MLflow accepts letters, digits, _ - . / : and space in param and metric names.
    return re.sub(r"[^/\w.\- :]", "_", str(name))[:250]


def now_ms() -> int:
    return int(time.time() * 1000)


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
