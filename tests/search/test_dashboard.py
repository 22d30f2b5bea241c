"""`hk-tune dashboard` refuses what it cannot serve in one line, before serving anything
(the browser test on a real search's study is in test_study.py, in the slow selection)."""

from __future__ import annotations

import json
import socket

from hk_tune import cli

# What search.json holds besides the study (hk_tune.search.run.read_search_state).
STATE = {"overrides": [], "tracking_uri": "sqlite:///mlflow.db", "parent_run_id": "0"}


def test_a_folder_without_a_study_is_one_line(tmp_path, capsys):
    (tmp_path / "search.json").write_text(json.dumps(STATE | {"study": None}))
    assert cli.main(["dashboard", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"hk-tune: error: {tmp_path / 'search.json'}: this search kept no")


def test_a_taken_port_is_one_line(tmp_path, capsys):
    study = f"journal:{tmp_path / 'optuna.journal'}"
    (tmp_path / "search.json").write_text(json.dumps(STATE | {"study": study}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert cli.main(["dashboard", str(tmp_path), "--port", str(port)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"hk-tune: error: --port {port}: cannot serve on 127.0.0.1:{port} "
                     "(Address already in use); allowed: a free port")
