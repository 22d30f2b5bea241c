"""Real `mlflow server` processes on loopback, started through `serve_ui` as `hk-tune ui` does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import tiny_search

from hk_tune.tracking import SearchTracker, serve_ui, stop_ui


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """An MLflow server over a sqlite store in `folder`; `stop` and `start` keep the port."""

    folder: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend(self) -> str:
        return f"sqlite:///{self.folder / 'mlflow.db'}"

    def start(self) -> Server:
        self.process = serve_ui(self.backend, port=self.port,
                                log_file=str(self.folder / f"server_{self.port}.log"))
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_ui(self.process)
            self.process = None

    def kill(self) -> None:
        """Crashes the server: SIGKILL to the process group `serve_ui` started it in."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def start_server(tmp_path):
    """Starts MLflow servers for one test and stops them after it."""
    started: list[Server] = []

    def start(name: str = "server") -> Server:
        folder = tmp_path / name
        folder.mkdir()
        server = Server(folder, free_port()).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass
class LoggedSearch:
    server: Server
    parent_id: str
    experiment_id: str
    artifacts: list[str]
    gaps: list[str]


@pytest.fixture(scope="session")
def logged_server(tmp_path_factory):
    """One server holding the tiny search, logged over HTTP; shared because a server costs
    seconds to start and the tests only read from it."""
    folder = tmp_path_factory.mktemp("logged_server")
    server = Server(folder, free_port()).start()
    space = folder / "space.yaml"
    space.write_text(tiny_search.SPACE)
    tracker = SearchTracker(server.uri)
    try:
        tracker.check()
        parent, artifacts = tiny_search.drive(tracker, str(space))
        yield LoggedSearch(server, parent, tracker.experiment_id, artifacts, tracker.gaps())
    finally:
        server.stop()
