"""The tiny search logged over HTTP to a real `mlflow server`, with and without an outage."""

from __future__ import annotations

import time

import tiny_search

from hk_tune.tracking import SearchTracker


def test_tiny_search_over_http(logged_server):
    assert set(logged_server.artifacts) == tiny_search.ARTIFACTS - {"space.yaml"}
    assert logged_server.gaps == []
    tiny_search.check_logged(logged_server.server.uri, logged_server.parent_id)
    # The server proxies artifacts into the folder beside its store.
    assert list((logged_server.server.folder / "mlartifacts").rglob("best_config.yaml"))


def test_outage_during_a_search_loses_nothing(start_server, tmp_path):
    server = start_server()
    space = tmp_path / "space.yaml"
    space.write_text(tiny_search.SPACE)
    tracker = SearchTracker(server.uri)
    tracker.check()
    parent = tiny_search.start(tracker, str(space))
    tiny_search.run_trial(tracker, "hk_00000")

    server.kill()  # the server crashes mid-search
    started = time.monotonic()
    tiny_search.run_trial(tracker, "base_00001")
    tiny_search.run_trial(tracker, "da_00002")
    assert tiny_search.confirm(tracker) == ""
    assert time.monotonic() - started < 5  # trials are not held up by the outage
    assert len(tracker.gaps()) >= 4 and all("waiting" in g for g in tracker.gaps())

    server.start()  # back on the same port and store
    artifacts = tiny_search.finish(tracker)

    assert set(artifacts) == tiny_search.ARTIFACTS - {"space.yaml"} | {"tracking_gaps.txt"}
    gaps = tracker.gaps()
    assert any("start of trial base_00001" in g for g in gaps)
    assert all(g.endswith("logged on retry") for g in gaps), gaps
    tiny_search.check_logged(server.uri, parent)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.uri)
    assert client.get_run(parent).data.tags["hk_tune.tracking_gaps"] == str(len(gaps))
