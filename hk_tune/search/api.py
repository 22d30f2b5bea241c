"""The search from Python: run one, or read a finished one, as typed results.

    from hk_tune.search import load_result, run_search

    result = run_search("search_spaces/quickstart.yaml", overrides=["num_samples=4"])
    result.best.name, result.best.score          # the winning trial
    result.best_config_path                      # the YAML `hk-tune train` takes
    result.adapter_path                          # its best evaluation's adapter (peft loads it)
    [(t.name, t.score, t.status) for t in result.trials]   # ranked
    result.confirmation.winner.median            # over the confirmation seeds
    load_result("hk_tune_runs/quickstart")       # the same, for a finished search's folder

`run_search` is `hk-tune search` without the command line: the same checks before Ray, local
Ray or a cluster's `address`, MLflow at `tracking_uri`, the same search folder and summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hk_tune.config.space_file import load_space
from hk_tune.search.results import SearchSummary, read_summary
from hk_tune.search.run import SearchOptions, search


@dataclass(frozen=True)
class Trial:
    """One trial, as ranked: `score` is what it was ranked by (its best evaluation of the
    metric, or its last under `metric_scope: last`), `last` the metric at its last evaluation."""

    trial_id: str
    name: str
    status: str  # completed, stopped (early, by the scheduler) or errored
    score: float | None
    last: float | None
    best_step: int | None
    steps: int
    time_s: float
    params: dict[str, Any]
    error: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Trial:
        known = {"metric", "last", "best_step", "trial_id", "name", "status", "steps", "time_s",
                 "error"}
        return cls(trial_id=row["trial_id"], name=row["name"], status=row["status"],
                   score=_number(row.get("metric")), last=_number(row.get("last")),
                   best_step=row.get("best_step"), steps=row.get("steps", 0),
                   time_s=row.get("time_s", 0.0), error=row.get("error"),
                   params={k: v for k, v in row.items() if k not in known})


@dataclass(frozen=True)
class Confirmed:
    """A configuration trained again with more seeds: its score per seed and their median."""

    trial_id: str
    name: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    median: float
    is_baseline: bool
    vs_baseline: dict[str, Any] | None  # gain, wins, losses, p_value (paired over seeds)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Confirmed:
        return cls(raw["trial_id"], raw["name"], tuple(raw["seeds"]), tuple(raw["values"]),
                   raw["median"], raw["is_baseline"], raw.get("vs_baseline"))


@dataclass(frozen=True)
class Confirmation:
    """The seed confirmation of the top trials; `winner` has the best median."""

    metric: str
    configurations: tuple[Confirmed, ...]
    winner: Confirmed
    baseline: Confirmed | None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Confirmation:
        rows = tuple(Confirmed.from_dict(row) for row in raw["configurations"])
        by_id = {row.trial_id: row for row in rows}
        baseline = raw.get("baseline")
        return cls(raw["metric"], rows, by_id[raw["winner"]["trial_id"]],
                   by_id[baseline["trial_id"]] if baseline else None)


@dataclass(frozen=True)
class SearchResult:
    """A finished search: its trials ranked, the winner (after confirmation, when the space
    confirms), the winner as a run config and where its adapter is, and where MLflow has it."""

    name: str
    folder: str
    metric: str
    mode: str
    trials: tuple[Trial, ...]
    best: Trial
    best_config: dict[str, Any]
    best_config_path: Path
    adapter_path: str | None  # the best evaluation's checkpoint: adapter + its peft config
    confirmation: Confirmation | None
    importances: dict[str, float]
    tracking_uri: str | None
    parent_run_id: str | None
    summary: SearchSummary = field(repr=False)  # everything summary.json holds

    @classmethod
    def from_summary(cls, summary: SearchSummary) -> SearchResult:
        trials = tuple(Trial.from_row(row) for row in summary.results)
        best = next(t for t in trials if t.trial_id == summary.best["trial_id"])
        return cls(summary.name, summary.path, summary.score, summary.mode, trials, best,
                   summary.best_config, Path(summary.best_config_path),
                   summary.best.get("checkpoint"),
                   Confirmation.from_dict(summary.confirmation) if summary.confirmation else None,
                   dict(summary.importances), summary.tracking_uri, summary.parent_run_id, summary)


def run_search(space: str | Path, overrides: Sequence[str] = (), address: str | None = None,
               tracking_uri: str | None = None) -> SearchResult:
    """Runs the search of the space file `space`, as `hk-tune search space *overrides` does.

    Args:
        overrides: `key=value` settings over the file (`num_samples=4`, `optim.lr=1e-3`).
        address: a running Ray cluster (`auto`, `ray://host:10001`); None starts local Ray.
        tracking_uri: the MLflow store; None is MLFLOW_TRACKING_URI, else ./mlflow.db.

    Raises:
        ConfigError: bad input (the file, a key, a value), before any compute.
    """
    loaded = load_space(space, list(overrides))
    options = SearchOptions(space_file=str(space), overrides=list(overrides), address=address,
                            tracking_uri=tracking_uri)
    return SearchResult.from_summary(search(loaded, options))


def load_result(path: str | Path) -> SearchResult:
    """The finished search in the folder `path` (`storage_path/name`, a local path or a URI)."""
    return SearchResult.from_summary(read_summary(str(path)))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
