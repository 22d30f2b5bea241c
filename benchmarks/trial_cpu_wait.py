"""How long a trial's threads wait for a CPU that another process holds: the same N trials of
`search_overhead.py` through `hk-tune search` (local Ray without its dashboard, and with
`--ray-dashboard`) and through the plain in-process loop, run in turns.

    python benchmarks/trial_cpu_wait.py [--trials 6] [--steps 60] [--repeats 2] [--json]

The kernel's scheduler statistics (/proc/PID/task/TID/schedstat) give, for every thread of the
process that trains (Ray's trial actor, `ray::ImplicitFunc`, or the plain loop), its time
runnable but not running and its number of time slices. Unlike wall time, which drifts by 10-20%
between runs on a shared machine, the wait counts only what this machine's own processes took.
Prints the median of each; with `--json` the last line is a JSON object.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from search_overhead import SPACE, searched_trials

ACTOR = "ray::ImplicitFunc"  # the process title Ray gives a Tune function trial's actor


def trainer_pids(root: int) -> list[int]:
    """The plain loop's process (`root`), or the trial actors Ray started."""
    found = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            text = Path(cmdline).read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text.startswith(ACTOR):
            found.append(int(cmdline.split("/")[2]))
    return found or [root]


def waits(command: list[str], cwd: str, env: dict) -> dict[str, float]:
    """Runs `command`; returns the training threads' wait (s) and time slices, summed over the
    threads' last readings, taken every 0.2 s."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    last: dict[tuple[int, int], tuple[int, int, int]] = {}
    while process.poll() is None:
        for pid in trainer_pids(process.pid):
            for stat in glob.glob(f"/proc/{pid}/task/*/schedstat"):
                try:
                    run_ns, wait_ns, slices = map(int, Path(stat).read_text().split())
                except (OSError, ValueError):
                    continue
                last[(pid, int(stat.split("/")[4]))] = (run_ns, wait_ns, slices)
        time.sleep(0.2)
    if process.returncode != 0:
        sys.exit(f"{command[:3]} failed:\n{process.stderr.read()[-3000:]}")
    return {"run_s": sum(v[0] for v in last.values()) / 1e9,
            "wait_s": sum(v[1] for v in last.values()) / 1e9,
            "slices": sum(v[2] for v in last.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not os.path.exists("/proc/self/schedstat"):
        sys.exit("needs Linux's scheduler statistics (/proc/PID/schedstat)")

    work = tempfile.mkdtemp(prefix="hk_tune_cpu_wait_")
    space_file = str(Path(work) / "overhead.yaml")
    Path(space_file).write_text(SPACE.replace("STEPS", str(args.steps))
                                .replace("CPUS", str(os.cpu_count() or 1)))
    python = sys.executable
    hk_tune = str(Path(python).with_name("hk-tune"))
    folder = Path(work) / "hk_tune_runs" / "overhead"
    points_file = str(Path(work) / "points.json")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    search = [hk_tune, "search", space_file, f"num_samples={args.trials}"]
    plain = [python, str(Path(__file__).with_name("search_overhead.py")), "--plain", space_file,
             "--trials", str(args.trials), "--points", points_file]
    runs: dict[str, list[dict]] = {"search": [], "search --ray-dashboard": [], "plain loop": []}
    for _ in range(args.repeats):
        for name in runs:
            if name == "plain loop":
                runs[name].append(waits(plain, work, env))
                continue
            shutil.rmtree(folder, ignore_errors=True)
            runs[name].append(waits(search + name.split()[1:], work, env))
            Path(points_file).write_text(json.dumps(searched_trials(str(folder))[0]))
    medians = {name: {key: statistics.median(run[key] for run in done) for key in done[0]}
               for name, done in runs.items()}
    print(f"{args.trials} trials of {args.steps} steps; {args.repeats} runs of each, in turns; "
          "the training threads' time waiting for a CPU (medians)")
    for name, median in medians.items():
        print(f"  {name:<24} wait {median['wait_s']:5.2f} s   slices {median['slices']:7.0f}   "
              f"run {median['run_s']:5.1f} s")
    ratio = medians["search --ray-dashboard"]["wait_s"] / medians["search"]["wait_s"]
    print(f"wait with the dashboard / without: {ratio:.2f}")
    if args.json:
        print(json.dumps({"dashboard_wait_ratio": round(ratio, 3), "trials": args.trials,
                          "steps": args.steps, "repeats": args.repeats,
                          "medians": {k: {m: round(v, 2) for m, v in d.items()}
                                      for k, d in medians.items()}}))


if __name__ == "__main__":
    main()
