"""The paper's comparison (Wang et al., ACL Findings 2024, Table 1 and Figure 4) at small scale, as
a protocol fixed before any run. Its answer, positive or negative, is evidence.

    python benchmarks/reproduce.py            # the protocol: about 70 minutes on 2 CPU cores
    python benchmarks/reproduce.py --quick    # baseline, HiddenKey⁻, HiddenKey; 3 seeds; <10 min

The protocol (written before the first run; benchmarks/results/README.md holds the same text):

- Model: the embedded all-MiniLM-L6-v2 (BERT, 22.7M parameters), LoRA r=8, α=16 on query and
  value, the whole task head trained (pooler and classifier), AdamW lr 1e-3, weight decay 0.1,
  linear schedule with warmup 0.06, batch 16.
- Task: the bundled sentiment sentences (binary), 320 training sentences (the seeded subset of
  data.seed 0), the whole 1,000-sentence validation split, 64 tokens. 6 epochs (120 steps),
  evaluated after every epoch. Measured before the protocol: the baseline's eval loss is lowest
  after epoch 2 and rises after. SNLI (1,000 pairs) does not fit the time and is not run.
- Rows, one grid point each, fixed in advance (equal grid effort): baseline; `hf_default` (the
  backbone's stock dropout, what users get without hk_tune); DropKey element and column;
  DropAttention element; HiddenCut element and span; HiddenKey⁻; HiddenKey (KL); HiddenKey with
  JS. Rates are the presets' 0.1 and λ = 1, at which the KL term reached 38% of HiddenKey's
  loss by epoch 8 (measured before the protocol). The other Table 1 rows (DropKey span,
  DropAttention column and span, HiddenCut column) are left out for time.
- Rate sweep (Figure 4): DropKey column, DropAttention element and HiddenCut element also at
  rates 0.05 and 0.2, seeds 1-3; the rate plot takes seeds 1-3 at every rate.
- Seeds 1-5, paired: a seed gives every row the same head init, LoRA init and data order.
- Primary metric: best-epoch validation accuracy (the LoRA paper's best epoch), median over
  seeds. Also reported: final accuracy, the lowest eval loss, how many seeds' eval loss turned,
  the consistency term's share of the loss at the end.
- Pass criterion: a row beats the baseline when its median is at least 1.0 point higher and it
  wins on at least 3 of the 5 paired seeds; the paired t-test's p-value (scipy) is shown.
- Pilot gate: the baseline on seeds 1-3 runs first; unless the eval loss of at least 2 of them
  has passed its minimum by the middle of training, the benchmark stops with no table.

Runs go through hk_tune's own training loop in local worker processes without Ray
(`hk_tune.train.pool`): one seed gives one result, so each run has the numbers a search trial of
the same configuration has. Writes to `--out` (default benchmarks/results/reproduce/):
table.md, rate_<task>.png/.html, curves_<task>.png/.html and reproduce.json (every run's
history); every run is also a child of one MLflow parent run `reproduce`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "reproduce"

TASKS = {
    "sentiment": {"source": "bundled:sentiment", "max_train_samples": 320, "max_length": 64},
    "snli": {"source": "bundled:snli", "max_train_samples": 1000, "max_length": 64},
}
BASE = {
    "model": "minilm",
    "lora": {"rank": 8, "alpha": 16},
    "optim": {"lr": 1e-3, "batch_size": 16, "epochs": 6, "eval_batch_size": 64},
    "metric": "eval_accuracy",
}
ROWS = ("baseline", "hf_default", "dropkey_element", "dropkey_column", "dropattention_element",
        "hiddencut_element", "hiddencut_span", "hiddenkey_minus", "hiddenkey", "hiddenkey_js")
QUICK_ROWS = ("baseline", "hiddenkey_minus", "hiddenkey")
SEEDS = (1, 2, 3, 4, 5)
PILOT_SEEDS = (1, 2, 3)
SWEEP = {"dropkey_column": "attn_logits", "dropattention_element": "attn_weights",
         "hiddencut_element": "ffn_hidden"}
SWEEP_RATES = (0.05, 0.2)
SWEEP_SEEDS = (1, 2, 3)
MARGIN = 0.01  # one accuracy point
PRESET_RATE = 0.1  # the rate of every table row, which is also the sweep's middle point
PILOT_NEEDS = 2  # of the pilot seeds, whose eval loss must have turned by mid-training
# The paper's RoBERTa-large numbers (its Table 1): the GLUE average, and SST-2 where known.
PAPER = {"baseline": (90.60, 95.99), "dropkey_column": (91.69, None),
         "hiddencut_element": (91.43, None), "hiddenkey_minus": (91.78, None),
         "hiddenkey": (92.01, 96.44)}


def run_config(task: str, row: str, seed: int, rate: float | None = None,
               eval_samples: int | None = None) -> dict:
    """The `RunConfig` dict of one run of the protocol."""
    from hk_tune.config.run import RunConfig
    from hk_tune.dropout import PRESETS

    dropout = {"preset": row}
    if rate is not None:
        dropout[f"{SWEEP[row]}.rate"] = rate
    data = {**TASKS[task], **({"max_eval_samples": eval_samples} if eval_samples else {})}
    assert row in PRESETS, row
    return RunConfig.from_dict({**BASE, "data": data, "dropout": dropout, "seed": seed,
                                "name": run_id(task, row, seed, rate)}).to_dict()


def run_id(task: str, row: str, seed: int, rate: float | None = None) -> str:
    return f"{task}-{row}" + (f"-r{rate:g}" if rate is not None else "") + f"-s{seed}"


def plan(task: str, rows: tuple[str, ...], seeds: tuple[int, ...], sweep: bool,
         eval_samples: int | None) -> tuple[list[dict], list[dict]]:
    """The pilot's runs, then the rest: each {"id", "task", "row", "seed", "rate", "config"}."""
    def run(row: str, seed: int, rate: float | None = None) -> dict:
        return {"id": run_id(task, row, seed, rate), "task": task, "row": row, "seed": seed,
                "rate": rate, "config": run_config(task, row, seed, rate, eval_samples)}

    pilot = [run("baseline", seed) for seed in seeds if seed in PILOT_SEEDS]
    rest = [run(row, seed) for row in rows for seed in seeds
            if not (row == "baseline" and seed in PILOT_SEEDS)]
    if sweep:
        rest += [run(row, seed, rate) for row in SWEEP if row in rows
                 for rate in SWEEP_RATES for seed in SWEEP_SEEDS]
    # Two-pass rows first: the longest runs never trail the others.
    rest.sort(key=lambda r: not r["row"].startswith("hiddenkey") or r["row"] == "hiddenkey_minus")
    return pilot, rest


