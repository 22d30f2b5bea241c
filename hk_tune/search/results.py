"""What a finished search says: ranked trials, the best configuration as a `hk-tune train` YAML,
fANOVA importances, the summary `hk-tune best` prints and the `--json` line.

Trials are ranked completed first (an ASHA-stopped trial saw fewer steps), then by the metric.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hk_tune.search.space import Space
from hk_tune.train import storage

SUMMARY = "summary.json"
BEST_CONFIG = "best_config.yaml"


def trial_rows(space: Space, result_grid) -> tuple[list[dict], dict[str, list]]:
    """One row per trial and each trial's history (one dict per evaluation, with `step`).

    A row holds the flat params, then `metric` (the trial's score, `space.score`: its best
    evaluation or its last), `last` (the metric at the last evaluation), `best_step`,
    `best_checkpoint` (the folder of the best evaluation's checkpoint, when kept), trial_id,
    name, status, steps, time_s and error.
    """
    from ray.tune.utils import flatten_dict

    from hk_tune.tracking import run_name

    rows, histories = [], {}
    for result in result_grid:
        metrics = result.metrics or {}
        run = _outcome(result)
        sampled = flatten_dict(result.config or {}, delimiter="/")
        params = space.trial_params(sampled)
        histories[run["trial_id"]] = _history(result)
        best_step = metrics.get("best_step")
        rows.append({**params, "sampled": sampled, "metric": _number(metrics.get(space.score)),
                     "last": _number(metrics.get(space.metric)), "best_step": best_step,
                     "best_checkpoint": checkpoint_at(result, best_step),
                     "trial_id": run["trial_id"], "name": run_name(params),
                     "status": run["status"], "steps": metrics.get("step", 0), "time_s": round(
                         float(metrics.get("time_total_s", 0.0)), 1),
                     "error": run["error"]})
    return rank(rows, space.mode), histories


def run_records(result_grid, space: Space) -> list[dict[str, Any]]:
    """One dict per run of a plain experiment whose configs are {"params": ..., "seed": n}
    (seed confirmation, grids): params, seed, trial_id, status, error, value (the score,
    `space.score`), last (the metric at the last evaluation), history (one dict of numbers per
    evaluation) and final (the last numbers reported)."""
    records = []
    for result in result_grid:
        config, metrics = result.config or {}, result.metrics or {}
        records.append({
            "params": config.get("params", {}), "seed": config.get("seed"), **_outcome(result),
            "value": metrics.get(space.score), "last": metrics.get(space.metric),
            "history": _history(result),
            "final": {k: v for k, v in metrics.items() if _is_number(v)},
        })
    return records


def trial_status(metrics: dict[str, Any]) -> str:
    """"completed" when the run reached its step budget, else "stopped" (by the scheduler)."""
    total = metrics.get("total_steps")
    return "completed" if total is not None and metrics.get("step", 0) >= total else "stopped"


def rank(rows: list[dict], mode: str) -> list[dict]:
    """Completed trials first, each group best metric first; errored and NaN last."""
    sign = -1.0 if mode == "max" else 1.0

    def key(row: dict) -> tuple:
        value = row.get("metric")
        missing = value is None or math.isnan(value)
        group = {"completed": 0, "stopped": 1}.get(row["status"], 2)
        return (missing, group, sign * (value if not missing else 0.0))

    return sorted(rows, key=key)


def importances(space: Space, rows: list[dict]) -> dict[str, float]:
    """fANOVA importance of each searched parameter (dotted path -> share), from the trials
    with a metric; {} when there are too few trials to say."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = space.distributions()
    study = optuna.create_study(direction="maximize" if space.mode == "max" else "minimize")
    for row in rows:
        value = row.get("metric")
        if value is None or math.isnan(value):
            continue
        params = {k: v for k, v in row["sampled"].items() if k in distributions}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: distributions[k] for k in params}, value=value))
    try:
        found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=space.seed))
    except (RuntimeError, ValueError):
        return {}
    return {name.replace("/", ".", 1): float(value) for name, value in found.items()}


