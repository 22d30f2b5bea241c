"""What the parent run's plots show, as plain data; `plots.py` draws them as PNG and HTML.

Keeping the data apart from the drawing means the PNG and the interactive HTML of a plot can
never disagree, and each builder reads as the question it answers.
"""

from __future__ import annotations

import math
import numbers
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from hk_tune.dropout.spec import POSITIONS  # the spec module itself imports no torch

# The paper's names for each position, used in titles (docs/design.md 2.1).
METHODS = {
    "attn_logits": "DropKey",
    "attn_weights": "DropAttention",
    "ffn_hidden": "HiddenCut",
    "input": "input dropout",
    "output": "output dropout",
}


@dataclass
class Series:
    """One line, set of bars or reference line in a panel.

    kind: "line" (markers joined in x order), "points" (grey crosses, not joined: values not
    comparable with the lines'), "barh" (horizontal bars, x = values, y = labels) or "hline" (a
    dashed reference at y[0] across the panel). A line with `low` and `high` (one value per
    point) is drawn inside a shaded band between them: the spread over seeds.
    """

    label: str
    x: list[Any]
    y: list[Any]
    kind: str = "line"
    hover: list[str] = field(default_factory=list)
    low: list[Any] = field(default_factory=list)
    high: list[Any] = field(default_factory=list)


@dataclass
class Panel:
    """One set of axes. `x_from_zero`: the x axis starts at 0 (rates); `integer_x`: x ticks are
    whole numbers (steps)."""

    title: str
    xlabel: str
    ylabel: str
    series: list[Series]
    x_from_zero: bool = False
    integer_x: bool = False


@dataclass
class Figure:
    """A plot to write as `<name>.png` and `<name>.html`."""

    name: str
    title: str
    panels: list[Panel]


def importances(values: dict[str, float], trials: int) -> Figure | None:
    """Parameter importances (Optuna's PED-ANOVA, computed by the search from `trials` scored
    trials, which the title gives: a handful of trials says little), largest on top."""
    ranked = sorted(((k, float(v)) for k, v in values.items() if _finite(v)), key=lambda kv: kv[1])
    if not ranked:
        return None
    names, scores = [k for k, _ in ranked], [v for _, v in ranked]
    panel = Panel("", "importance (PED-ANOVA)", "parameter", [Series("importance", scores, names,
                                                                        kind="barh")])
    return Figure("importances", f"Which parameters mattered (from {trials} trials)", [panel])


def scored_trials(results: list[dict[str, Any]]) -> int:
    """The trials with a score, which the importances were computed from."""
    return sum(1 for row in results if _finite(row.get("metric")))


def metric_vs_rate(
    results: list[dict[str, Any]], metric: str, mode: str, baseline_trial_id: str | None
) -> Figure | None:
    """The metric against the dropout rate, one panel per position and one line per pattern,
    like the paper's Figure 4; the baseline trial is a dashed line in every panel.

    Lines join completed trials only, each scored over its whole budget; a trial the scheduler
    stopped early is a grey cross, its score from fewer steps. Where several completed trials
    share a rate, the line goes through the best of them.
    """
    scored = [r for r in results if _finite(r.get("metric"))]
    baseline = next((r for r in scored if r.get("trial_id") == baseline_trial_id), None)
    panels = []
    for position in POSITIONS:
        by_pattern: dict[str, dict[float, dict[str, Any]]] = {}
        stopped: list[dict[str, Any]] = []
        for row in scored:
            rate = _number(row.get(f"{position}.rate"))
            if rate <= 0:
                continue
            if row.get("status") != "completed":
                stopped.append(row)
                continue
            pattern = str(row.get(f"{position}.pattern") or "element")
            best = by_pattern.setdefault(pattern, {})
            key = float(f"{rate:.3g}")
            if key not in best or _better(row["metric"], best[key]["metric"], mode):
                best[key] = row
        if not by_pattern and not stopped:
            continue
        series = []
        for pattern, rows in sorted(by_pattern.items()):
            rates = sorted(rows)
            series.append(Series(
                pattern, rates, [float(rows[r]["metric"]) for r in rates],
                hover=[str(rows[r].get("name") or rows[r].get("trial_id")) for r in rates],
            ))
        if stopped:
            series.append(Series(
                "stopped early", [_number(r.get(f"{position}.rate")) for r in stopped],
                [float(r["metric"]) for r in stopped], kind="points",
                hover=[f"{r.get('name') or r.get('trial_id')} (step {r.get('steps')})"
                       for r in stopped]))
        if baseline is not None:
            series.append(Series("baseline", [], [float(baseline["metric"])], kind="hline"))
        panels.append(Panel(f"{position} ({METHODS[position]})", "rate", metric, series,
                            x_from_zero=True))
    if not panels:
        return None
    return Figure("metric_vs_rate", f"{metric} against dropout rate (lines: completed trials)",
                  panels)


def seed_history_key(trial_id: str, seed: int) -> str:
    """The key of a confirmation run's history beside its trial's in a histories mapping."""
    return f"{trial_id} seed {seed}"


def curves(
    histories: dict[str, list[dict[str, Any]]],
    metric: str,
    best_trial_id: str | None,
    baseline_trial_id: str | None,
    names: dict[str, str],
) -> Figure | None:
    """Train loss, eval loss and the metric per step: the best trial against the baseline.

    A trial confirmed with more seeds (histories under `seed_history_key`) is drawn as the
    median over its seeds, in a band from their lowest to their highest value at each step.
    """
    picked = [
        (role, trial) for role, trial in (("best", best_trial_id), ("baseline", baseline_trial_id))
        if trial is not None and histories.get(trial)
    ]
    baseline_won = len(picked) == 2 and picked[0][1] == picked[1][1]
    if baseline_won:  # one line, not two on top of each other, and the title says why
        picked = [("best = baseline", picked[0][1])]
    panels = []
    # Each evaluation's own value, not the running best a trial may be scored by.
    for key in dict.fromkeys(("train_loss", "eval_loss", metric.removeprefix("best_"))):
        series = []
        for role, trial in picked:
            runs = [histories[trial], *_seed_runs(histories, trial)]
            by_step: dict[Any, list[float]] = {}
            for history in runs:
                for index, row in enumerate(history):
                    if _finite(row.get(key)):
                        by_step.setdefault(row.get("step", index + 1), []).append(float(row[key]))
            if not by_step:
                continue
            name = names.get(trial, trial)
            label = role if name == role else f"{role}: {name}"
            steps = sorted(by_step)
            if len(runs) > 1:
                series.append(Series(f"{label} (median of {len(runs)} seeds)", steps,
                                     [statistics.median(by_step[s]) for s in steps],
                                     low=[min(by_step[s]) for s in steps],
                                     high=[max(by_step[s]) for s in steps]))
            else:
                series.append(Series(label, steps, [by_step[s][0] for s in steps]))
        if series:
            panels.append(Panel(key, "step", key, series, integer_x=True))
    if not panels:
        return None
    title = ("The baseline won: no dropout configuration beat it" if baseline_won
             else "Best trial against the baseline")
    return Figure("curves", title, panels)


def _seed_runs(histories: dict[str, list[dict[str, Any]]], trial: str) -> list[list[dict]]:
    """The histories of `trial`'s confirmation runs (`seed_history_key`)."""
    pattern = re.compile(rf"{re.escape(trial)} seed \d+")
    return [history for key, history in histories.items() if pattern.fullmatch(key)]


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def _finite(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    )


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0