def pilot_gate(histories: list[list[dict]], needs: int = PILOT_NEEDS) -> tuple[bool, str]:
    """Whether the baseline overfits early enough for dropout to show: at least `needs` of the
    pilot runs' eval loss turned upward with its minimum in the first half of training."""
    from hk_tune.search.overfit import eval_loss_turn, turned_by

    turns = [eval_loss_turn(history) for history in histories]
    passed = sum(turned_by(turn, 0.5) for turn in turns)
    where = ", ".join(f"lowest at step {t.min_step} of {t.last_step}" if t else "no eval loss"
                      for t in turns)
    if passed >= needs:
        return True, f"pilot: the baseline overfits ({passed} of {len(turns)} seeds: {where})"
    return False, (f"pilot: the baseline's eval loss has not passed its minimum by the middle "
                   f"of training on {len(turns) - passed} of {len(turns)} seeds ({where}); "
                   "this regime cannot show what dropout is for: raise optim.epochs or lower "
                   "data.max_train_samples, then run the protocol again")


def cell(runs: list[dict]) -> dict:
    """One row's numbers over its seeds."""
    from hk_tune.search.overfit import eval_loss_turn

    best = [r["history"][-1]["best_eval_accuracy"] for r in runs]
    turns = [eval_loss_turn(r["history"]) for r in runs]
    return {
        "seeds": [r["seed"] for r in runs], "best": best,
        "median": statistics.median(best), "std": statistics.stdev(best) if len(best) > 1 else 0.0,
        "min": min(best), "max": max(best),
        "final": statistics.median(r["history"][-1]["eval_accuracy"] for r in runs),
        "min_eval_loss": statistics.median(t.min_loss for t in turns if t),
        "best_epoch": statistics.median(r["history"][-1]["best_step"] / r["steps_per_epoch"]
                                        for r in runs),
        "turned": sum(bool(t and t.turned) for t in turns),
        "share": statistics.median(r["history"][-1]["train_consistency_share"] for r in runs),
    }


