"""What a finished search says: the best configuration as a `hk-tune train` YAML, parameter
importances, the summary (`summary.json`, what `hk-tune best` prints) and the `--json` line.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hk_tune import storage
from hk_tune.config.files import write_yaml
from hk_tune.config.space import SearchConfig
from hk_tune.errors import ConfigError
from hk_tune.search.rows import TrialRow
from hk_tune.search.space import distributions as space_distributions

SUMMARY = "summary.json"
BEST_CONFIG = "best_config.yaml"


@dataclass
class SearchSummary:
    """A finished search, as `summary.json` holds it.

    Attributes:
        name, path, space_file: the search, its folder and the space file it ran.
        metric, metric_scope, score, mode: what trials were scored by (`SearchConfig.score`).
        results: the ranked trials (`TrialRow.public()` with the error's last line).
        best: the winner: trial_id, name, metric (its score), last, best_step, checkpoint
            (its best evaluation's, for `hk-tune export`) and params.
        best_config, best_config_path, best_config_uri: the winner as a run config, the local
            YAML `hk-tune train` takes, and the search folder's copy when that is a URI.
        overfitting: which completed trials' eval loss turned (`hk_tune.search.overfit`).
        confirmation: the seed confirmation (`hk_tune.search.confirm.summarize`), or None.
        importances: parameter -> PED-ANOVA importance (`importances`).
        parent_run_id, experiment_id, tracking_uri, tracking_gaps: where MLflow has it, and
            what an outage kept out.
        timings_s: where the search's wall time went.
    """

    name: str
    path: str
    space_file: str
    metric: str
    metric_scope: str
    score: str
    mode: str
    results: list[dict[str, Any]]
    best: dict[str, Any]
    best_config: dict[str, Any]
    best_config_path: str
    best_config_uri: str | None = None
    overfitting: dict[str, Any] = field(default_factory=dict)
    confirmation: dict[str, Any] | None = None
    importances: dict[str, float] = field(default_factory=dict)
    parent_run_id: str | None = None
    experiment_id: str | None = None
    tracking_uri: str | None = None
    tracking_gaps: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SearchSummary:
        """A summary as written; keys a summary of an older hk_tune lacks take defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        raw = {k: v for k, v in raw.items() if k in names}
        raw.setdefault("metric_scope", "last")
        raw.setdefault("score", raw.get("metric"))
        return cls(**raw)


def public_rows(rows: list[TrialRow]) -> list[dict[str, Any]]:
    """The summary's rows: an errored trial's row says why, in the error's last line (the
    exception the trial raised, e.g. `hk_tune.errors.DivergedError: step 3: loss is nan; ...`;
    the traceback above it is in the trial's error.txt)."""
    return [{**row.public(), "error": _last_line(row.error)} for row in rows]


def best_of(row: TrialRow) -> dict[str, Any]:
    """The summary's `best`: the winning trial."""
    return {"trial_id": row.trial_id, "name": row.name, "metric": row.metric, "last": row.last,
            "best_step": row.best_step, "checkpoint": row.best_checkpoint,
            "params": row.params}


# PED-ANOVA compares where the top trials' values lie with where all trials' lie, per parameter,
# over the trials that have it (condPED-ANOVA), so a rate or λ that exists only under one choice
# of its switch is assessed too; fANOVA and mean decrease impurity see only the parameters that
# every trial has. It needs a few trials in the top quantile.
MIN_TOP_TRIALS = 2
MIN_TRIALS = 4


def importances(space: SearchConfig, rows: list[TrialRow]) -> dict[str, float]:
    """PED-ANOVA importance (Optuna's default evaluator) of each searched parameter, conditional
    ones included (dotted path -> share), from the trials with a metric; {} when there are
    too few trials to say."""
    import warnings

    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = space_distributions(space)
    study = optuna.create_study(direction="maximize" if space.mode == "max" else "minimize")
    for row in rows:
        if row.metric is None or math.isnan(row.metric):
            continue
        params = {k: v for k, v in row.sampled.items() if k in distributions}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: distributions[k] for k in params},
            value=row.metric))
    scored = len(study.trials)
    if scored < MIN_TRIALS:
        return {}
    # The top quantile holds at least MIN_TOP_TRIALS trials, and at most half of them.
    quantile = min(0.5, max(0.1, MIN_TOP_TRIALS / scored))
    evaluator = PedAnovaImportanceEvaluator(target_quantile=quantile)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "importances will be equal": reported as {} below
            found = get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError):
        return {}
    if len(set(found.values())) <= 1:  # all equal: PED-ANOVA could tell no parameter apart
        return {}
    return {name.replace("/", ".", 1): float(value) for name, value in found.items()}


