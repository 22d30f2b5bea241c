"""One tiny search on a real two-node Ray cluster, tracked by `mlflow server` over PostgreSQL
when Debian's postgresql is installed (else over a sqlite store), shared by the cluster tests:
the nodes, the server and the search cost about a minute and the tests only read them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from postgres import Postgres, postgres_bin, start_postgres
from ray_nodes import RayNodes, free_ports, node_env, start_nodes

SEARCH_TIMEOUT_S = 300


def tiny_space(folder: Path, model: str, data: dict, storage: Path) -> Path:
    """4 trials at 2 at a time, one CPU each: with one CPU per node, the two running trials
    can only be placed on different nodes."""
    raw = {
        "fixed": {"model": model, "data.source": data["source"], "data.task": "classification",
                  "data.max_length": 32, "optim.lr": 5e-3, "optim.batch_size": 4,
                  "optim.max_steps": 4, "optim.eval_every": 2},
        "search": {"dropout.attn_logits": {"type": "categorical", "choices": {
            "off": {}, "column": {"dropout.attn_logits.rate": {
                "type": "float", "low": 0.05, "high": 0.3}}}}},
        "num_samples": 4, "max_concurrent": 2,
        "resources": {"num_workers": 1, "cpus_per_worker": 1},
        "storage_path": str(storage), "name": "cluster",
    }
    path = folder / "cluster.yaml"
    path.write_text("# a tiny search on a two-node cluster\n" + yaml.safe_dump(raw))
    return path


@dataclass
class MlflowServer:
    uri: str
    backend: str
    process: subprocess.Popen


@dataclass
class ClusterSearch:
    nodes: RayNodes
    storage: Path
    tracking: MlflowServer
    summary: dict
    output: str


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server with an `mlflow` database, or None without Debian's postgresql."""
    bin_folder = postgres_bin()
    if bin_folder is None:
        yield None
        return
    server: Postgres = start_postgres(bin_folder, free_ports(1)[0])
    try:
        server.create_database("mlflow")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tracking_server(postgres, tmp_path_factory):
    """`mlflow server` on loopback over PostgreSQL (or sqlite), with a local artifact store."""
    from hk_tune.tracking.ui import _wait_until_ready, stop_ui

    folder = tmp_path_factory.mktemp("mlflow_server")
    backend = postgres.uri("mlflow") if postgres else f"sqlite:///{folder / 'mlflow.db'}"
    port = free_ports(1)[0]
    log = folder / "server.log"
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
               "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_until_ready(process, f"http://127.0.0.1:{port}", log)
        yield MlflowServer(f"http://127.0.0.1:{port}", backend, process)
    finally:
        stop_ui(process)


@pytest.fixture(scope="session")
def cluster_search(tmp_path_factory, tiny_models, toy_data, tracking_server):
    """`hk-tune search --address` from its own process (as a user runs it), on two nodes."""
    folder = tmp_path_factory.mktemp("cluster_search")
    storage = folder / "shared"  # what every node mounts at the same path (NFS on a cluster)
    space = tiny_space(folder, tiny_models["bert"], toy_data["classification"], storage)
    env = node_env()
    nodes = start_nodes(env, cpus=(1, 1))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "hk_tune.cli", "search", str(space), "--address",
             nodes.address, "--tracking-uri", tracking_server.uri, "--json"],
            env=env, capture_output=True, text=True, timeout=SEARCH_TIMEOUT_S, cwd=folder)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
        summary = json.loads((storage / "cluster" / "summary.json").read_text())
        yield ClusterSearch(nodes, storage, tracking_server, summary, output)
    finally:
        nodes.stop()
        shutil.rmtree(nodes.temp_dir, ignore_errors=True)  # Ray's session logs and sockets