def describe_score(space: Space, row: dict) -> str:
    """A trial's score in words: `best eval_accuracy 0.7667 at step 40, last 0.7533`, or the
    last value alone under `metric_scope: last`."""
    if space.metric_scope == "last":
        return f"last {space.metric} {_fmt(row.get('metric'))}"
    return (f"best {space.metric} {_fmt(row.get('metric'))} at step {row.get('best_step')}, "
            f"last {_fmt(row.get('last'))}")


def best_run_config(space: Space, sampled: dict[str, Any], name: str) -> dict[str, Any]:
    """The winner as a complete `RunConfig` dict that `hk-tune train` accepts."""
    from hk_tune.train.run_config import RunConfig

    raw = space.run_config(sampled)
    cfg = RunConfig.from_dict({**raw, "name": name}, where="best configuration")
    out = cfg.to_dict()
    out["storage_path"] = space.storage_path
    return out


def write_best_config(path: str, config: dict[str, Any], header: str) -> None:
    """Writes the `hk-tune train` YAML to `path`, a local path or an object-store URI."""
    import yaml

    comment = "".join(f"# {line}\n" for line in header.splitlines())
    storage.write_text(path, comment + yaml.safe_dump(config, sort_keys=False))


def local_best_config_path(name: str) -> Path:
    """Where a search with remote storage also puts its best configuration: the working
    folder, named after the search, since `hk-tune train` reads local files."""
    return Path.cwd() / f"{name}_{BEST_CONFIG}"


def write_summary(folder: str, summary: dict[str, Any]) -> None:
    storage.write_text(storage.join(folder, SUMMARY),
                       json.dumps(summary, indent=1, sort_keys=True, default=str))


def read_summary(folder: str) -> dict[str, Any]:
    """The summary of the finished search in `folder` (a local path or a URI)."""
    from hk_tune.errors import ConfigError

    path = storage.join(storage.resolve(folder), SUMMARY)
    if not storage.exists(path):
        raise ConfigError(f"{folder}: no finished search here (no {SUMMARY}); "
                          "give the search's folder, e.g. hk_tune_runs/quickstart")
    return json.loads(storage.read_text(path))


def json_line(summary: dict[str, Any]) -> str:
    """The `--json` line: best config, metric, its score key and value (with the step of the
    best evaluation), median, number of trials, path."""
    confirmation = summary.get("confirmation") or {}
    winner = confirmation.get("winner") or {}
    return json.dumps({
        "best_config": summary["best_config"], "best_config_path": summary["best_config_path"],
        "metric": summary["metric"], "mode": summary["mode"], "value": summary["best"]["metric"],
        "score": summary.get("score", summary["metric"]),
        "best_step": summary["best"].get("best_step"),
        "median": winner.get("median"), "num_trials": len(summary["results"]),
        "path": summary["path"], "name": summary["best"]["name"],
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


def _outcome(result) -> dict[str, Any]:
    """A Tune result's trial id, status (completed, stopped or errored) and error (its end)."""
    metrics = result.metrics or {}
    return {"trial_id": metrics.get("trial_id") or Path(result.path).name,
            "status": "errored" if result.error is not None else trial_status(metrics),
            "error": None if result.error is None else str(result.error)[-500:]}


def _history(result) -> list[dict[str, Any]]:
    """A run's evaluations, numbers only, one per step: a trial restarted in its own process
    reports again the evaluations after its last registered checkpoint; the later one stays."""
    frame = result.metrics_dataframe
    rows = [] if frame is None else [_plain(r) for r in frame.to_dict("records")]
    by_step: dict[Any, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        by_step[row.get("step", f"row {index}")] = {k: v for k, v in row.items()
                                                    if _is_number(v)}
    return list(by_step.values())


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


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(row: dict) -> dict:
    return {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
