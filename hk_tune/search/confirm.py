"""Seed confirmation: the top-k configurations (and the baseline) re-run with N seeds, the winner
chosen by the median (the paper reports the median of 5 seeds; one lucky seed is the commonest
way a search misleads).

The search's own trial counts as the first seed; seeds `seed + 1 ... seed + N - 1` run as a
second Tune experiment (`confirm/` in the search folder, resumable) on the same executor.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from hk_tune import storage
from hk_tune.config.space import SearchConfig
from hk_tune.search.grid import run_grid
from hk_tune.search.paired import paired
from hk_tune.search.rows import TrialRow

CONFIRM_FOLDER = "confirm"


@dataclass
class ConfirmationRun:
    """One extra seed of a confirmed configuration: the trial it repeats, its seed, its score
    and last value, its evaluations and its final numbers."""

    confirms: str | None
    seed: int | None
    value: float | None
    last: float | None
    history: list[dict[str, Any]]
    final: dict[str, Any]


def candidates(space: SearchConfig, rows: list[TrialRow],
               baseline_id: str | None) -> list[TrialRow]:
    """The top-k completed trials, plus the baseline trial when it is not among them."""
    done = [row for row in rows if row.status == "completed"]
    picked = done[:space.confirm_top_k]
    baseline = next((row for row in rows if row.trial_id == baseline_id), None)
    if baseline is not None and baseline not in picked and baseline.status == "completed":
        picked.append(baseline)
    return picked


def extra_seeds(space: SearchConfig) -> list[int]:
    return [space_seed(space) + i for i in range(1, space.confirm_seeds)]


def space_seed(space: SearchConfig) -> int:
    return space.base.seed


def confirm(space: SearchConfig, picked: list[TrialRow], folder: str) -> list[ConfirmationRun]:
    """Runs every picked configuration with the extra seeds, as the grid `folder/confirm`."""
    seeds = extra_seeds(space)
    if not picked or not seeds:
        return []
    records = run_grid(space, folder, CONFIRM_FOLDER, [row.sampled for row in picked], seeds)
    by_params = {repr(sorted(row.sampled.items())): row.trial_id for row in picked}
    unpicked = [record for record in records
                if repr(sorted(record.params.items())) not in by_params]
    if unpicked:  # a grid restored from an earlier pick: its runs confirm other trials
        raise RuntimeError(f"{storage.join(folder, CONFIRM_FOLDER)} holds confirmation runs of "
                           f"configurations this ranking did not pick ({unpicked[0].params}); "
                           "move that folder away to confirm again")
    return [ConfirmationRun(by_params[repr(sorted(record.params.items()))], record.seed,
                            record.value, record.last, record.history, record.final)
            for record in records]


def summarize(space: SearchConfig, picked: list[TrialRow], runs: list[ConfirmationRun],
              baseline_id: str | None) -> dict[str, Any]:
    """Median and spread of the score (`space.score`) per confirmed configuration, with the
    last evaluations' median beside it; the winner is the best median score."""
    rows = []
    for row in picked:
        done = [run for run in runs if run.confirms == row.trial_id and run.value is not None]
        values = [row.metric] + [run.value for run in done]
        last = [value for value in [row.last] + [run.last for run in done] if value is not None]
        rows.append({"trial_id": row.trial_id, "name": row.name,
                     "seeds": [space_seed(space)] + extra_seeds(space)[:len(values) - 1],
                     "values": values, "median": statistics.median(values),
                     "min": min(values), "max": max(values),
                     "last_median": statistics.median(last) if last else None,
                     "is_baseline": row.trial_id == baseline_id})
    by_seed = {row["trial_id"]: dict(zip(row["seeds"], row["values"], strict=True))
               for row in rows}
    base = next((row for row in rows if row["is_baseline"]), None)
    for row in rows:
        if base is not None and row is not base:
            found = paired(by_seed[row["trial_id"]], by_seed[base["trial_id"]], space.mode)
            row["vs_baseline"] = {"gain": found.gain, "wins": found.wins,
                                  "losses": found.losses, "p_value": found.p_value}
    sign = -1 if space.mode == "max" else 1
    # The baseline can win: then no dropout configuration beat it over seeds, which is worth
    # knowing. Ties go to the higher-ranked search trial (min keeps the first).
    winner = min(rows, key=lambda r: sign * r["median"])
    baseline = next((r for r in rows if r["is_baseline"]), None)
    return {"metric": space.score, "mode": space.mode, "seeds": space.confirm_seeds,
            "configurations": rows, "winner": winner, "baseline": baseline}


def format_confirmation(summary: dict[str, Any]) -> str:
    """The confirmed configurations with median and spread, the baseline beside them."""
    lines = [f"seed confirmation: median of {summary['seeds']} seeds of {summary['metric']}"]
    for row in summary["configurations"]:
        mark = "baseline" if row["is_baseline"] else (
            "winner" if row["trial_id"] == summary["winner"]["trial_id"] else "")
        values = " ".join(f"{v:.4f}" for v in row["values"])
        last = row.get("last_median")
        last = f"  last: median {last:.4f}" if last is not None else ""
        versus = row.get("vs_baseline")
        if versus:
            p_value = "-" if versus["p_value"] is None else f"{versus['p_value']:.2f}"
            last += (f"  vs baseline {versus['gain']:+.4f}, {versus['wins']}/"
                     f"{len(row['values'])} seeds won, paired t-test p {p_value}")
        lines.append(f"  {row['name']:<40} median {row['median']:.4f}  "
                     f"[{row['min']:.4f}, {row['max']:.4f}]  ({values}){last}  {mark}".rstrip())
    return "\n".join(lines)
