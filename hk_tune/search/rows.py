"""What Tune's results say about each trial of a search, as typed rows: its configuration, its
score and last value, where its best evaluation was and its checkpoint, how it ended.

    rows, histories = trial_rows(space, result_grid)     # ranked: completed first, best first
    records = run_records(result_grid, space)            # a plain grid's runs (confirmation)

Trials are ranked completed first (an ASHA-stopped trial saw fewer steps), then by the score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hk_tune.config.space import SearchConfig
from hk_tune.tracking.names import run_name

STATUSES = ("completed", "stopped", "errored")


@dataclass
class TrialRow:
    """One trial of a search.

    Attributes:
        trial_id, name: Tune's trial id and the readable name (`hiddenkey r=0.1/0.05 λ=1`).
        status: one of STATUSES; "stopped" is early-stopped by the scheduler.
        params: flat params for tables and MLflow (every dropout key, the searched settings).
        sampled: parameter name -> value as the searcher sampled it (rebuilds the run).
        metric: the trial's score (`space.score`: its best evaluation, or its last); NaN when
            it reported none.
        last: the metric at its last evaluation.
        best_step: the step of its best evaluation (None before metric scoring).
        best_checkpoint: the folder of that evaluation's checkpoint, when kept.
        steps, time_s: how far it trained and how long it took.
        error: the end of its error, when it errored.
    """

    trial_id: str
    name: str
    status: str
    params: dict[str, Any]
    sampled: dict[str, Any]
    metric: float
    last: float
    best_step: int | None = None
    best_checkpoint: str | None = None
    steps: int = 0
    time_s: float = 0.0
    error: str | None = None

    def public(self) -> dict[str, Any]:
        """The row as tables, MLflow and summary.json show it: flat params first, then the
        numbers and the trial's identity (no sampled names, checkpoint or traceback)."""
        return {**self.params, "metric": self.metric, "last": self.last,
                "best_step": self.best_step, "trial_id": self.trial_id, "name": self.name,
                "status": self.status, "steps": self.steps, "time_s": self.time_s}


@dataclass
class RunRecord:
    """One run of a plain grid experiment (configs {"params": ..., "seed": n}).

    Attributes:
        value: its score (`space.score`); last: the metric at its last evaluation.
        history: one dict of numbers per evaluation; final: the last numbers reported.
    """

    params: dict[str, Any]
    seed: int | None
    trial_id: str
    status: str
    error: str | None
    value: float | None
    last: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)


def trial_rows(space: SearchConfig, result_grid) -> tuple[list[TrialRow], dict[str, list]]:
    """One row per trial, ranked, and each trial's history (one dict per evaluation)."""
    from ray.tune.utils import flatten_dict

    rows, histories = [], {}
    for result in result_grid:
        metrics = result.metrics or {}
        trial_id, status, error = _outcome(result)
        sampled = flatten_dict(result.config or {}, delimiter="/")
        params = space.trial_params(sampled)
        histories[trial_id] = _history(result)
        best_step = metrics.get("best_step")
        rows.append(TrialRow(
            trial_id=trial_id, name=run_name(params), status=status, params=params,
            sampled=sampled, metric=_number(metrics.get(space.score)),
            last=_number(metrics.get(space.metric)), best_step=best_step,
            best_checkpoint=checkpoint_at(result, best_step), steps=metrics.get("step", 0),
            time_s=round(float(metrics.get("time_total_s", 0.0)), 1), error=error))
    return rank(rows, space.mode), histories


def run_records(result_grid, space: SearchConfig) -> list[RunRecord]:
    """One record per run of a plain grid experiment."""
    records = []
    for result in result_grid:
        config, metrics = result.config or {}, result.metrics or {}
        trial_id, status, error = _outcome(result)
        records.append(RunRecord(
            params=config.get("params", {}), seed=config.get("seed"), trial_id=trial_id,
            status=status, error=error, value=metrics.get(space.score),
            last=metrics.get(space.metric), history=_history(result),
            final={k: v for k, v in metrics.items() if _is_number(v)}))
    return records


def trial_status(metrics: dict[str, Any]) -> str:
    """"completed" when the run reached its step budget, else "stopped" (by the scheduler)."""
    total = metrics.get("total_steps")
    return "completed" if total is not None and metrics.get("step", 0) >= total else "stopped"


def rank(rows: list[TrialRow], mode: str) -> list[TrialRow]:
    """Completed trials first, each group best score first; errored and NaN last. A tie goes
    to the baseline (a dropout configuration that only ties it has not beaten it), then by
    name: the same trials rank alike in every run of a search, and after a resume, whose
    saved trials come back in another order (and whose picks for confirmation must match)."""
    sign = -1.0 if mode == "max" else 1.0

    def key(row: TrialRow) -> tuple:
        missing = row.metric is None or math.isnan(row.metric)
        group = {"completed": 0, "stopped": 1}.get(row.status, 2)
        return (missing, group, sign * (row.metric if not missing else 0.0),
                row.name != "baseline", row.name, row.trial_id)

    return sorted(rows, key=key)


def checkpoint_at(result, step: Any) -> str | None:
    """The path of the trial's kept checkpoint from the evaluation at `step`: one Tune kept
    (the `inprocess` executor), or the Ray Train run's named in that evaluation's report
    (`checkpoint_path`, the `train` executor)."""
    if step is None:
        return None
    for checkpoint, metrics in getattr(result, "best_checkpoints", None) or []:
        if metrics.get("step") == step:
            return checkpoint.path
    frame = result.metrics_dataframe
    for row in [] if frame is None else frame.to_dict("records"):
        if row.get("step") == step and isinstance(row.get("checkpoint_path"), str):
            return row["checkpoint_path"]
    return None


def _outcome(result) -> tuple[str, str, str | None]:
    """A Tune result's trial id, status (completed, stopped or errored) and error (its end)."""
    metrics = result.metrics or {}
    trial_id = metrics.get("trial_id") or Path(result.path).name
    if result.error is not None:
        return trial_id, "errored", str(result.error)[-500:]
    return trial_id, trial_status(metrics), None


def _history(result) -> list[dict[str, Any]]:
    """A run's evaluations, numbers only, one per step: a trial restarted in its own process
    reports again the evaluations after its last registered checkpoint; the later one stays."""
    frame = result.metrics_dataframe
    rows = [] if frame is None else frame.to_dict("records")
    by_step: dict[Any, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        row = {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
        by_step[row.get("step", f"row {index}")] = {k: v for k, v in row.items()
                                                    if _is_number(v)}
    return list(by_step.values())


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
