"""What a search killed between two writes can leave in MLflow, settled when the resumed search
finishes: a child run of a trial Tune's saved state does not hold (created just before the kill)
is deleted (one whose end reached MLflow, not Tune, keeps FINISHED), and a trial's run whose end
was never logged is ended with the trial's status. A real local MLflow store; the kill itself is
tests/search/test_resume.py, where these windows are hit now and then."""

from __future__ import annotations

from hk_tune.tracking import SearchTracker


def test_finishing_a_resumed_search_settles_what_the_killed_one_left(tmp_path):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    killed = SearchTracker(uri)
    killed.check()
    parent = killed.start_search("interrupted", None, {"optim.max_steps": 4}, seed=0)
    for trial in ("done", "unended", "lost", "ended_lost"):
        killed.trial_started(trial, {"optim.lr": 0.01})
        killed.trial_metrics(trial, {"step": 4, "eval_accuracy": 0.5}, 4)
    killed.trial_finished("done", "completed")
    killed.trial_finished("ended_lost", "completed")
    # The process dies here. `hk-tune resume` attaches to the search; Tune's state holds "done"
    # and "unended" (its end reached Tune, not MLflow), not "lost" or "ended_lost" (its end
    # reached MLflow, not Tune).
    resumed = SearchTracker(uri)
    resumed.attach_search(parent)
    rows = [{"trial_id": trial, "status": status, "optim.lr": 0.01, "metric": 0.5, "steps": 4,
             "time_s": 1.0} for trial, status in (("done", "completed"), ("unended", "stopped"))]
    resumed.finish_search(rows, {"optim": {"lr": 0.01}}, "eval_accuracy", "max")
    assert resumed.gaps() == []

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("hk_tune").experiment_id
    runs = {run.data.tags["hk_tune.trial_id"]: run for run in client.search_runs(
        [experiment], "tags.`hk_tune.kind` = 'trial'", run_view_type=ViewType.ALL)}
    assert runs["done"].info.status == "FINISHED"
    assert runs["done"].data.tags["hk_tune.status"] == "completed"
    assert runs["unended"].info.status == "KILLED"
    assert runs["unended"].data.tags["hk_tune.status"] == "stopped"
    lost = runs["lost"]
    assert lost.info.lifecycle_stage == "deleted" and lost.info.status == "KILLED"
    assert lost.data.tags["hk_tune.status"] == "orphaned"
    ended_lost = runs["ended_lost"]
    assert ended_lost.info.lifecycle_stage == "deleted" and ended_lost.info.status == "FINISHED"
    assert ended_lost.data.tags["hk_tune.status"] == "orphaned"
    active = client.search_runs([experiment], "tags.`hk_tune.kind` = 'trial'")
    assert sorted(run.data.tags["hk_tune.trial_id"] for run in active) == ["done", "unended"]
