"""The tiny search against the embedded default: a sqlite store with an artifact folder."""

from __future__ import annotations

import csv
import time

import pytest
import tiny_search

from hk_tune.errors import ConfigError
from hk_tune.tracking import SearchTracker, TrackingError, resolve_tracking_uri


def test_tiny_search_lands_in_the_local_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default store lives in the working directory
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    space = tmp_path / "space.yaml"
    space.write_text(tiny_search.SPACE)
    tracker = SearchTracker()
    assert tracker.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker.check()

    parent, artifacts = tiny_search.drive(tracker, str(space))

    assert set(artifacts) == tiny_search.ARTIFACTS - {"space.yaml"}
    assert tracker.gaps() == []
    tiny_search.check_logged(tracker.tracking_uri, parent)
    folder = tmp_path / "mlartifacts" / "hk_tune" / parent / "artifacts"
    assert (folder / "space.yaml").read_text() == tiny_search.SPACE
    rows = list(csv.DictReader((folder / "results.csv").open()))
    assert [r["trial_id"] for r in rows] == list(tiny_search.TRIALS)
    assert rows[0]["name"] == "hiddenkey r=0.1/0.05 λ=1" and rows[0]["eval_accuracy"] == "0.8"
    assert rows[0]["run_id"] and rows[0]["attn_logits.rate"] == "0.1"
    best = (folder / "best_config.yaml").read_text()
    assert best.startswith("# Best configuration of the search: hiddenkey r=0.1/0.05 λ=1")
    assert "preset: hiddenkey" in best
    assert (folder / "metric_vs_rate.png").read_bytes().startswith(b"\x89PNG")
    assert "plotly" in (folder / "curves.html").read_text()[:200_000].lower()


def test_resumed_search_reuses_its_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = SearchTracker(uri)
    parent = tiny_search.start(first, None)
    run = first.trial_started("hk_00000", tiny_search.HIDDENKEY)
    first.trial_metrics("hk_00000", {"train_loss": 1.0}, 1)
    assert first.trial_started("hk_00000", tiny_search.HIDDENKEY) == run  # a retried trial

    resumed = SearchTracker(uri)  # `hk-tune resume` in a new process
    resumed.attach_search(parent)
    assert resumed.trial_started("hk_00000", {**tiny_search.HIDDENKEY, "new.key": 1}) == run
    resumed.trial_metrics("hk_00000", {"train_loss": 0.5}, 2)
    resumed.trial_finished("hk_00000", "completed")

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    children = client.search_runs(
        [client.get_run(parent).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'"
    )
    assert [c.info.run_id for c in children] == [run]
    assert [p.step for p in client.get_metric_history(run, "train_loss")] == [1, 2]
    assert children[0].data.params["new.key"] == "1"
    assert children[0].info.status == "FINISHED"


def test_unreachable_server_fails_fast_naming_the_uri():
    uri = "http://127.0.0.1:9"  # the discard port: nothing listens there
    tracker = SearchTracker(uri)
    started = time.monotonic()
    with pytest.raises(TrackingError, match="http://127.0.0.1:9") as raised:
        tracker.check()
    assert time.monotonic() - started < 5
    assert isinstance(raised.value, ConfigError) and "\n" not in str(raised.value)


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert resolve_tracking_uri(None) == "http://tracking:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_trial_calls_need_a_search_and_a_known_status(tmp_path):
    tracker = SearchTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(RuntimeError, match="start_search"):
        tracker.trial_started("t", {})
    with pytest.raises(ValueError, match="completed"):
        tracker.trial_finished("t", "done")


def test_silent_server_times_out_within_the_check_budget():
    import socket

    from hk_tune.tracking.store import check_reachable

    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(TrackingError, match=uri):
            check_reachable(uri, timeout_s=0.5)
        assert time.monotonic() - started < 3


def test_extra_files_reach_the_parent_after_it_finished(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SearchTracker(uri)
    parent = tiny_search.start(tracker, None)
    tracker.finish_search([], {}, "eval_accuracy", "max")
    report = tmp_path / "table.md"
    report.write_text("| method | accuracy |\n")

    assert tracker.log_files([report]) == ["table.md"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    assert "table.md" in [f.path for f in client.list_artifacts(parent)]
    assert client.get_run(parent).info.status == "FINISHED"
