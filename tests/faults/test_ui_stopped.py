"""`hk-tune ui` stopped by a signal other than Ctrl-C (kill, a timeout, systemd, a closed
terminal): its MLflow server, in a process group of its own, stops with it and frees the port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.parametrize("stop", [
    signal.SIGTERM, pytest.param(signal.SIGHUP, marks=pytest.mark.slow)], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_the_server_and_frees_the_port(tmp_path, stop):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ui = subprocess.Popen([sys.executable, "-m", "hk_tune.cli", "ui", "--port", str(port),
                           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ui.stdout.readline()  # printed once the server answers
        assert line.startswith(f"MLflow UI at {url}"), line + ui.stdout.read()
        assert answers(url)
        ui.send_signal(stop)
        assert ui.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while answers(url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not answers(url)
        with socket.socket() as probe:  # the port is free again, as uvicorn binds it
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
    finally:
        ui.kill()
