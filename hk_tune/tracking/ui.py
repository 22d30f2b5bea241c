"""`hk-tune ui`: the MLflow UI for the local store, on loopback.

The server runs `mlflow server` with one worker and MLflow's job runner off, which starts in
about half the time and a third of the memory of its defaults. It runs in its own
process group: `mlflow server` starts uvicorn as a child process, and stopping only the parent
would leave the port taken.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from hk_tune.tracking.store import (
    TrackingError,
    is_remote,
    local_artifact_root,
    resolve_tracking_uri,
)

READY_TIMEOUT_S = 90.0  # a cold start on a busy 2-core machine


def serve_ui(
    tracking_uri: str | None,
    host: str = "127.0.0.1",
    port: int = 5000,
    log_file: str | None = None,
) -> subprocess.Popen:
    """Starts the MLflow UI for a local store and waits until it answers.

    Args:
        tracking_uri: the store, resolved as by `resolve_tracking_uri`; a remote server has its
            own UI, so an http(s) URI raises `TrackingError` saying to open it instead.
        host: the interface to listen on; loopback unless the user asks otherwise.
        port: the port; one already taken raises `TrackingError`.
        log_file: where the server's output goes; default a file in the temp folder.

    Returns:
        The server process, answering at `ui_url(host, port)`; end it with `stop_ui`.
    """
    uri = resolve_tracking_uri(tracking_uri)
    if is_remote(uri):
        raise TrackingError(f"{uri} is an MLflow server with its own UI: open it in a browser")
    _check_port_free(host, port)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--host", host, "--port", str(port), "--workers", "1"]
    artifacts = local_artifact_root(uri)
    if artifacts is not None:
        # Experiments made in the UI then keep their artifacts beside the store as well.
        command += ["--artifacts-destination", str(artifacts)]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log_path = Path(log_file or Path(tempfile.gettempdir()) / f"hk_tune_mlflow_ui_{port}.log")
    with log_path.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    _wait_until_ready(process, ui_url(host, port), log_path)
    return process


def ui_url(host: str = "127.0.0.1", port: int = 5000, experiment_id: str | None = None) -> str:
    """The address to open in a browser; with `experiment_id`, that experiment's runs table.

    MLflow 3's UI opens experiments in its GenAI (traces) view unless told otherwise, hence
    `workflowType=machine_learning` in the link.
    """
    base = f"http://{host}:{port}"
    if experiment_id is None:
        return base
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def stop_ui(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """Stops a server started by `serve_ui`, with the uvicorn process it started."""
    if process.poll() is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=timeout_s)
    _signal_group(process, signal.SIGKILL)  # a uvicorn child that outlived its parent


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, sig)  # the group serve_ui made, whose id is the server's pid


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: connections of a server just stopped (TIME_WAIT) do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise TrackingError(f"cannot start the MLflow UI on {host}:{port} ({error}); "
                                "pick another port") from None


def _wait_until_ready(process: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TrackingError(f"the MLflow UI exited with code {process.returncode} before "
                                f"answering; its log ({log_path}) ends with: {_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    stop_ui(process)
    raise TrackingError(f"the MLflow UI did not answer at {url} within {READY_TIMEOUT_S:.0f} s; "
                        f"see {log_path}")


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(nothing)"