def describe_score(space: SearchConfig, row: TrialRow) -> str:
    """A trial's score in words: `best eval_accuracy 0.7667 at step 40, last 0.7533`, or the
    last value alone under `metric_scope: last`."""
    if space.metric_scope == "last":
        return f"last {space.metric} {_fmt(row.metric)}"
    return (f"best {space.metric} {_fmt(row.metric)} at step {row.best_step}, "
            f"last {_fmt(row.last)}")


def best_run_config(space: SearchConfig, sampled: dict[str, Any], name: str) -> dict[str, Any]:
    """The winner as a complete `RunConfig` dict that `hk-tune train` accepts."""
    out = dataclasses.replace(space.trial_config(sampled), name=name).to_dict()
    out["storage_path"] = space.storage_path
    return out


def local_best_config_path(name: str) -> Path:
    """Where a search with remote storage also puts its best configuration: the working
    folder, named after the search, since `hk-tune train` reads local files."""
    return Path.cwd() / f"{name}_{BEST_CONFIG}"


def write_best_config(path: str | Path, config: dict[str, Any], header: str) -> None:
    """The `hk-tune train` YAML, under `header` as comments (a local path or a URI)."""
    write_yaml(path, config, header)


def write_summary(folder: str, summary: SearchSummary) -> None:
    storage.write_text(storage.join(folder, SUMMARY),
                       json.dumps(summary.to_dict(), indent=1, sort_keys=True, default=str))


def read_summary(folder: str) -> SearchSummary:
    """The summary of the finished search in `folder` (a local path or a URI)."""
    path = storage.join(storage.resolve(folder), SUMMARY)
    if not storage.exists(path):
        raise ConfigError(f"{folder}: no finished search here (no {SUMMARY}); "
                          "give the search's folder, e.g. hk_tune_runs/quickstart")
    try:
        return SearchSummary.from_dict(json.loads(storage.read_text(path)))
    except (ValueError, TypeError, KeyError) as error:  # empty, cut short, or not hk_tune's
        raise ConfigError(f"{path}: not a summary hk_tune wrote ({type(error).__name__}: "
                          f"{str(error)[:120]}); `hk-tune resume {folder}` writes it "
                          "again") from None


def json_line(summary: SearchSummary) -> str:
    """The `--json` line: best config, metric, its score key and value (with the step of the
    best evaluation), median, number of trials, path."""
    winner = (summary.confirmation or {}).get("winner") or {}
    return json.dumps({
        "best_config": summary.best_config, "best_config_path": summary.best_config_path,
        "metric": summary.metric, "mode": summary.mode, "value": summary.best["metric"],
        "score": summary.score, "best_step": summary.best.get("best_step"),
        "median": winner.get("median"), "num_trials": len(summary.results),
        "path": summary.path, "name": summary.best["name"],
    }, sort_keys=True, default=str)


def format_table(rows: list[dict], metric: str, limit: int = 20, scope: str = "best") -> str:
    """The ranked trials: rank, configuration, score (the best evaluation and its step, or the
    last), the metric at the last evaluation, steps, time, status."""
    if scope == "best":
        header = ["#", "configuration", f"best {metric}", "at step", "last", "steps", "time_s",
                  "status"]
    else:
        header = ["#", "configuration", f"last {metric}", "steps", "time_s", "status"]
    lines = []
    for i, row in enumerate(rows[:limit]):
        score = [_fmt(row.get("metric"))]
        if scope == "best":
            step = row.get("best_step")
            score += ["-" if step in (None, -1) else str(step), _fmt(row.get("last"))]
        lines.append([str(i + 1), row["name"], *score, str(row.get("steps", "")),
                      _fmt(row.get("time_s"), 1), row["status"]])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) if i == 1 else h.rjust(w)
                     for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    for line in lines:
        out.append("  ".join(c.ljust(w) if i == 1 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(line, widths, strict=True))))
    return "\n".join(out)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _last_line(text: str | None) -> str | None:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else None
