"""A task as the training loop takes it: loaded and checked rows with their labels
(`hk_tune.train.data.load_task` makes it, `hk_tune.train.encoding.tokenize` reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset


@dataclass
class TaskData:
    """A loaded, checked task.

    Attributes:
        task: one of TASKS.
        num_labels: classes for classification; 1 for regression; 0 for causal_lm.
        label_names: class names in id order; () for regression and causal_lm.
        train, eval: normalized rows: text (+ text_pair) + label, or prompt + target.
    """

    task: str
    num_labels: int
    label_names: tuple[str, ...]
    train: Dataset
    eval: Dataset
