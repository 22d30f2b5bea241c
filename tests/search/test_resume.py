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
from test_study import check_study_holds_the_search

from hk_tune import cli
from hk_tune.search import trust

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


# Tune copies the experiment state and the searcher state into the search folder as separate
# files, so a kill can leave either one a step older than the other; both are made here for
# sure, besides the plain kill.
DAMAGE = ["as killed", "searcher older", "experiment older"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_resume_completes_the_budget_without_rerunning_finished_trials(
        tmp_path, tiny_models, toy_data, damage):
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
    older_searcher = None
    # search.json appears once the search's MLflow run exists: only then read the store, so
    # that two processes never create its tables at once. Killed once two trials have finished
    # in Tune's state and in MLflow, and Tune's state holds a third, unfinished one.
    while not (folder / "search.json").exists() or len(finished_in_both(uri, folder)) < 2 or not (
            unfinished_trials(folder)):
        assert process.poll() is None, (tmp_path / "search.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no two trials finished in time"
        if older_searcher is None and (folder / "search.json").exists() and finished_trials(uri):
            older_searcher = searcher_state(folder)
        time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    if damage == "searcher older":
        assert older_searcher and older_searcher != searcher_state(folder)
        for path, data in older_searcher.items():
            path.write_bytes(data)
    elif damage == "experiment older":
        forget_unfinished_trials(folder)
    # What a resume promises not to rerun: the trials Tune's state (as left, or damaged) holds
    # as finished. The kill can land after a third trial's end reached MLflow and before Tune
    # saved it; that trial runs again, and its first run is settled as an orphan (below).
    before = finished_in_both(uri, folder)
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
    check_study_holds_the_search(folder)  # the dashboard's study, rebuilt whole


def newest(folder, pattern: str):
    found = list(folder.glob(pattern))
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def experiment_trials(folder) -> list[dict]:
    """The trials in Tune's newest experiment state (a file replaced whole, never half-written)."""
    path = newest(folder, "experiment_state-*.json")
    if path is None:
        return []
    return [json.loads(state) for state, _ in json.loads(path.read_text())["trial_data"]]


def finished_in_both(uri: str, folder) -> dict[str, int]:
    """The MLflow-finished trials that Tune's newest experiment state also holds as finished."""
    terminated = {t["trial_id"] for t in experiment_trials(folder) if t["status"] == "TERMINATED"}
    return {trial: rows for trial, rows in finished_trials(uri).items() if trial in terminated}


def unfinished_trials(folder) -> list[str]:
    return [t["trial_id"] for t in experiment_trials(folder) if t["status"] != "TERMINATED"]


def searcher_state(folder) -> dict:
    """The newest searcher files (Optuna's study; the trial counter and concurrency limiter),
    with the signatures hk_tune wrote for them."""
    paths = [newest(folder, "searcher-state-*.pkl"), newest(folder, "search_gen_state-*.json")]
    paths = [p for path in paths if path is not None
             for p in (path, path.with_name(path.name + trust.SUFFIX))]
    return {path: path.read_bytes() for path in paths}


def forget_unfinished_trials(folder) -> None:
    """Tune's experiment state as it was before the unfinished trials began."""
    path = newest(folder, "experiment_state-*.json")
    state = json.loads(path.read_text())
    state["trial_data"] = [entry for entry in state["trial_data"]
                           if json.loads(entry[0])["status"] == "TERMINATED"]
    path.write_text(json.dumps(state))
    trust.sign_file(str(path))  # as if hk_tune had saved it so


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
