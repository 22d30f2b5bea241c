"""What a search costs beyond its training: the same N trials through `hk-tune search` (Ray Tune +
OptunaSearch, MLflow, the in-process executor) and through a plain in-process Optuna loop.

    python benchmarks/search_overhead.py [--trials 8] [--steps 2] [--repeats 2] [--json]
                                         [--executor inprocess|train]

Both run in fresh processes, one trial at a time (equal concurrency), the same MiniLM + LoRA
training function (`hk_tune.train.loop.run_loop`) on the same tiny budget and the same
configurations (the plain loop is given the ones the search ran), so a trial's training is
~1-2 s and the difference is overhead. The two run in turns, `--repeats` times each, since this
machine's speed drifts over minutes. Prints the wall-time ratio (of the medians), the per-trial
overhead ((search - plain) / N) and where the median search's time went: interpreter, imports
and exit, the model and data check, Ray start (the MLflow set-up runs meanwhile), the trials as
Tune timed them inside the actor, Tune's own time between trials and at the start and end of
its fit, and the end (ranking, importances, MLflow artifacts, while Ray shuts down). It splits both
runs into what each trial after the first costs (its ratio is what N trials tend to) and what
is left once per run. With `--json` the last line is a JSON object with `ratio` and
`per_trial_overhead_s`.
It also times, in fresh processes, what no Ray search goes below (Ray's start, a new process
importing torch + transformers + peft and loading the model) and prints the ratio if only those
remained.

`--steps 60` gives each trial real training (the budget of `search_spaces/reproduce.yaml`'s
runs), to see the ratio where the fixed costs are spread over trials that matter.

`--executor train` runs the search's trials through Ray Train instead (a driver on a CPU share
fitting a `TorchTrainer` with new worker processes per trial, as multi-worker and multi-GPU
trials run): its per-trial overhead is what every such trial pays. The trials "as timed inside
the actor" are then the drivers, each including its Train run's start and teardown.

Targets (issue 4): per-trial overhead <= 5 s and ratio <= 1.2 (in-process); <= 15 s per trial
through Ray Train (issue 18).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE = """# overhead benchmark: MiniLM + LoRA, STEPS steps a trial (2: trivial), 32 eval rows
fixed:
  model: minilm
  data.source: bundled:sentiment
  data.max_length: 32
  data.max_train_samples: 64
  data.max_eval_samples: 32
  optim.batch_size: 8
  optim.max_steps: STEPS
  optim.eval_every: STEPS
search:
  dropout.attn_logits:
    type: categorical
    choices: {off: {}, column: {dropout.attn_logits.rate: {type: float, low: 0.05, high: 0.3}}}
  dropout.consistency.loss:
    type: categorical
    choices: {none: {}, kl: {dropout.consistency.weight: {type: log_float, low: 0.01, high: 10}}}
max_concurrent: 1
resources: {num_workers: 1, cpus_per_worker: CPUS}
executor: EXECUTOR
seed: 0
"""


def plain_loop(space_file: str, trials: int, points: list[dict]) -> None:
    """The baseline: an in-process Optuna loop over the same space and training function, given
    the configurations the search ran (`points`, in its order): a trial's cost depends on its
    configuration (a consistency loss doubles the forward passes), so both run the same ones."""
    started = time.perf_counter()
    import optuna
    import torch

    from hk_tune.config.space_file import load_space
    from hk_tune.search.space import suggest
    from hk_tune.train.loop import run_loop
    from hk_tune.train.session import LocalSession

    space = load_space(space_file, [f"num_samples={trials}"])
    torch.set_num_threads(int(space.resources["cpus_per_worker"]))  # as many as a trial has
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=space.seed))
    for point in points:
        study.enqueue_trial(point)
    times = []

    def objective(trial):
        begun = time.perf_counter()
        session = LocalSession()
        params = {**trial.params, **suggest(space, trial)}
        run_loop(space.trial_config(params).to_dict(), session)
        times.append(time.perf_counter() - begun)
        return session.history[-1][space.score]

    study.optimize(objective, n_trials=trials)
    print(json.dumps({"trial_s": times, "total_s": time.perf_counter() - started}))


# The fixed costs a Ray search cannot go below, each timed in a fresh process: local Ray's start,
# and the new trial actor's imports and model load (the driver's own imports overlap neither).
RAY_START = """
import time, ray
started = time.perf_counter()
ray.init(log_to_driver=False, configure_logging=False)
print(time.perf_counter() - started)
"""
COLD_TRIAL = """
import time
started = time.perf_counter()
import peft, torch, transformers
from hk_tune.train.model import ModelSettings, LoraSettings, build_model
build_model(ModelSettings(name="minilm"), LoraSettings(), "classification", 2, 0)
print(time.perf_counter() - started)
"""


def floor_costs(cwd: str) -> dict[str, float]:
    """Ray start and a cold trial process, each in its own fresh interpreter."""
    costs = {}
    for name, script in (("ray start", RAY_START), ("cold trial process", COLD_TRIAL)):
        _, out, _ = run([sys.executable, "-c", script], cwd)
        costs[name] = round(float(out.strip().splitlines()[-1]), 1)
    return costs


def searched_trials(folder: str) -> tuple[list[dict], list[float], list[float]]:
    """The configurations a search's trials ran, as Optuna parameters, each trial's time inside
    its actor, in the order they began, and Tune's time between one trial's last result and
    the next one's start, as the driver saw them."""
    from ray.tune import ExperimentAnalysis

    trials = sorted(ExperimentAnalysis(folder).trials, key=lambda t: t.run_metadata.start_time)
    gaps = [later.run_metadata.start_time - earlier.run_metadata.last_result_time
            for earlier, later in zip(trials, trials[1:], strict=False)]
    return ([trial.evaluated_params for trial in trials],
            [trial.last_result["time_total_s"] for trial in trials], gaps)


