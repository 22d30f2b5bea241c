"""A trial's process killed by pid in the middle of `hk-tune search`: the trial gets the run
config's `max_failures` restarts and no more (`executor.tune_max_failures`), continues from its
last checkpoint, and its one MLflow child run ends with every evaluation once, in order.

- `train` executor: the Ray Train worker is killed; Ray Train restarts the worker group inside
  the trial (Tune does not retry the trial's driver).
- `inprocess` executor: the Tune trial actor, which is the worker, is killed; Tune restarts it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from fault_search import check_one_ended_run_per_trial, trial_runs, write_space
from ray_actors import actors_of, alive_actors

pytestmark = pytest.mark.usefixtures("ray_session")

STEPS = list(range(4, 33, 4))


def evaluated_steps(uri: str) -> list[int]:
    """The steps at which the search's one trial has logged eval_accuracy to MLflow so far."""
    from mlflow import MlflowClient

    runs = trial_runs(uri)
    if not runs:
        return []
    client = MlflowClient(tracking_uri=uri)
    return [m.step for m in client.get_metric_history(runs[0].info.run_id, "eval_accuracy")]


@pytest.mark.slow
@pytest.mark.parametrize("executor, process", [("train", "RayTrainWorker"),
                                                ("inprocess", "ImplicitFunc")])
def test_a_killed_trial_process_resumes_within_the_search(tmp_path, tiny_models, toy_data,
                                                           executor, process):
    import ray

    space = write_space(tmp_path, tiny_models["bert"], toy_data["pair"],
                        {"optim.lr": {"type": "grid", "values": [5e-3]}},
                        num_samples=1, executor=executor)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "hk_tune.cli", "search", space, "max_failures=1",
               "optim.max_steps=32", "optim.eval_every=4", "--tracking-uri", uri,
               "--address", ray.get_runtime_context().gcs_address]
    earlier = actors_of(process)
    log_path = tmp_path / "search.log"
    with log_path.open("w") as log:
        search = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    deadline = time.monotonic() + 240
    # The search's MLflow run exists once search.json does: read the store only then, so that
    # two processes never create its tables at once. A logged evaluation means Tune (and Ray
    # Train) have registered its checkpoint.
    folder = tmp_path / "runs" / "faults"
    while not (folder / "search.json").exists() or not evaluated_steps(uri):
        assert search.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, "no evaluation logged in time"
        time.sleep(0.2)
    (actor, pid), = alive_actors(process, earlier).items()
    logged_before_kill = evaluated_steps(uri)
    os.kill(pid, signal.SIGKILL)
    assert search.wait(timeout=300) == 0, log_path.read_text()[-3000:]

    assert logged_before_kill[-1] < 32, "the trial had finished before the kill"
    restarted = {a: state for a, (_, state) in actors_of(process).items() if a not in earlier}
    assert restarted[actor] == "DEAD" and len(restarted) == 2  # the killed one and its successor
    (row,) = json.loads((folder / "summary.json").read_text())["results"]
    assert row["status"] == "completed" and row["steps"] == 32
    check_one_ended_run_per_trial(uri, {row["trial_id"]})
    assert evaluated_steps(uri) == STEPS  # each evaluation once, none lost
    # The new process continued from a checkpoint (a restart from scratch would print none);
    # the loop prints this to stderr, which Ray forwards to the search's output.
    resumed = re.findall(r"resuming at step (\d+) of 32", log_path.read_text())
    assert len(resumed) == 1 and int(resumed[0]) in STEPS, log_path.read_text()[-3000:]


@pytest.mark.parametrize("executor, tune_retries", [("train", 0), ("inprocess", 2)])
def test_restarts_are_given_once(tmp_path, tiny_models, toy_data, executor, tune_retries):
    """max_failures: 2 is two restarts of a trial whichever the executor: Ray Train's for the
    `train` executor (Tune then retries nothing), Tune's for `inprocess`."""
    from hk_tune.search import load_space
    from hk_tune.search.executor import tune_max_failures
    from hk_tune.search.experiment import tune_run_config
    from hk_tune.train.trainer import build_trainer

    space = load_space(write_space(tmp_path, tiny_models["bert"], toy_data["pair"],
                                   {"optim.lr": {"type": "grid", "values": [5e-3]}},
                                   executor=executor), ["max_failures=2"])
    assert tune_max_failures(space) == tune_retries
    tune_config = tune_run_config(space, "faults", str(tmp_path), [])
    assert tune_config.failure_config.max_failures == tune_retries
    trial = space.trial_config({"optim/lr": 5e-3})
    assert build_trainer(trial).run_config.failure_config.max_failures == 2
