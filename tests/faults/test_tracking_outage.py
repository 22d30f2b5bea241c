"""The MLflow server stopped in the middle of `hk-tune search` and started again on the same
port over the same store: the search runs on; afterwards every trial's child run exists, ended,
with its whole metric history, and the search's report says which calls missed the store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from fault_search import check_one_ended_run_per_trial, trial_runs, write_space

from hk_tune.tracking import serve_ui, stop_ui

pytestmark = pytest.mark.usefixtures("ray_session")

STEPS = list(range(100, 1201, 100))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def logged_steps(uri: str) -> dict[str, list[int]]:
    """Trial id -> the steps of its logged eval_accuracy."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return {run.data.tags["hk_tune.trial_id"]: [
        m.step for m in client.get_metric_history(run.info.run_id, "eval_accuracy")]
        for run in trial_runs(uri)}


@pytest.mark.slow
def test_a_tracking_outage_loses_no_trial(tmp_path, tiny_models, toy_data):
    import ray

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = serve_ui(store, port=port, log_file=str(tmp_path / "server.log"))
    # Trials long enough (≈12 s each here) that the server, stopped during the first, is back
    # (≈15 s to start) well before the search ends and retries what it missed. Four values for
    # four trials: a repeated configuration is not trained again.
    space = write_space(tmp_path, tiny_models["bert"], toy_data["pair"],
                        {"optim.lr": {"type": "grid", "values": [1e-3, 2e-3, 3e-3, 5e-3]}},
                        num_samples=4)
    command = [sys.executable, "-m", "hk_tune.cli", "search", space, "optim.max_steps=1200",
               "optim.eval_every=100", "--tracking-uri", uri,
               "--address", ray.get_runtime_context().gcs_address]
    log_path = tmp_path / "search.log"
    try:
        with log_path.open("w") as log:
            search = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                      env=os.environ)
        deadline = time.monotonic() + 240
        while not any(logged_steps(uri).values()):
            assert search.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "no evaluation logged in time"
            time.sleep(0.5)
        stop_ui(server)
        time.sleep(2)  # a few evaluations meet a closed port
        server = serve_ui(store, port=port, log_file=str(tmp_path / "server_again.log"))
        assert search.poll() is None, "the search ended before the server was back"
        assert search.wait(timeout=400) == 0, log_path.read_text()[-3000:]
    finally:
        stop_ui(server)
        if search.poll() is None:
            search.kill()

    summary = json.loads((tmp_path / "runs" / "faults" / "summary.json").read_text())
    gaps = summary["tracking_gaps"]
    assert any(gap.startswith("metrics of trial ") for gap in gaps), gaps
    assert all(gap.endswith("logged on retry") for gap in gaps), gaps
    output = log_path.read_text()
    assert f"MLflow: {len(gaps)} calls did not land when made; {len(gaps)} were logged" in output

    server = serve_ui(store, port=port, log_file=str(tmp_path / "server_check.log"))
    try:
        rows = summary["results"]
        assert len(rows) == 4 and all(row["status"] == "completed" for row in rows)
        check_one_ended_run_per_trial(uri, {row["trial_id"] for row in rows})
        assert logged_steps(uri) == {row["trial_id"]: STEPS for row in rows}
    finally:
        stop_ui(server)
