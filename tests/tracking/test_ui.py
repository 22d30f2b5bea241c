"""`serve_ui` refuses what it cannot serve, before starting anything; the package stays light."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from hk_tune.tracking import TrackingError, serve_ui, ui_url


def test_remote_store_has_its_own_ui():
    with pytest.raises(TrackingError, match="own UI"):
        serve_ui("http://127.0.0.1:5000")


def test_taken_port_is_named(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(TrackingError, match=f"127.0.0.1:{port}"):
            serve_ui(f"sqlite:///{tmp_path / 'mlflow.db'}", port=port)


def test_ui_url_opens_the_runs_table():
    assert ui_url() == "http://127.0.0.1:5000"
    assert ui_url(port=5001, experiment_id="3") == (
        "http://127.0.0.1:5001/#/experiments/3/runs?workflowType=machine_learning"
    )


def test_import_is_light_and_free_of_ray_and_optuna():
    # Tracking is called from the search's Tune callback: it must not pull in Ray or Optuna,
    # and MLflow and matplotlib only load when a store is used.
    code = ("import sys, hk_tune.tracking; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'ray', 'optuna', 'mlflow', 'matplotlib', 'plotly', 'torch'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
