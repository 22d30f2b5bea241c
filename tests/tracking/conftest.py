"""A real `mlflow server` on loopback, started through `serve_ui` like `hk-tune ui` starts it."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from hk_tune.tracking import serve_ui, stop_ui


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
