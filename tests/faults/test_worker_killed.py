"""A Ray Train worker killed by pid in the middle of a run: Ray Train starts a new worker group
(FailureConfig from the run config's max_failures), the loop continues from the last checkpoint,
and the run ends with its whole metric history, equal to an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from ray_actors import actors_of, alive_actors

from hk_tune.config.run import RunConfig
from hk_tune.train.trainer import build_trainer, fit, fit_trainer

pytestmark = pytest.mark.usefixtures("ray_session")

ONE_WORKER = {"num_workers": 1, "cpus_per_worker": 1}
# Ray Train's record of the checkpoints it has registered (Ray is pinned): a checkpoint listed
# there is one a restarted worker group is handed.
SNAPSHOT = "checkpoint_manager_snapshot.json"


def registered_steps(run_folder: Path) -> list[int]:
    """The steps of the checkpoints Ray Train has registered for the run so far."""
    try:
        snapshot = json.loads((run_folder / SNAPSHOT).read_text())
    except (OSError, ValueError):  # not written yet, or being written
        return []
    return [int(result["checkpoint_dir_name"].removeprefix("checkpoint_step"))
            for result in snapshot.get("checkpoint_results", [])]


def without_speed(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "tokens_per_s"}


def test_a_killed_worker_restarts_from_its_last_checkpoint(tiny_run):
    raw = tiny_run("bert", "classification", name="killed", scaling=ONE_WORKER, max_failures=1,
                   optim={"max_steps": 32, "eval_every": 4})
    run_folder = Path(raw["storage_path"]) / "killed"
    earlier = actors_of("RayTrainWorker")
    outcome: dict = {}

    def train() -> None:
        try:
            outcome["result"] = fit_trainer(build_trainer(RunConfig.from_dict(raw)))
        except BaseException as error:  # handed to the test below
            outcome["error"] = error

    thread = threading.Thread(target=train)
    thread.start()
    deadline = time.monotonic() + 180
    while not registered_steps(run_folder):
        assert thread.is_alive(), f"the run ended before a checkpoint: {outcome}"
        assert time.monotonic() < deadline, "no checkpoint registered in time"
        time.sleep(0.05)
    (worker, pid), = alive_actors("RayTrainWorker", earlier).items()
    killed_after = registered_steps(run_folder)
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive(), "the run did not finish after the kill"
    assert "error" not in outcome, f"the run failed instead of restarting: {outcome['error']!r}"

    result = outcome["result"]
    assert killed_after[-1] < 32, "the run had finished before the kill"
    workers = {a: state for a, (_, state) in actors_of("RayTrainWorker").items()
               if a not in earlier}
    assert workers[worker] == "DEAD" and len(workers) == 2  # the killed one and its successor
    # Every evaluation once: a restart from scratch would have reported the registered steps
    # again, a lost evaluation would leave a gap. (Ray Train lists the kept checkpoints' metrics
    # in score order, best last, since the run scores its checkpoints by its metric.)
    history = sorted(result.metrics_dataframe.to_dict("records"), key=lambda row: row["step"])
    assert [row["step"] for row in history] == list(range(4, 33, 4))
    # Resuming is exact: the run ends with the numbers of the same run never interrupted
    # (in this process, which a Ray worker matches: test_trainer.py).
    uninterrupted = fit(RunConfig.from_dict({**raw, "name": "whole",
                                             "scaling": {"num_workers": 0}}))
    assert without_speed(history[-1]) == without_speed(uninterrupted.metrics)
