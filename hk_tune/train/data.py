"""Tasks and their data: loading and checking rows, and (re-exported from
`hk_tune.train.encoding`) tokenizing and batching them. The `data:` section itself is
`hk_tune.config.sections.DataConfig`.

    cfg = DataConfig(source="reviews.csv", task="classification", text="review", label="stars")
    data = load_task(cfg)                        # every input problem is a ConfigError here
    train, eval = tokenize(data, tokenizer, cfg.max_length)
    loader = DataLoader(train, batch_size=16, collate_fn=partial(collate, pad_token_id=pad_id))

Normalized columns: text (+ text_pair) + label for classification (int class id) and regression
(float), prompt + target for causal_lm. `datasets` is imported only when data is loaded, so parsing
a config stays cheap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hk_tune.config.sections import DataConfig
from hk_tune.config.sources import BUNDLED, GLUE, is_local
from hk_tune.errors import ConfigError
from hk_tune.tasks import IGNORE_INDEX, TASKS
from hk_tune.train.encoding import collate, ensure_pad_token, tokenize
from hk_tune.train.sources import Splits, read_splits
from hk_tune.train.task import TaskData

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "BUNDLED", "GLUE", "IGNORE_INDEX", "TASKS", "ConfigError", "DataConfig", "TaskData",
    "collate", "ensure_pad_token", "load_task", "tokenize",
]



def load_task(cfg: DataConfig) -> TaskData:
    """Loads the rows `cfg` names and checks them, before any model is built.

    Args:
        cfg: the data config.

    Returns:
        The task, its labels and normalized train/eval rows (subsampled if the config says so).

    Raises:
        ConfigError: missing file, unknown format or source, hub unreachable, missing column
            (listing those that exist), empty split, unknown string label or class id outside
            num_labels, missing text, non-numeric regression target. One line, naming the source,
            the key and the allowed values.
    """
    if cfg.task is None and is_local(cfg.source):
        raise ConfigError(f"data.task is required for local source {cfg.source!r}; allowed: "
                          f"{', '.join(TASKS)}")
    splits = read_splits(cfg)
    task = splits.schema.task if cfg.task is None else cfg.task
    if task != splits.schema.task:
        raise ConfigError(f"data.task={cfg.task!r} does not match {splits.name}, which is a "
                          f"{splits.schema.task} task; leave data.task unset")
    if task != "classification" and cfg.label_names is not None:
        raise ConfigError(f"data.label_names applies to classification only, not {task} "
                          f"({splits.name})")
    parts = {"train": splits.train, "eval": splits.eval}
    for part, rows in parts.items():
        _check_columns(rows, splits, part)

    label_names: tuple[str, ...] = ()
    if task == "classification":
        # Inferred from the full splits, so a small subsample can't lose a class.
        label_names = _class_names(splits, [r for p in parts.values() for r in _column(p, splits)])
    limits = {"train": cfg.max_train_samples, "eval": cfg.max_eval_samples}
    normalized = {
        part: _normalize(_subset(rows, limits[part], cfg.seed), task, label_names, splits, part)
        for part, rows in parts.items()
    }
    if task == "classification":
        _check_classes(label_names, normalized["train"]["label"], splits)
    num_labels = {"classification": len(label_names), "regression": 1, "causal_lm": 0}[task]
    return TaskData(task, num_labels, label_names, normalized["train"], normalized["eval"])


def _column(rows: Dataset, splits: Splits) -> list:
    return list(rows[splits.schema.columns["label"]])


def _check_columns(rows: Dataset, splits: Splits, part: str) -> None:
    for role, column in splits.schema.columns.items():
        if column not in rows.column_names:
            raise ConfigError(f"data.{role}={column!r} is not a column of {splits.name} ({part} "
                              f"split); columns: {', '.join(rows.column_names)}")
    if len(rows) == 0:
        key = "train_split" if part == "train" else "eval_split"
        raise ConfigError(f"data.{key}: the {part} split of {splits.name} is empty; allowed: a "
                          "split with at least one row")


def _subset(rows: Dataset, limit: int | None, seed: int) -> Dataset:
    if limit is None or limit >= len(rows):
        return rows
    return rows.shuffle(seed=seed).select(range(limit))


def _class_names(splits: Splits, values: list) -> tuple[str, ...]:
    if splits.schema.label_names:
        return splits.schema.label_names
    present = [v for v in values if v is not None and not _is_nan(v)]
    if any(isinstance(v, str) for v in present):
        return tuple(sorted({str(v) for v in present}))
    ids = [_class_id(v, None, splits, "train/eval") for v in present]
    if not ids:
        raise ConfigError(f"data.label={splits.schema.columns['label']!r}: no labels in "
                          f"{splits.name}")
    return tuple(str(i) for i in range(max(ids) + 1))


def _check_classes(names: tuple[str, ...], values: list, splits: Splits) -> None:
    """Refuses a classification set whose labels are all one class: there is nothing to learn,
    and accuracy would be 1.0 from the first step."""
    present = set(values)  # class ids, as training sees them
    if len(names) < 2 or len(present) < 2:
        only = [names[i] for i in sorted(present)][:1]
        raise ConfigError(f"data.label={splits.schema.columns['label']!r}: the training rows of "
                          f"{splits.name} hold one class only ({only}); allowed: labels of at "
                          "least two classes (or task: regression for scores)")


def _class_id(value: Any, names: tuple[str, ...] | None, splits: Splits, where: str) -> int:
    """A class id from a string label (looked up in names) or an integral number."""
    key = f"data.label={splits.schema.columns['label']!r}"
    if isinstance(value, str) and names is not None and value in names:
        return names.index(value)
    if (isinstance(value, (str, bool)) or not isinstance(value, (int, float))
            or (isinstance(value, float) and not value.is_integer())):
        allowed = list(names) if names is not None else "class ids 0, 1, ..."
        raise ConfigError(f"{key}: label {value!r} in {splits.name} ({where}) is not one of "
                          f"{allowed}; set data.label_names, or use task: regression for scores")
    number = int(value)
    if number < 0:
        raise ConfigError(f"{key}: class id {number} in {splits.name} ({where}) is negative; "
                          "class ids count from 0")
    if names is not None and number >= len(names):
        raise ConfigError(f"{key}: class id {number} in {splits.name} ({where}) is outside "
                          f"0..{len(names) - 1} (num_labels={len(names)})")
    return number


def _normalize(rows: Dataset, task: str, label_names: tuple[str, ...], splits: Splits,
               part: str) -> Dataset:
    from datasets import Dataset, Features, Value

    columns = {}
    for role in ("text", "text_pair", "prompt", "target"):
        if role in splits.schema.columns:
            columns[role] = [_text(v, role, i, splits, part)
                             for i, v in enumerate(rows[splits.schema.columns[role]])]
    features = {role: Value("string") for role in columns}
    if task != "causal_lm":
        values = _column(rows, splits)
        if task == "classification":
            columns["label"] = [_class_id(_present(v, i, splits, part), label_names, splits,
                                          f"{part} split, row {i}")
                                for i, v in enumerate(values)]
            features["label"] = Value("int64")
        else:
            columns["label"] = [_score(v, i, splits, part) for i, v in enumerate(values)]
            features["label"] = Value("float32")
    return Dataset.from_dict(columns, features=Features(features))


def _text(value: Any, role: str, row: int, splits: Splits, part: str) -> str:
    if value is None or _is_nan(value):
        raise ConfigError(f"data.{role}={splits.schema.columns[role]!r}: empty value in "
                          f"{splits.name} ({part} split, row {row})")
    return value if isinstance(value, str) else str(value)


def _present(value: Any, row: int, splits: Splits, part: str) -> Any:
    if value is None or _is_nan(value):
        raise ConfigError(f"data.label={splits.schema.columns['label']!r}: missing label in "
                          f"{splits.name} ({part} split, row {row})")
    return value


def _score(value: Any, row: int, splits: Splits, part: str) -> float:
    """A regression target: a finite number, or a string that parses as one."""
    _present(value, row, splits, part)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ConfigError(f"data.label={splits.schema.columns['label']!r}: regression target "
                          f"{value!r} in {splits.name} ({part} split, row {row}) is not a finite "
                          "number")
    return number


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