def compare(rows: dict[str, list[dict]]) -> dict[str, dict]:
    """Each row's cell, with its paired comparison to the baseline and the criterion."""
    from hk_tune.search.paired import beats, paired

    base = {r["seed"]: r["history"][-1]["best_eval_accuracy"] for r in rows["baseline"]}
    cells = {}
    for row, runs in rows.items():
        cells[row] = cell(runs)
        if row == "baseline":
            continue
        found = paired({r["seed"]: r["history"][-1]["best_eval_accuracy"] for r in runs},
                       base, "max")
        cells[row].update(gain=found.gain, wins=found.wins, p_value=found.p_value,
                          beats=beats(found, MARGIN))
    return cells


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        try:
            report = json.loads(Path(args.render).read_text())
        except (OSError, ValueError) as error:
            print(f"reproduce: --render {args.render}: {error}", file=sys.stderr)
            return 2
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_outputs(report, Path(args.out))
        print((Path(args.out) / "table.md").read_text())
        return 0
    from hk_tune.tracking import SearchTracker
    from hk_tune.train.pool import run_pool

    rows = QUICK_ROWS if args.quick else tuple(args.rows or ROWS)
    seeds = tuple(range(1, 4)) if args.quick else SEEDS
    eval_samples = 500 if args.quick else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tracker = SearchTracker(args.tracking_uri)
    tracker.check()
    tracker.start_search("reproduce", None, {"protocol": "benchmarks/reproduce.py", **BASE}, 0,
                         tags={"hk_tune.tasks": ",".join(args.tasks), "hk_tune.quick":
                               str(args.quick)})
    started = time.perf_counter()
    report = {"quick": args.quick, "rows": rows, "seeds": seeds, "base": BASE, "tasks": {}}
    logged = []

    def log(run: dict, pool_run) -> None:
        run["history"], run["seconds"], run["error"] = pool_run.history, pool_run.seconds, \
            pool_run.error
        params = {"task": run["task"], "row": run["row"], "seed": run["seed"],
                  "rate": run["rate"] if run["rate"] is not None else "preset"}
        tracker.trial_started(run["id"], params, name=run["id"])
        for row in run["history"]:
            tracker.trial_metrics(run["id"], row, int(row["step"]))
        tracker.trial_finished(run["id"], "errored" if run["error"] else "completed",
                               run["error"])
        logged.append(run)
        print(f"{len(logged)}: {run['id']} {pool_run.seconds:.0f} s"
              + (f" failed: {run['error']}" if run["error"] else
                 f", best accuracy {run['history'][-1]['best_eval_accuracy']:.4f}"),
              file=sys.stderr, flush=True)

    def execute(runs: list[dict]) -> None:
        run_pool([r["config"] for r in runs], processes=args.processes, threads=args.threads,
                 on_done=lambda pool_run: log(runs[pool_run.index], pool_run))

    for task in args.tasks:
        pilot, rest = plan(task, rows, seeds, sweep=not args.quick, eval_samples=eval_samples)
        print(f"{task}: pilot, {len(pilot)} runs; then {len(rest)} runs", file=sys.stderr)
        execute(pilot)
        ok, message = pilot_gate([r["history"] for r in pilot])
        print(message, file=sys.stderr, flush=True)
        report["tasks"][task] = {"pilot": message, "runs": pilot}
        if not ok:
            finish(tracker, report, out, logged, [])
            return 3
        execute(rest)
        report["tasks"][task]["runs"] = pilot + rest
    report["wall_s"] = round(time.perf_counter() - started, 1)
    files = write_outputs(report, out)
    finish(tracker, report, out, logged, files)
    print((out / "table.md").read_text())
    print(f"wrote {out} in {report['wall_s'] / 60:.1f} min; MLflow parent run "
          f"{tracker.parent_run_id} in {tracker.tracking_uri}", file=sys.stderr)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="baseline, HiddenKey⁻ and "
                        "HiddenKey, seeds 1-3, 500 validation sentences, no rate sweep")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["sentiment"])
    parser.add_argument("--rows", nargs="+", choices=ROWS, help="only these rows (the "
                        "baseline is always run)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads each (default 1)")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--render", metavar="REPORT", help="rebuild table.md and the plots in "
                        "--out from a reproduce.json, without training")
    parser.add_argument("--tracking-uri", help="MLflow store; default ./mlflow.db")
    args = parser.parse_args(argv)
    if args.rows and "baseline" not in args.rows:
        args.rows = ["baseline", *args.rows]
    return args


