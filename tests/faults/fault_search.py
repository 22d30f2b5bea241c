"""What the fault tests share: a tiny search space, and reading a search's child runs back from
MLflow. (A plain module with a name of its own: test folders have no __init__.py, so modules
are imported by their bare names.)"""

from __future__ import annotations

from pathlib import Path

import yaml

# The run's final states in MLflow: nothing may be left RUNNING once a search has finished.
FINAL_STATUSES = {"FINISHED": "completed", "KILLED": "stopped", "FAILED": "errored"}


def write_space(tmp_path: Path, model: str, data: dict, search: dict, **settings) -> str:
    """A search-space file over a tiny model on the toy pair task, one trial at a time."""
    raw = {
        "fixed": {"model": model, "data.source": data["source"], "data.task": "classification",
                  "data.text_pair": "other", "data.max_length": 32, "optim.lr": 5e-3,
                  "optim.batch_size": 4, "optim.max_steps": 8, "optim.eval_every": 4},
        "search": search,
        "num_samples": 3, "max_concurrent": 1, "scheduler": "none", "seed": 0,
        "resources": {"num_workers": 1, "cpus_per_worker": 1},
        "storage_path": str(tmp_path / "runs"), "name": "faults", **settings,
    }
    path = tmp_path / "faults.yaml"
    path.write_text("# a tiny search for the fault tests\n" + yaml.safe_dump(raw))
    return str(path)


def trial_runs(uri: str) -> list:
    """Every trial's child run in the `hk_tune` experiment, deleted ones excluded."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("hk_tune")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], "tags.`hk_tune.kind` = 'trial'",
                              max_results=1000)


def check_one_ended_run_per_trial(uri: str, trial_ids: set[str]) -> dict:
    """Asserts that MLflow holds exactly one child run per trial id, none for other ids, each
    ended with a final status that agrees with its `hk_tune.status` tag. Returns id -> run."""
    runs = trial_runs(uri)
    ids = [run.data.tags["hk_tune.trial_id"] for run in runs]
    assert sorted(ids) == sorted(trial_ids), f"child runs {sorted(ids)} for trials {trial_ids}"
    for run in runs:
        status = run.info.status
        assert status in FINAL_STATUSES, f"{run.data.tags['hk_tune.trial_id']} left {status}"
        assert run.data.tags["hk_tune.status"] == FINAL_STATUSES[status]
        assert run.info.end_time is not None
    return {run.data.tags["hk_tune.trial_id"]: run for run in runs}