def median_run(walls: list[float]) -> int:
    """The index of the median run (the lower middle one of an even number): the breakdown is
    of it."""
    return sorted(range(len(walls)), key=walls.__getitem__)[(len(walls) - 1) // 2]


def mean_after_first(times: list[float]) -> float:
    """The mean time of the trials after the first (cold) one; of all, when there is one."""
    steady = times[1:] or times
    return sum(steady) / len(steady)


def run(command: list[str], cwd: str) -> tuple[float, str, str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{command[:4]} failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="training steps per trial")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each, taken in turns (the ratio is of their medians)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--executor", choices=("inprocess", "train"), default="inprocess",
                        help="how the search runs its trials (the plain loop is always in-process)")
    # internal: the plain loop's process, and the search's configurations for it
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    parser.add_argument("--points", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain_loop(args.plain, args.trials, json.loads(Path(args.points).read_text()))
        return

    work = tempfile.mkdtemp(prefix="hk_tune_overhead_")
    space_file = str(Path(work) / "overhead.yaml")
    # One trial at a time with every core, as the plain loop has them: Ray sets a trial's
    # torch threads (OMP_NUM_THREADS) to its CPU share. Through Ray Train the trial's driver
    # holds a CPU share too, so its worker gets one core less (the plain loop the same number).
    cpus = os.cpu_count() or 1
    if args.executor == "train":
        cpus = max(cpus - 1, 1)
    Path(space_file).write_text(SPACE.replace("STEPS", str(args.steps))
                                .replace("CPUS", str(cpus)).replace("EXECUTOR", args.executor))
    python = sys.executable
    hk_tune = str(Path(python).with_name("hk-tune"))
    # This machine's speed drifts by 10-20% over minutes: the two are run in turns, `--repeats`
    # times each, and the ratio is taken between their medians.
    folder = Path(work) / "hk_tune_runs" / "overhead"
    points_file = str(Path(work) / "points.json")
    plain_walls, search_walls, plains, summaries = [], [], [], []
    for _ in range(args.repeats):
        shutil.rmtree(folder, ignore_errors=True)  # a new search each time
        wall, _, _ = run([hk_tune, "search", space_file, f"num_samples={args.trials}",
                          "--json"], work)
        search_walls.append(wall)
        points, times, gaps = searched_trials(str(folder))
        summaries.append({**json.loads((folder / "summary.json").read_text()), "times": times,
                          "gaps": gaps})
        Path(points_file).write_text(json.dumps(points))
        wall, plain_out, _ = run(
            [python, str(Path(__file__).resolve()), "--plain", space_file, "--trials",
             str(args.trials), "--points", points_file], work)
        plain_walls.append(wall)
        plains.append(json.loads(plain_out.strip().splitlines()[-1]))
    plain_wall, search_wall = statistics.median(plain_walls), statistics.median(search_walls)
    middle, plain_middle = median_run(search_walls), median_run(plain_walls)
    summary, plain = summaries[middle], plains[plain_middle]
    timings = summary["timings_s"]
    floor = floor_costs(work)
    trial_s = summary["times"]  # in the order the trials began, as the plain loop's
    in_process = search_walls[middle] - sum(timings.values())
    between = sum(summary["gaps"])
    fit_ends = timings["trials"] - sum(trial_s) - between
    ratio = search_wall / plain_wall
    per_trial = (search_wall - plain_wall) / args.trials
    floor_s = plain_wall + sum(floor.values())
    # What one more trial costs, and what each costs once per run (the rest): the ratio of the
    # first falls to 1 as trials get longer or more numerous; the second is what is left.
    further = {"search": mean_after_first(trial_s) + between / max(args.trials - 1, 1),
               "plain": mean_after_first(plain["trial_s"])}
    fixed = {"search": search_walls[middle] - (args.trials - 1) * further["search"],
             "plain": plain_walls[plain_middle] - (args.trials - 1) * further["plain"]}
    breakdown = {
        "interpreter, imports, space check, exit after Ray's shutdown (s)": round(in_process, 1),
        "model and data check (s)": timings.get("model and data check"),
        "ray start, MLflow set-up meanwhile (s)": timings.get(
            "ray start (MLflow set-up meanwhile)"),
        "MLflow set-up, rest not overlapped (s)": timings.get("MLflow set-up (rest)"),
        "trials, as timed inside the actor (s)": round(sum(trial_s), 1),
        "  first trial (imports + model load in the new actor) (s)": round(trial_s[0], 2),
        "  other trials, mean (s)": round(mean_after_first(trial_s), 2),
        "Tune between trials (result, searcher, MLflow, actor reuse) (s)": round(between, 1),
        "Tune's start and end (new actor process, last save) (s)": round(fit_ends, 1),
        "results, importances, MLflow artifacts; Ray shuts down meanwhile (s)": timings.get(
            "results and MLflow"),
        "Ray shutdown, rest not overlapped (s)": timings.get("Ray shutdown (rest)"),
        "plain loop: process total (s)": round(plain_wall, 1),
        "plain loop: trials, mean (s)": round(sum(plain["trial_s"]) / args.trials, 2),
        "plain loop: first trial (s)": round(plain["trial_s"][0], 2),
        "plain loop: other trials, mean (s)": round(further["plain"], 2),
        "floor: ray start alone (s)": floor["ray start"],
        "floor: new process importing torch+transformers+peft, loading the model (s)":
            floor["cold trial process"],
    }
    print(f"{args.trials} trials of {args.steps} steps, one at a time, executor "
          f"{args.executor}; {args.repeats} runs "
          "of each, in turns; the breakdown is of the median run of each")
    print(f"hk-tune search: {search_wall:.1f} s   plain Optuna loop: {plain_wall:.1f} s   "
          f"(medians; runs: search {[round(w, 1) for w in search_walls]}, plain "
          f"{[round(w, 1) for w in plain_walls]})")
    for key, value in breakdown.items():
        print(f"  {key:<66} {value}")
    print(f"ratio {ratio:.2f}   per-trial overhead {per_trial:.2f} s")
    print(f"each trial after the first: search {further['search']:.2f} s (in the actor, and Tune "
          f"between trials) vs plain {further['plain']:.2f} s, ratio "
          f"{further['search'] / further['plain']:.2f}; the rest, once per run: search "
          f"{fixed['search']:.1f} s vs plain {fixed['plain']:.1f} s")
    print(f"bound: plain loop + Ray start + one cold trial process = {floor_s:.1f} s, ratio "
          f"{floor_s / plain_wall:.2f}, per-trial overhead "
          f"{(floor_s - plain_wall) / args.trials:.2f} s")
    if args.json:
        print(json.dumps({"ratio": round(ratio, 3), "per_trial_overhead_s": round(per_trial, 2),
                          "floor_ratio": round(floor_s / plain_wall, 3),
                          "further_trial_ratio": round(further["search"] / further["plain"], 3),
                          "once_per_run_s": {k: round(v, 1) for k, v in fixed.items()},
                          "trials": args.trials, "steps": args.steps,
                          "repeats": args.repeats, "executor": args.executor,
                          "search_s": round(search_wall, 1),
                          "plain_s": round(plain_wall, 1), "breakdown": breakdown}))


if __name__ == "__main__":
    main()
