"""`hk-tune dashboard PATH`: optuna-dashboard on a search's Optuna study (parallel coordinates,
history, intermediate values, importances), live while the search runs, on 127.0.0.1 unless
told otherwise. Where the study is (`hk_tune.search.study`) is kept in the search's
search.json, so the dashboard needs only the folder.

    hk-tune dashboard hk_tune_runs/quickstart          # http://127.0.0.1:8080
"""

from __future__ import annotations

import socket

from hk_tune import storage
from hk_tune.errors import ConfigError
from hk_tune.search.run import read_search_state
from hk_tune.search.study import open_storage

DEFAULT_PORT = 8080


def study_address(folder: str) -> str:
    """Where the study of the search in `folder` is kept.

    Raises:
        ConfigError: not a search folder, or a search that kept its study in memory only.
    """
    folder = storage.resolve(folder)
    address = read_search_state(folder).get("study")
    if not isinstance(address, str):
        path = storage.join(folder, storage.SEARCH_STATE)
        raise ConfigError(f"{path}: this search kept no Optuna study in storage (a search folder "
                          "in an object store without optuna_storage:, or one from before "
                          "hk_tune kept studies); set optuna_storage: in its space file")
    return address


def open_dashboard(folder: str, host: str, port: int):
    """The study storage of the search in `folder`, once the port is known to be free.

    Raises:
        ConfigError: no study (see `study_address`), or the port is taken.
    """
    study = open_storage(study_address(folder))
    with socket.socket() as probe:  # a taken port is an answer now, not a traceback later
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(f"--port {port}: cannot serve on {host}:{port} "
                              f"({error.strerror or error}); allowed: a free port") from None
    return study


def serve_dashboard(study, host: str, port: int) -> None:
    """Serves optuna-dashboard for `study` (from `open_dashboard`) until interrupted."""
    from optuna_dashboard import run_server

    run_server(study, host=host, port=port)
