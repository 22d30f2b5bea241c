"""`hk-tune search --address` on a real two-node Ray cluster started with `ray start`: trials
run on both nodes, and their checkpoints and Tune results land on the shared storage path."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def trial_results(storage, name: str) -> dict[str, dict]:
    """Trial id -> its last Tune result, from Tune's experiment state on the shared storage
    (the search turns Tune's per-trial result.json off; the state file keeps the last one)."""
    state_file = max((storage / name).glob("experiment_state-*.json"))
    found = {}
    for trial_json, runtime_json in json.loads(state_file.read_text())["trial_data"]:
        trial_id = json.loads(trial_json)["trial_id"]
        found[trial_id] = json.loads(runtime_json)["last_result"]
    return found


def test_trials_run_on_two_nodes(cluster_search):
    from ray.util.state import list_actors

    results = trial_results(cluster_search.storage, "cluster")
    assert len(results) == 4, cluster_search.output[-3000:]
    # Both nodes share one IP here, so the node id tells them apart: the State API knows which
    # node each trial actor (the process that reported `pid`) lived on.
    actors = list_actors(address=cluster_search.nodes.dashboard, detail=True, limit=1000,
                         raise_on_missing_output=False)
    node_of_pid = {actor.pid: actor.node_id for actor in actors if actor.pid}
    nodes = {trial: node_of_pid.get(result["pid"]) for trial, result in results.items()}
    print("trial -> node:", json.dumps(nodes, indent=1))
    assert None not in nodes.values(), nodes
    assert len(set(nodes.values())) == 2, nodes


def test_checkpoints_on_the_shared_storage_path(cluster_search):
    folder = cluster_search.storage / "cluster"
    for trial in trial_results(cluster_search.storage, "cluster"):
        checkpoints = sorted((folder / f"trial_{trial}").glob("checkpoint_*"))
        assert checkpoints, f"no checkpoint for {trial} under {folder}"
        print(trial, checkpoints[-1])
        assert any(checkpoints[-1].iterdir())
    assert (folder / "tuner.pkl").exists() and (folder / "best_config.yaml").exists()
    rows = cluster_search.summary["results"]
    assert len(rows) == 4 and all(row["status"] == "completed" for row in rows)