def by_row(runs: list[dict], rate: bool = False) -> dict:
    """Finished runs grouped by row (or by (row, rate) for the sweep)."""
    groups: dict = {}
    for run in runs:
        if run.get("error") or (run["rate"] is not None) != rate:
            continue
        run["steps_per_epoch"] = run["history"][0]["step"] / run["history"][0]["epoch"]
        groups.setdefault((run["row"], run["rate"]) if rate else run["row"], []).append(run)
    return groups


def write_outputs(report: dict, out: Path) -> list[Path]:
    """table.md, reproduce.json, and per task the rate plot and the curves."""
    from hk_tune.tracking.plots import render

    files = [out / "table.md", out / "reproduce.json"]
    sections = []
    for task, result in report["tasks"].items():
        cells = compare(by_row(result["runs"]))
        result["cells"] = cells
        sections += [table(task, cells, report), sweep_table(task, result["runs"])]
        for figure in (rate_figure(task, result["runs"]), curves_figure(task, result["runs"])):
            if figure is not None:
                files += render(figure, out)
    files[0].write_text("\n".join(sections))
    files[1].write_text(json.dumps(report, indent=1, default=str))
    return files


def table(task: str, cells: dict[str, dict], report: dict) -> str:
    """Markdown shaped like the paper's Table 1, with the paired comparison to the baseline."""
    seeds = report["seeds"]
    lines = [f"### {task}: best-epoch validation accuracy ×100, median ± std over seeds "
             f"{list(seeds)}", "",
             "| method | best-epoch acc | Δ vs baseline | seeds won | paired t p | beats baseline "
             "| final acc | lowest eval loss | best epoch | eval loss turned | consistency "
             "share (end) | paper avg / SST-2 (RoBERTa-large) |",
             "|" + "---|" * 12]
    for row in report["rows"]:
        if row not in cells:
            lines.append(f"| {row} | failed |" + " |" * 10)
            continue
        c = cells[row]
        versus = ("—", "—", "—", "—") if row == "baseline" else (
            f"{100 * c['gain']:+.1f}", f"{c['wins']}/{len(c['seeds'])}",
            "—" if c["p_value"] is None else f"{c['p_value']:.2f}", "yes" if c["beats"] else "no")
        avg, sst2 = PAPER.get(row, (None, None))
        paper = " / ".join("—" if v is None else f"{v:.2f}" for v in (avg, sst2))
        lines.append(f"| {row} | {100 * c['median']:.1f} ± {100 * c['std']:.1f} | "
                     + " | ".join(versus)
                     + f" | {100 * c['final']:.1f} | {c['min_eval_loss']:.3f} | "
                     f"{c['best_epoch']:.0f} | {c['turned']}/{len(c['seeds'])} | "
                     f"{100 * c['share']:.1f}% | {paper} |")
    lines += ["", f"Criterion, fixed in advance: median at least {100 * MARGIN:.0f} point above "
              "the baseline's and more than half of the paired seeds won. Paired t-test on the "
              "per-seed differences of best-epoch accuracy (two-sided).", ""]
    return "\n".join(lines)


def sweep_seeds(group: list[dict]) -> dict[int, float]:
    """Best-epoch accuracy by seed, of the sweep's seeds, which every rate of the sweep has."""
    return {r["seed"]: r["history"][-1]["best_eval_accuracy"] for r in group
            if r["seed"] in SWEEP_SEEDS}


def sweep_table(task: str, runs: list[dict]) -> str:
    """The rate sweep as numbers: each swept row at every rate, seeds 1-3, paired with the
    baseline's same seeds."""
    from hk_tune.search.paired import paired

    swept, table_runs = by_row(runs, rate=True), by_row(runs)
    if not swept:
        return ""
    base = sweep_seeds(table_runs.get("baseline", []))
    lines = [f"### {task}: rate sweep, best-epoch accuracy ×100, median [min, max] of seeds "
             f"{list(SWEEP_SEEDS)}", "",
             "| method | rate | best-epoch acc | Δ vs baseline | seeds won |",
             "|---|---|---|---|---|"]
    for row in SWEEP:
        for rate in sorted((*SWEEP_RATES, PRESET_RATE)):
            group = table_runs.get(row, []) if rate == PRESET_RATE else swept.get((row, rate), [])
            values = sweep_seeds(group)
            if not values:
                lines.append(f"| {row} | {rate} | failed | | |")
                continue
            found = paired(values, base, "max")
            lines.append(f"| {row} | {rate} | {100 * statistics.median(values.values()):.1f} "
                         f"[{100 * min(values.values()):.1f}, {100 * max(values.values()):.1f}] "
                         f"| {100 * found.gain:+.1f} | {found.wins}/{len(values)} |")
    median = statistics.median(base.values()) if base else math.nan
    lines += ["", f"Baseline on the same seeds: {100 * median:.1f}.", ""]
    return "\n".join(lines)


