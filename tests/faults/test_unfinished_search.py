"""Searches that do not finish, caused for real: interrupted by SIGTERM or Ctrl-C while a trial
runs, every trial failing, a cluster address where nothing answers. None leaves an MLflow run
RUNNING or a search state that blocks what comes next: the runs end with a status and the
reason, and `hk-tune resume` (or running the search again) works."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from fault_search import check_one_ended_run_per_trial, trial_runs, write_space

from hk_tune import cli

pytestmark = pytest.mark.usefixtures("ray_session")

SEARCH = {"dropout.ffn_hidden.rate": {"type": "grid", "values": [0.0, 0.1]}}


def parent_run(uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("hk_tune")
    runs = client.search_runs([experiment.experiment_id], "tags.`hk_tune.kind` = 'search'")
    assert len(runs) == 1, runs
    return runs[0]


# Ctrl-C takes the same path as SIGTERM once it reaches the search: the slow selection has it.
@pytest.mark.parametrize("stop", [
    signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)], ids=["SIGTERM", "Ctrl-C"])
def test_an_interrupted_search_ends_its_runs_and_resumes(tmp_path, tiny_models, toy_data, stop):
    import ray

    space = write_space(tmp_path, tiny_models["bert"], toy_data["pair"], SEARCH, num_samples=2,
                        confirm={"top_k": 1, "seeds": 1})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = tmp_path / "runs" / "faults"
    log = tmp_path / "search.log"
    # Long enough trials that the signal lands while one runs.
    command = [sys.executable, "-m", "hk_tune.cli", "search", space, "optim.max_steps=40",
               "optim.eval_every=4", "--address", ray.get_runtime_context().gcs_address,
               "--tracking-uri", uri]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ)
    deadline = time.monotonic() + 180
    while "eval " not in log.read_text():  # a trial is running and has reported
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no trial reported in time"
        time.sleep(0.3)
    process.send_signal(stop)
    assert process.wait(timeout=60) == 130, log.read_text()[-3000:]
    # The trial's last forwarded lines may come after it.
    said = [line for line in log.read_text().splitlines() if line.startswith("hk-tune: ")]
    assert said == [f"hk-tune: interrupted; Tune's state is saved: continue with "
                    f"`hk-tune resume {folder}`"]
    parent = parent_run(uri)
    assert parent.info.status == "KILLED" and parent.data.tags["hk_tune.status"] == "interrupted"
    assert "interrupted" in parent.data.tags["hk_tune.error"]
    assert [run.info.status for run in trial_runs(uri)] == ["KILLED"]  # the running trial's
    assert not (folder / "summary.json").exists()

    assert cli.main(["resume", str(folder)]) == 0
    parent = parent_run(uri)
    assert parent.info.status == "FINISHED" and parent.data.tags["hk_tune.status"] == "completed"
    assert "hk_tune.error" not in parent.data.tags
    summary = json.loads((folder / "summary.json").read_text())
    runs = check_one_ended_run_per_trial(uri, {row["trial_id"] for row in summary["results"]})
    assert all("hk_tune.error" not in run.data.tags for run in runs.values())


@pytest.mark.slow
def test_a_search_whose_every_trial_fails_ends_failed_with_the_reason(tmp_path, tiny_models,
                                                                       toy_data):
    space = write_space(tmp_path, tiny_models["bert"], toy_data["pair"], SEARCH, num_samples=2)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # A learning rate that diverges at once: every trial errors (NaN loss).
    with pytest.raises(RuntimeError, match="every trial failed"):
        cli.main(["search", space, "optim.lr=1e30", "--tracking-uri", uri])
    parent = parent_run(uri)
    assert parent.info.status == "FAILED" and parent.data.tags["hk_tune.status"] == "errored"
    assert "every trial failed" in parent.data.tags["hk_tune.error"]
    assert {run.info.status for run in trial_runs(uri)} == {"FAILED"}


def test_an_address_where_nothing_answers_is_refused_at_once(tmp_path, tiny_models, toy_data):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free once closed: nothing listens there
    space = write_space(tmp_path, tiny_models["bert"], toy_data["pair"], SEARCH)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "hk_tune.cli", "search", space, "--address",
                           f"127.0.0.1:{port}", "--tracking-uri", uri],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"hk-tune: error: {space}: --address 127.0.0.1:{port}: Ray at ")
    assert "does not answer" in error and "start the cluster" in error
    assert time.monotonic() - started < 60  # Ray's own connect retries for longer
    assert not (tmp_path / "runs" / "faults" / "search.json").exists()
    assert not (tmp_path / "mlflow.db").exists()  # no run made for a search that never began
