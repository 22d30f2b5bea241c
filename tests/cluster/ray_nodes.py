"""A real two-node Ray cluster on this machine: `ray start --head` plus one `ray start --address`,
each with its own CPU count and a resource label, as on a cluster of two hosts.

Both nodes run `ray start --block`, so the test owns their processes: stopping them stops that
cluster only. `ray stop` would also stop any other Ray on the machine (another test's session).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
READY_TIMEOUT_S = 120.0  # two nodes with dashboards on a busy 2-core machine


def free_ports(count: int) -> list[int]:
    """Ports free right now on every interface (the dashboard agents bind 0.0.0.0)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("0.0.0.0", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def node_ports() -> list[str]:
    """Each node's own agent and metrics ports: two nodes on one host must not share them."""
    agent, grpc, runtime_env, metrics = free_ports(4)
    return ["--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(grpc),
            "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics)]


@dataclass
class RayNodes:
    """The head's GCS address, its dashboard (State API) and the `ray start` processes."""

    address: str
    dashboard: str
    temp_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        """SIGTERM to each `ray start --block`, which stops the Ray processes it started."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def log_tail(self) -> str:
        return "\n".join(f"== {log}\n{log.read_text()[-2000:]}" for log in self.logs)


def start_nodes(env: dict[str, str], cpus: tuple[int, ...] = (1, 1)) -> RayNodes:
    """Starts a head and `len(cpus) - 1` more nodes; node i has `cpus[i]` CPUs and the
    resource `node_<i>: 1`. Returns once every node is alive."""
    # A short temp dir: Ray's unix socket paths must stay under ~107 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="hkr", dir="/tmp"))
    gcs, dashboard, client = free_ports(3)
    nodes = RayNodes(f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}", temp_dir)
    common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block"]
    for index, count in enumerate(cpus):
        if index == 0:
            role = ["--head", "--port", str(gcs), "--include-dashboard", "true",
                    "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                    "--ray-client-server-port", str(client), "--temp-dir", str(temp_dir)]
        else:
            role = ["--address", nodes.address]
        log = temp_dir / f"node_{index}.log"
        nodes.logs.append(log)
        with log.open("wb") as output:
            nodes.processes.append(subprocess.Popen(
                [RAY, "start", *role, *common, *node_ports(), "--num-cpus", str(count),
                 "--resources", json.dumps({f"node_{index}": 1})],
                env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        if index == 0:
            wait_for_nodes(nodes, 1)
    wait_for_nodes(nodes, len(cpus))
    return nodes


def alive_nodes(dashboard: str) -> list[dict]:
    """The cluster's alive nodes, from the State API (the dashboard's HTTP server)."""
    from ray.util.state import list_nodes

    return list_nodes(address=dashboard, filters=[("state", "=", "ALIVE")], timeout=10,
                      raise_on_missing_output=False)


def wait_for_nodes(nodes: RayNodes, count: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for process in nodes.processes:
            if process.poll() is not None:
                nodes.stop()
                raise RuntimeError(f"ray start exited early:\n{nodes.log_tail()}")
        try:
            if len(alive_nodes(nodes.dashboard)) >= count:
                return
        except Exception:  # the dashboard is still starting
            pass
        time.sleep(1.0)
    nodes.stop()
    raise RuntimeError(f"{count} Ray nodes not alive in {READY_TIMEOUT_S:.0f} s:\n"
                       f"{nodes.log_tail()}")


def node_env() -> dict[str, str]:
    """The environment of the nodes and the search: local auth off, quieter Train."""
    from hk_tune.search.ray_runtime import RAY_ENV

    return {**os.environ, **RAY_ENV, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
