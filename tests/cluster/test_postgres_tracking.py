"""The cluster search's runs land in `mlflow server` backed by a real PostgreSQL server (the
shared tracking stack of cluster/mlflow-stack.compose.yaml, without containers)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_search_runs_land_in_postgres(postgres, cluster_search):
    if postgres is None:
        pytest.skip("Debian's postgresql is not installed (apt-get install -y postgresql)")
    from mlflow import MlflowClient

    assert cluster_search.tracking.backend.startswith("postgresql+psycopg2://")
    client = MlflowClient(tracking_uri=cluster_search.tracking.uri)
    experiment = client.get_experiment_by_name("hk_tune")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("hk_tune.kind") == "search"]
    trials = [r for r in runs if r.data.tags.get("hk_tune.kind") == "trial"]
    print(f"postgres-backed runs: {len(parents)} parent, {len(trials)} trials")
    assert len(parents) == 1 and len(trials) == 4
    assert parents[0].info.status == "FINISHED"
    assert parents[0].info.run_id == cluster_search.summary["parent_run_id"]
    for trial in trials:
        assert trial.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert client.get_metric_history(trial.info.run_id, "eval_accuracy")

    # The rows are in PostgreSQL itself, not in a file beside the server.
    import psycopg2

    dsn = postgres.uri("mlflow").replace("+psycopg2", "")  # libpq knows no SQLAlchemy driver
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs WHERE experiment_id = %s",
                       (int(experiment.experiment_id),))
        assert cursor.fetchone()[0] == len(runs)
