"""What a search reports on its parent run: the ranked results table, the best configuration,
and the summary tags and description people read in the runs table."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hk_tune.config.files import write_yaml

# Leading columns of results.csv, in this order when present; parameters follow.
_LEADING = ("rank", "trial_id", "name", "status", "metric", "steps", "time_s", "run_id")


def write_results(
    path: Path, results: list[dict[str, Any]], metric: str, run_ids: Mapping[str, str]
) -> Path:
    """Writes the ranked results as CSV: one row per trial, best first.

    Args:
        path: the file to write.
        results: one dict per trial, already ranked (trial_id, name, status, params..., metric,
            steps, time_s); nested values are written as their text.
        metric: the metric's name, used as the header of the `metric` column.
        run_ids: trial id -> MLflow run id, added as the `run_id` column.
    """
    rows = []
    for rank, result in enumerate(results, start=1):
        row = {"rank": rank, **result}
        if "run_id" not in row and row.get("trial_id") in run_ids:
            row["run_id"] = run_ids[row["trial_id"]]
        rows.append(row)
    columns = [c for c in _LEADING if any(c in row for row in rows)]
    for row in rows:
        columns += [key for key in row if key not in columns]
    header = [metric if c == "metric" and metric not in columns else c for c in columns]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])
    return path


def write_best_config(
    path: Path,
    best_config: Mapping[str, Any],
    best: Mapping[str, Any] | None,
    metric: str,
    mode: str,
    run_ids: Mapping[str, str],
) -> Path:
    """Writes the best configuration as YAML under a comment saying which trial it came from."""
    if best is None:
        lines = ["Best configuration of the search (no trial finished with a metric)."]
    else:
        trial = best.get("trial_id")
        lines = [f"Best configuration of the search: {best.get('name') or trial}",
                 f"{metric} = {best.get('metric')} ({mode}), trial {trial}, "
                 f"MLflow run {run_ids.get(trial)}"]
    write_yaml(path, best_config, "\n".join(lines))
    return path


def summary(
    results: list[dict[str, Any]],
    best: Mapping[str, Any] | None,
    metric: str,
    mode: str,
    run_ids: Mapping[str, str],
    confirmation: Mapping[str, Any] | None,
    artifacts: list[str],
) -> tuple[dict[str, str], dict[str, Any]]:
    """The parent run's closing tags and metrics.

    Returns:
        Tags (metric, mode, trial counts per status, best trial and run, and a Markdown
        description under `mlflow.note.content`, which the UI shows) and metrics: the best
        value under the metric's own name, so the parent's row in the runs table shows it, and
        the confirmed winner's median, min and max over seeds (`confirmation_metrics`).
    """
    counts = {s: sum(r.get("status") == s for r in results) for s in ("completed", "stopped",
                                                                       "errored")}
    tags = {"hk_tune.metric": metric, "hk_tune.mode": mode, "hk_tune.trials": str(len(results)),
            **{f"hk_tune.trials_{s}": str(n) for s, n in counts.items()}}
    values: dict[str, Any] = {}
    lines = [f"{len(results)} trials: " + ", ".join(f"{n} {s}" for s, n in counts.items())]
    if best is not None:
        trial = str(best.get("trial_id"))
        tags["hk_tune.best_trial"] = trial
        if trial in run_ids:
            tags["hk_tune.best_run"] = run_ids[trial]
        values[metric] = best.get("metric")
        if best.get("best_step") not in (None, -1):
            values["best_step"] = best["best_step"]
        lines.insert(0, f"**Best:** {best.get('name') or trial} ({metric} = "
                        f"{best.get('metric')}, trial {trial})")
    values.update(confirmation_metrics((confirmation or {}).get("winner")))
    lines.append("Artifacts: " + ", ".join(sorted(artifacts)))
    tags["mlflow.note.content"] = "\n\n".join(lines)
    return tags, values


def confirmation_metrics(row: Mapping[str, Any] | None) -> dict[str, float]:
    """A confirmed configuration's score over seeds, as metrics: `confirmation.median` (what
    the winner is chosen by), `.min`, `.max` and `.seeds` (how many it was trained with)."""
    if not row:
        return {}
    return {"confirmation.median": row["median"], "confirmation.min": row["min"],
            "confirmation.max": row["max"], "confirmation.seeds": len(row["values"])}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return value
