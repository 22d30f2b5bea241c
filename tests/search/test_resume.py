"""Resume after a real interruption: `hk-tune search` runs in a subprocess on the shared local Ray,
is killed by pid once two trials have finished, and `hk-tune resume` completes the budget
without running a finished trial again, leaving one ended MLflow child run per trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_search import tiny_space

from hk_tune import cli

pytestmark = pytest.mark.usefixtures("ray_session")


def finished_trials(uri: str) -> dict[str, int]:
    """Trial id -> evaluations logged to MLflow, for the trials whose child run completed."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("hk_tune")
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id],
                              "tags.`hk_tune.status` = 'completed' AND "
                              "tags.`hk_tune.kind` = 'trial'")
    return {run.data.tags["hk_tune.trial_id"]: len(
        client.get_metric_history(run.info.run_id, "eval_accuracy")) for run in runs}


def test_resume_completes_the_budget_without_rerunning_finished_trials(
        tmp_path, tiny_models, toy_data):
    import ray

    space = tiny_space(tmp_path, tiny_models, toy_data, num_samples=5, max_concurrent=1,
                       scheduler="none")
    overrides = ["optim.max_steps=48", "optim.eval_every=8"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "hk_tune.cli", "search", space, *overrides,
               "--address", address, "--tracking-uri", uri]
    log = (tmp_path / "search.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    folder = tmp_path / "runs" / "tiny"
    deadline = time.monotonic() + 240
    # search.json appears once the search's MLflow run exists: only then read the store, so
    # that two processes never create its tables at once.
    while not (folder / "search.json").exists() or len(finished_trials(uri)) < 2:
        assert process.poll() is None, (tmp_path / "search.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no two trials finished in time"
        time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    before = finished_trials(uri)
    assert 2 <= len(before) < 5

    assert cli.main(["resume", str(folder), "--json"]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["results"]) == 5
    assert all(row["status"] == "completed" for row in summary["results"])
    after = finished_trials(uri)
    assert len(after) == 5
    for trial, rows in before.items():
        assert after[trial] == rows, f"{trial} ran again"
    check_child_runs(uri, {row["trial_id"] for row in summary["results"]},
                     steps=list(range(8, 49, 8)))


def check_child_runs(uri: str, trial_ids: set[str], steps: list[int]) -> None:
    """Exactly one child run per trial of the search and none for any other trial id (a trial
    the killed search had started but Tune's state had not recorded), each ended: FINISHED
    (completed), KILLED (stopped) or FAILED (errored), never left RUNNING; each completed
    trial's evaluations logged once, at `steps`."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("hk_tune")
    runs = client.search_runs([experiment.experiment_id], "tags.`hk_tune.kind` = 'trial'",
                              max_results=1000)
    ids = [run.data.tags["hk_tune.trial_id"] for run in runs]
    assert sorted(ids) == sorted(trial_ids), "duplicate or orphaned child runs"
    ended = {"FINISHED": "completed", "KILLED": "stopped", "FAILED": "errored"}
    for run in runs:
        trial = run.data.tags["hk_tune.trial_id"]
        assert run.info.status in ended, f"{trial}'s run is {run.info.status}"
        assert run.data.tags["hk_tune.status"] == ended[run.info.status], trial
        assert run.info.end_time is not None, trial
        if run.info.status == "FINISHED":
            history = client.get_metric_history(run.info.run_id, "eval_accuracy")
            assert [m.step for m in history] == steps, trial
