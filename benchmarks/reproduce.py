"""The paper's Table 1 at small scale, produced by hk_tune itself (Wang et al., ACL Findings 2024).

    python benchmarks/reproduce.py            # two tasks, 3 seeds: about an hour on 2 CPU cores
    python benchmarks/reproduce.py --quick    # one task, one seed, each row at rate 0.1 only:
                                              # about 5 minutes, no confirmation phase
    python benchmarks/reproduce.py --tasks sentiment --rows baseline hiddenkey --points 1 \
        --steps 180 --out benchmarks/results/reproduce_180_steps    # a few rows, longer

Every method row of `search_spaces/reproduce.yaml` (DESIGN.md 2.5: no dropout, the backbone's
own dropout, DropKey / DropAttention / HiddenCut in three patterns each, HiddenKey⁻, HiddenKey
with KL and with JS) is run on each bundled task in three phases, each one plain Tune
experiment through the search's own trainable (reused actors, the same training loop):

1. search: every row at each point of its grid (rates 0.05 / 0.1 / 0.2, λ 0.1 / 1 / 5; at most
   `--points` points per row), seed 0; plus one long baseline run for the overfitting curves.
2. confirm: each row's best point re-run with `--seeds` fresh seeds (1, 2, 3). The table's cells
   are the median ± standard deviation over these seeds only, so the seed that chose the point
   never flatters it. With `--seeds 0` (and in `--quick`) there is no confirmation and a
   cell is the search run's own value. When every row has one point there is nothing to
   choose, so the search phase (and the curve run with it) is skipped.

Writes to `--out` (default benchmarks/results/reproduce/): table.md (rows = methods, columns =
tasks and their average, the paper's RoBERTa-large averages beside them), rate_<task>.png/.html
(metric against rate per position, the paper's Figure 4, from the search phase), curves_<task>
.png/.html (the long no-dropout run's train and eval loss) and reproduce.json (every run). All
runs are child runs of one MLflow parent run `reproduce`, which holds the same files.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE_FILE = ROOT / "search_spaces" / "reproduce.yaml"
# The bundled real tasks (hk_tune/data/README.md) and what each needs beyond the space's fixed
# settings. Validation majority-class rates: sentiment 0.512, SNLI 0.336.
TASKS = {
    "sentiment": ["data.source=bundled:sentiment"],
    "snli": ["data.source=bundled:snli"],
}
# The paper's RoBERTa-large GLUE average (RTE, MRPC, STS-B, SST-2; median of 5 seeds) for the
# rows DESIGN.md section 3 records; the others are in the paper's Table 1.
PAPER_AVG = {"baseline": 90.60, "dropkey_column": 91.69, "dropattention_span": 91.14,
             "hiddencut_element": 91.43, "hiddenkey_minus": 91.78, "hiddenkey": 92.01}
SINGLE = ("dropkey_", "dropattention_", "hiddencut_")  # the rows that drop at one position
CURVE_STEPS = 180  # the long no-dropout run: 6 epochs of the 480 training examples
CURVE_EVERY = 20


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from hk_tune.search.grid import row_points
    from hk_tune.search.space_file import load_space
    from hk_tune.search.tuner import start_ray
    from hk_tune.tracking import SearchTracker

    tasks = args.tasks or (["sentiment"] if args.quick else list(TASKS))
    seeds = list(range(1, 1 + (args.seeds if args.seeds is not None else 0 if args.quick
                                else 3)))
    points_per_row = args.points or (1 if args.quick else 3)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    storage = Path(args.storage or tempfile.mkdtemp(prefix="hk_tune_reproduce_"))
    budget = ([f"optim.max_steps={args.steps}", f"optim.eval_every={max(1, args.steps // 2)}"]
              if args.steps else [])
    spaces = {task: load_space(SPACE_FILE, [*TASKS[task], *budget, "name=reproduce",
                                            f"storage_path={storage}"]) for task in tasks}
    started = time.perf_counter()
    tracker = SearchTracker(args.tracking_uri)
    tracker.check()
    first = spaces[tasks[0]]
    tracker.start_search("reproduce", str(SPACE_FILE), first.fixed, first.seed,
                         tags={"hk_tune.space": SPACE_FILE.name, "hk_tune.tasks": ",".join(tasks)})
    start_ray(args.address)

    report = {"tasks": {}, "seeds": seeds, "points_per_row": points_per_row, "quick": args.quick,
              "steps": spaces[tasks[0]].fixed["optim.max_steps"]}
    for task in tasks:
        space = spaces[task]
        rows = row_points(space, limit=points_per_row, seed=space.seed)
        if args.rows:
            unknown = sorted(set(args.rows) - set(rows))
            if unknown:
                raise SystemExit(f"--rows: {unknown} are not rows of {SPACE_FILE}; "
                                 f"allowed: {list(rows)}")
            rows = {row: points for row, points in rows.items() if row in args.rows}
        report["tasks"][task] = run_task(task, space, rows, seeds, storage / task, tracker,
                                         curve=not args.quick)
        write_outputs(report, out, spaces)  # a later task's failure keeps this one's
    report["wall_s"] = round(time.perf_counter() - started, 1)
    files = write_outputs(report, out, spaces)
    finish_tracking(tracker, report, spaces, files)
    print((out / "table.md").read_text())
    print(f"wrote {out} in {report['wall_s'] / 60:.1f} min; MLflow parent run "
          f"{tracker.parent_run_id} in {tracker.tracking_uri}", file=sys.stderr)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one task, one seed, each row at its preset's rate")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS))
    parser.add_argument("--seeds", type=int,
                        help="fresh confirmation seeds (default 3; quick 0: seed 0 only)")
    parser.add_argument("--points", type=int, help="grid points per row (default 3; quick 1)")
    parser.add_argument("--rows", nargs="+", help="only these rows (default: every row)")
    parser.add_argument("--steps", type=int, help="optim.max_steps of every run (default: the "
                        "space's 60); evaluations at its half and end")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reproduce"))
    parser.add_argument("--storage", help="Tune's folder; default a new temporary one")
    parser.add_argument("--tracking-uri", help="MLflow store; default ./mlflow.db")
    parser.add_argument("--address", help="a running Ray cluster; default local Ray")
    return parser.parse_args(argv)


def run_task(task: str, space, rows: dict[str, list[dict]], seeds: list[int], folder: Path,
             tracker, curve: bool) -> dict:
    """Search (every row's points, seed 0), then confirm each row's best point with `seeds`."""
    from hk_tune.search.grid import run_grid

    row_of = {key(point): row for row, row_points in rows.items() for point in row_points}
    if seeds and all(len(row_points) == 1 for row_points in rows.values()):
        searched = []  # nothing to choose: straight to the seeds
        best = {row: {"params": row_points[0], "value": None, "trial_id": None}
                for row, row_points in rows.items()}
    else:
        searched, best = search(task, space, rows, row_of, folder, tracker, curve)
    confirmed = []
    if seeds:
        print(f"{task}: confirm, {len(best) * len(seeds)} runs", file=sys.stderr, flush=True)
        confirmed = run_grid(space, str(folder), "confirm",
                             [r["params"] for r in best.values()], seeds)
    for record in confirmed:
        row = row_of[key(record["params"])]
        if best[row]["trial_id"] is None:  # no search run to confirm: a run of its own
            log_run(tracker, space, task, record, row)
            continue
        params = {**space.trial_params(record["params"]), "task": task, "row": row}
        tracker.confirmation_run(best[row]["trial_id"], record["seed"], params,
                                 record["history"], record["final"])
    cells = {}
    for row in rows:
        chosen = best.get(row)
        values = [r["value"] for r in confirmed
                  if row_of[key(r["params"])] == row and finite(r["value"])]
        if not seeds and chosen:  # no confirmation: the search run is the only seed
            values = [chosen["value"]]
        cells[row] = {
            "params": chosen["params"] if chosen else None,
            "search_value": chosen["value"] if chosen else None,
            "values": values,
            "median": statistics.median(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None,
            "min": min(values, default=None), "max": max(values, default=None),
        }
    curve_run = next((r for r in searched if key(r["params"]) not in row_of), None)
    return {"metric": space.metric, "cells": cells, "search": strip(searched),
            "confirm": strip(confirmed), "curve": curve_run and curve_run["history"],
            "errors": [r["error"] for r in searched + confirmed if r["error"]]}


def search(task: str, space, rows: dict[str, list[dict]], row_of: dict[str, str],
           folder: Path, tracker, curve: bool) -> tuple[list[dict], dict[str, dict]]:
    """Every row's points with seed 0 (and the long no-dropout run); each row's best run."""
    from hk_tune.search.grid import run_grid

    points = []
    if curve:  # first: it is the longest run, so it never trails the others
        points.append({"dropout/preset": "baseline", "optim/max_steps": CURVE_STEPS,
                       "optim/eval_every": CURVE_EVERY})
    points += [point for row_points in rows.values() for point in row_points]
    print(f"{task}: search, {len(points)} runs", file=sys.stderr, flush=True)
    searched = run_grid(space, str(folder), "search", points, [space.seed])
    for record in searched:
        log_run(tracker, space, task, record, row_of.get(key(record["params"]), "curve"))
    best: dict[str, dict] = {}
    for record in searched:
        row = row_of.get(key(record["params"]))
        if row is None or not finite(record["value"]):
            continue
        if row not in best or better(record["value"], best[row]["value"], space.mode):
            best[row] = record
    return searched, best


def log_run(tracker, space, task: str, record: dict, row: str) -> None:
    """One search-phase run as a child run of the parent, with its whole metric history."""
    from hk_tune.tracking import run_name

    params = {**space.trial_params(record["params"]), "task": task, "row": row}
    name = f"{task} {run_name(params)}" + (" (no-dropout curve)" if row == "curve" else "")
    if record["seed"] != space.seed:  # a seed of its own, when the search phase was skipped
        name += f" seed={record['seed']}"
    tracker.trial_started(record["trial_id"], params, name=name)
    for index, metrics in enumerate(record["history"]):
        tracker.trial_metrics(record["trial_id"], metrics, int(metrics.get("step", index + 1)))
    tracker.trial_finished(record["trial_id"], record["status"], record["error"])


def write_outputs(report: dict, out: Path, spaces: dict) -> list[Path]:
    """table.md, reproduce.json, and per task the rate plot and the no-dropout curves."""
    from hk_tune.tracking.figures import Figure, Panel, Series, metric_vs_rate
    from hk_tune.tracking.plots import render

    files = [out / "table.md", out / "reproduce.json"]
    files[0].write_text(table(report, next(iter(spaces.values())).metric))
    files[1].write_text(json.dumps(report, indent=1, default=str))
    for task, result in report["tasks"].items():
        space = spaces[task]
        metric = space.metric
        rows = []
        for record in result["search"]:
            preset = record["params"].get("dropout/preset", "")
            # One position each, as in the paper's Figure 4; HiddenKey would share their lines.
            if not preset.startswith(SINGLE + ("baseline",)) or "optim/max_steps" in \
                    record["params"]:
                continue
            flat = space.trial_params(record["params"])
            rows.append({**flat, "metric": record["value"], "trial_id": record["trial_id"],
                         "name": record["params"]["dropout/preset"]})
        baseline = next((r["trial_id"] for r in rows if r["name"] == "baseline"), None)
        figure = metric_vs_rate(rows, metric, space.mode, baseline)
        if figure is not None:
            figure.name = f"rate_{task}"
            figure.title = f"{task}: {metric} against rate (seed 0, search phase)"
            files += render(figure, out)
        if result.get("curve"):
            history = result["curve"]
            panels = [Panel("loss", "step", "loss", [
                Series(name, [r["step"] for r in history if finite(r.get(name))],
                       [r[name] for r in history if finite(r.get(name))])
                for name in ("train_loss", "eval_loss")], integer_x=True),
                Panel(metric, "step", metric, [Series("no dropout", [r["step"] for r in history],
                                                      [r.get(metric) for r in history])],
                      integer_x=True)]
            files += render(Figure(f"curves_{task}", f"{task}: LoRA without dropout",
                                   panels), out)
    return files


def table(report: dict, metric: str) -> str:
    """Markdown shaped like the paper's Table 1: median ± std over the confirmation seeds."""
    tasks = list(report["tasks"])
    seeds = report["seeds"]
    head = ["method", *tasks, "avg", "best point (per task)", "paper avg (RoBERTa-large)"]
    chosen = ("each row at its preset's rate (0.1, λ 1)" if report["points_per_row"] == 1
              else "the point chosen on seed 0")
    over = (f"median ± std over seeds {seeds} ({chosen})" if seeds
            else "seed 0 only, the search run itself (no confirmation)")
    lines = [f"{metric} ×100 after {report['steps']} steps, {over}. "
             "† = every seed above the baseline's best seed; ‡ = every seed below the "
             "baseline's worst.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = next(iter(report["tasks"].values()))["cells"] if tasks else {}
    for row in rows:
        cells, medians, chosen = [], [], []
        for task in tasks:
            cell = report["tasks"][task]["cells"][row]
            base = report["tasks"][task]["cells"].get("baseline", {})
            if cell["median"] is None:
                cells.append("failed")
                continue
            medians.append(cell["median"])
            mark = ""
            if row != "baseline" and base.get("max") is not None and len(cell["values"]) > 1:
                mark = "†" if cell["min"] > base["max"] else "‡" if cell["max"] < base["min"] \
                    else ""
            cells.append(f"{100 * cell['median']:.1f} ± {100 * cell['std']:.1f}{mark}")
            chosen.append(point_text(cell["params"]))
        avg = f"{100 * statistics.mean(medians):.1f}" if len(medians) == len(tasks) else "—"
        paper = f"{PAPER_AVG[row]:.2f}" if row in PAPER_AVG else "—"
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {avg} | "
                     + " / ".join(chosen) + f" | {paper} |")
    return "\n".join(lines) + "\n"


def point_text(params: dict | None) -> str:
    if not params:
        return "—"
    text = ", ".join(f"{k.split('/', 1)[1].removesuffix('.rate')} {v}" for k, v in params.items()
                     if k != "dropout/preset")
    return text.replace("consistency.weight", "λ") or "—"


def finish_tracking(tracker, report: dict, spaces: dict, files: list[Path]) -> None:
    """Ends the parent run with every trial run it holds as its results (finish_search ends
    and deletes any child run not among them, as a search's orphan), the row with the best
    median as its best configuration, and logs the outputs to it."""
    space = next(iter(spaces.values()))
    sign = -1 if space.mode == "max" else 1
    results, medians = [], []
    for task, result in report["tasks"].items():
        # The runs logged as trials: the search phase's, or the seeds' when it was skipped.
        for run in result["search"] or result["confirm"]:
            results.append({"trial_id": run["trial_id"], "status": run["status"],
                            "metric": run["value"], "task": task})
        medians += [(sign * cell["median"], task, row) for row, cell in result["cells"].items()
                    if finite(cell["median"])]
    results.sort(key=lambda r: sign * r["metric"] if finite(r["metric"]) else math.inf)
    best = {}
    if medians:
        _, task, row = min(medians)
        best = spaces[task].run_config(report["tasks"][task]["cells"][row]["params"])
    tracker.finish_search(results, best, space.metric, space.mode)
    tracker.log_files(files)
    for line in tracker.gaps():
        print(f"MLflow: {line}", file=sys.stderr)


def key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def strip(records: list[dict]) -> list[dict]:
    """Records for reproduce.json: params, seed, value, status, error and the history."""
    return [{k: r[k] for k in ("params", "seed", "trial_id", "value", "status", "error",
                               "history")} for r in records]


if __name__ == "__main__":
    sys.exit(main())