def rate_figure(task: str, runs: list[dict]):
    """The paper's Figure 4: best-epoch accuracy against rate per position, median of seeds
    1-3 with their min-max band, the baseline's median as a dashed line."""
    from hk_tune.tracking.figures import METHODS, Figure, Panel, Series

    swept = by_row(runs, rate=True)
    table_runs = by_row(runs)
    if not swept:
        return None

    def best(group: list[dict]) -> list[float]:
        return [100 * value for value in sweep_seeds(group).values()]

    base = best(table_runs.get("baseline", []))
    panels = []
    for row, position in SWEEP.items():
        points = {PRESET_RATE: best(table_runs.get(row, []))}
        points.update({rate: best(swept.get((row, rate), [])) for rate in SWEEP_RATES})
        rates = sorted(rate for rate, values in points.items() if values)
        series = [Series(row.split("_")[1], rates,
                         [statistics.median(points[r]) for r in rates],
                         low=[min(points[r]) for r in rates],
                         high=[max(points[r]) for r in rates])]
        if base:
            series.append(Series("baseline", [], [statistics.median(base)], kind="hline"))
        panels.append(Panel(f"{METHODS[position]} ({position})", "rate",
                            "best-epoch accuracy ×100", series, x_from_zero=True))
    return Figure(f"rate_{task}", f"{task}: best-epoch accuracy against rate (median and range "
                  f"of seeds {list(SWEEP_SEEDS)})", panels)


def curves_figure(task: str, runs: list[dict]):
    """The baseline's train and eval loss per epoch over seeds (median, min-max band), with
    HiddenKey's eval loss beside them."""
    from hk_tune.tracking.figures import Figure, Panel, Series

    groups = by_row(runs)
    if "baseline" not in groups:
        return None

    def band(group: list[dict], key: str) -> Series | None:
        steps = sorted({row["epoch"] for r in group for row in r["history"]})
        values = [[row[key] for r in group for row in r["history"] if row["epoch"] == epoch]
                  for epoch in steps]
        return Series(key, steps, [statistics.median(v) for v in values],
                      low=[min(v) for v in values], high=[max(v) for v in values])

    panels = [Panel("baseline (no dropout)", "epoch", "loss",
                    [band(groups["baseline"], "train_loss"), band(groups["baseline"],
                                                                  "eval_loss")])]
    if "hiddenkey" in groups:
        eval_loss = band(groups["baseline"], "eval_loss")
        eval_loss.label = "baseline eval_loss"
        hiddenkey = band(groups["hiddenkey"], "eval_loss")
        hiddenkey.label = "hiddenkey eval_loss"
        panels.append(Panel("eval loss: baseline and HiddenKey", "epoch", "loss",
                            [eval_loss, hiddenkey]))
    seeds = sorted({r["seed"] for r in groups["baseline"]})
    return Figure(f"curves_{task}", f"{task}: LoRA without dropout overfits (median and "
                  f"range over seeds {seeds})", panels)


def finish(tracker, report: dict, out: Path, logged: list[dict], files: list[Path]) -> None:
    """Ends the parent run with every run as its results and the outputs as artifacts."""
    results = [{"trial_id": r["id"], "name": r["id"], "status": "errored" if r["error"]
                else "completed", "metric": r["history"][-1]["best_eval_accuracy"]
                if r["history"] else math.nan} for r in logged]
    results.sort(key=lambda r: -r["metric"] if math.isfinite(r["metric"]) else math.inf)
    tracker.finish_search(results, {}, "best_eval_accuracy", "max")
    if not files:
        (out / "reproduce.json").write_text(json.dumps(report, indent=1, default=str))
        files = [out / "reproduce.json"]
    tracker.log_files(files)
    for line in tracker.gaps():
        print(f"MLflow: {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
