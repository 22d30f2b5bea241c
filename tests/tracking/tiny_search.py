"""A tiny search driven through `SearchTracker` exactly as the search package drives it, and the
checks that the MLflow client then finds it laid out as issue 5 says.

Three trials (completed, stopped by the scheduler, errored), per-step metrics, one
seed-confirmation run and the closing artifacts. Phases are separate functions so a test can
stop the server between them.
"""

from __future__ import annotations

import math
import subprocess

from hk_tune.tracking import SearchTracker, run_name

METRIC = "eval_accuracy"
FIXED = {"model": "tiny-bert", "data": {"task": "classification"},
         "optim": {"lr": 0.005, "max_steps": 3}}
SPACE = "# what dropout suits a tiny model?\nsearch:\n  attn_logits.rate: [0.05, 0.1]\n"
HIDDENKEY = {"attn_logits.pattern": "column", "attn_logits.rate": 0.1,
             "ffn_hidden.pattern": "element", "ffn_hidden.rate": 0.05,
             "consistency.loss": "kl", "consistency.weight": 1.0}
BASELINE = {"attn_logits.rate": 0.0, "ffn_hidden.rate": 0.0, "consistency.loss": "none"}
DROPATTENTION = {"attn_weights.pattern": "span", "attn_weights.rate": 0.2,
                 "consistency.loss": "none"}
# trial id: (params, status, reason, evaluation steps reported)
TRIALS = {
    "hk_00000": (HIDDENKEY, "completed", None, 3),
    "base_00001": (BASELINE, "stopped", None, 2),
    "da_00002": (DROPATTENTION, "errored", "RuntimeError: loss is NaN at step 2", 2),
}
NAMES = {
    "hk_00000": "hiddenkey r=0.1/0.05 λ=1",
    "base_00001": "baseline",
    "da_00002": "dropattention_span r=0.2",
}
ARTIFACTS = {"space.yaml", "results.csv", "best_config.yaml", "confirmation.yaml",
             "importances.png", "importances.html", "metric_vs_rate.png", "metric_vs_rate.html",
             "curves.png", "curves.html"}


def metrics_at(trial_id: str, step: int) -> dict:
    """What the trial reports at `step`: losses, the task metric, speed, and a non-number."""
    gain = {"hk_00000": 0.1, "base_00001": 0.05, "da_00002": 0.0}[trial_id]
    return {"train_loss": 1.0 / step, "eval_loss": 1.2 / step, METRIC: 0.5 + gain * step,
            "tokens_per_s": 1000.0 + step, "checkpoint": "/tmp/not-a-number"}


def start(tracker: SearchTracker, space_file: str) -> str:
    return tracker.start_search("tiny search", space_file, FIXED, seed=7,
                                tags={"hk_tune.space": "tiny"})


def run_trial(tracker: SearchTracker, trial_id: str) -> None:
    params, status, reason, steps = TRIALS[trial_id]
    tracker.trial_started(trial_id, params)
    for step in range(1, steps + 1):
        tracker.trial_metrics(trial_id, metrics_at(trial_id, step), step)
    tracker.trial_finished(trial_id, status, reason)


def history(trial_id: str) -> list[dict]:
    steps = TRIALS[trial_id][3]
    return [{"step": step, **metrics_at(trial_id, step)} for step in range(1, steps + 1)]


def confirm(tracker: SearchTracker) -> str:
    return tracker.confirmation_run("hk_00000", 1, HIDDENKEY, history("hk_00000"),
                                    {METRIC: 0.79, "eval_loss": 0.41})


def finish(tracker: SearchTracker) -> list[str]:
    results = []
    for trial_id, (params, status, _, steps) in TRIALS.items():
        value = history(trial_id)[-1][METRIC] if status != "errored" else math.nan
        results.append({"trial_id": trial_id, "status": status, **params, "metric": value,
                        "steps": steps, "time_s": 1.5})
    return tracker.finish_search(
        results, {"preset": "hiddenkey", **HIDDENKEY}, METRIC, "max",
        importances={"attn_logits.rate": 0.55, "ffn_hidden.rate": 0.3, "consistency.weight": 0.15},
        histories={t: history(t) for t in TRIALS}, baseline_trial_id="base_00001",
        best_trial_id="hk_00000", confirmation={"seeds": [1], "median": 0.79},
    )


def drive(tracker: SearchTracker, space_file: str) -> tuple[str, list[str]]:
    """The whole search without interruption; returns the parent run id and the artifacts."""
    parent = start(tracker, space_file)
    for trial_id in TRIALS:
        run_trial(tracker, trial_id)
    confirm(tracker)
    return parent, finish(tracker)


def check_logged(uri: str, parent_id: str, experiment: str = "hk_tune") -> None:
    """Asserts the search is in `uri` as one parent, 3 trial children and 1 confirmation."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [r.info.run_id for r in parents] == [parent_id]
    parent = parents[0]
    assert parent.info.run_name == "tiny search" and parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["hk_tune.version"] and tags["hk_tune.seed"] == "7"
    assert tags["hk_tune.space"] == "tiny" and tags["hk_tune.best_trial"] == "hk_00000"
    assert tags.get("hk_tune.git_commit") == _git_head()
    assert parent.data.params["optim.lr"] == "0.005" and parent.data.params["data.task"]
    assert parent.data.metrics[METRIC] == 0.8
    assert {a.path for a in client.list_artifacts(parent_id)} >= ARTIFACTS

    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    trials = {r.data.tags["hk_tune.trial_id"]: r for r in children
              if r.data.tags.get("hk_tune.kind") == "trial"}
    assert set(trials) == set(TRIALS) and len(children) == len(TRIALS) + 1
    mlflow_status = {"completed": "FINISHED", "stopped": "KILLED", "errored": "FAILED"}
    for trial_id, (params, status, reason, steps) in TRIALS.items():
        run = trials[trial_id]
        assert run.info.run_name == NAMES[trial_id] == run_name(params)
        assert run.info.status == mlflow_status[status]
        assert run.data.tags["hk_tune.status"] == status
        assert run.data.tags.get("hk_tune.error") == reason
        for key, value in params.items():
            assert run.data.params[key] == str(value)
        assert run.data.params["optim.max_steps"] == "3"  # the fixed settings too
        assert "checkpoint" not in run.data.metrics
        for key in ("train_loss", "eval_loss", METRIC, "tokens_per_s"):
            points = client.get_metric_history(run.info.run_id, key)
            assert sorted(p.step for p in points) == list(range(1, steps + 1)), (trial_id, key)
        loss = {p.step: p.value for p in client.get_metric_history(run.info.run_id, "train_loss")}
        assert loss[2] == 0.5

    (confirmation,) = [r for r in children if r.data.tags.get("hk_tune.kind") == "confirmation"]
    assert confirmation.data.tags["hk_tune.confirms"] == "hk_00000"
    assert confirmation.data.tags["hk_tune.confirms_run"] == trials["hk_00000"].info.run_id
    assert confirmation.data.tags["hk_tune.seed"] == "1"
    assert confirmation.info.run_name == "hiddenkey r=0.1/0.05 λ=1 seed=1"
    assert confirmation.data.metrics[METRIC] == 0.79
    assert len(client.get_metric_history(confirmation.info.run_id, "train_loss")) == 3


def _git_head() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None
