"""Where runs go: the tracking URI, the local artifact folder, and whether the store answers.

The embedded default is a sqlite store `mlflow.db` with artifacts in `mlartifacts/`, both in
the working directory; `--tracking-uri` or `MLFLOW_TRACKING_URI` points at a remote server.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

from hk_tune.errors import ConfigError

# Short HTTP timeouts and one retry for a remote server: MLflow's defaults (120 s, 7 retries
# with exponential backoff) would stall every trial for minutes during an outage. urllib3's
# first retry is immediate, so a refused connection costs milliseconds. Users' values win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    # MLflow prints a "View run" link for every run it ends; hk_tune prints the search's own.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
# MLflow 3 sorts experiments into GenAI and model development and asks about untagged ones;
# ours are model development. (What opens the runs table rather than the GenAI overview is the
# link's `workflowType=machine_learning`, see `ui.ui_url`.)
EXPERIMENT_KIND = "mlflow.experimentKind"
# How long `check` waits for a remote server before calling it unreachable.
CHECK_TIMEOUT_S = 5.0


class TrackingError(ConfigError):
    """The tracking store cannot be used; raised before any training starts."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Picks the tracking URI: `uri` if given, else `MLFLOW_TRACKING_URI`, else the local store.

    Returns:
        The URI; the local default is `sqlite:///<cwd>/mlflow.db` (artifacts in
        `<cwd>/mlartifacts`, see `local_artifact_root`).
    """
    if uri:
        return uri
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        return from_env
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


# The stores MLflow keeps runs in: a local folder (no scheme, or file:), a database through
# SQLAlchemy (dialect+driver://), a tracking server, Databricks.
TRACKING_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https",
                    "databricks")


def check_tracking_uri(uri: str) -> None:
    """Refuses, before anything starts, a tracking URI whose scheme no MLflow store takes, or
    an SQLite file that is not an MLflow store.

    Raises:
        ConfigError: naming the URI and the schemes allowed.
    """
    scheme, sep, _ = uri.partition("://")
    if not sep and not uri.startswith(("file:", "databricks")):
        return  # a local folder: MLflow's file store
    if scheme.split("+", 1)[0] not in TRACKING_SCHEMES:
        raise ConfigError(f"tracking URI {uri[:200]!r} (--tracking-uri or MLFLOW_TRACKING_URI): "
                          f"MLflow keeps no runs at {scheme}://; allowed: "
                          f"{', '.join(s + '://' for s in TRACKING_SCHEMES)} or a local folder")
    _check_sqlite_is_mlflow(uri)


def _check_sqlite_is_mlflow(uri: str) -> None:
    """Refuses an existing SQLite file that holds tables but not MLflow's: opening it as a
    store would create MLflow's tables among someone else's."""
    import sqlite3

    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return
    database = Path(uri[len(prefix):].split("?", 1)[0])
    if not database.is_file() or database.stat().st_size == 0:
        return  # a new store
    try:
        with contextlib.closing(sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro",
                                                uri=True)) as connection:
            tables = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise ConfigError(f"tracking URI {uri[:200]!r}: {database} is not an SQLite database "
                          f"({error}); allowed: an MLflow store, or a path where none exists "
                          "yet") from None
    if tables and not {"experiments", "runs", "alembic_version"} <= tables:
        raise ConfigError(f"tracking URI {uri[:200]!r}: {database} is an SQLite database of "
                          f"something else (tables {sorted(tables)[:5]}); allowed: an MLflow "
                          "store, or a path where none exists yet")


def is_remote(uri: str) -> bool:
    """True for a tracking server reached over HTTP(S)."""
    return uri.startswith(("http://", "https://"))


def local_artifact_root(uri: str) -> Path | None:
    """The artifact folder beside a sqlite store (`<db folder>/mlartifacts`), else None."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri.endswith(":memory:"):
        return None
    database = Path(uri[len(prefix):].split("?", 1)[0])
    return database.resolve().parent / "mlartifacts"


def experiment_for(client: Any, name: str, uri: str) -> str:
    """The id of experiment `name`, created when missing.

    A new experiment on a sqlite store keeps its artifacts in `<db folder>/mlartifacts/<name>`
    rather than MLflow's `./mlruns`; an experiment is tagged as model development (see
    `EXPERIMENT_KIND`) unless it already says what it is.
    """
    found = client.get_experiment_by_name(name)
    if found is None:
        root = local_artifact_root(uri)
        folder = root / re.sub(r"[^\w.\- ]", "_", name) if root else None
        try:
            return client.create_experiment(
                name, artifact_location=folder.as_uri() if folder else None,
                tags={EXPERIMENT_KIND: "custom_model_development"},
            )
        except Exception:  # created meanwhile by another search on the same store
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise TrackingError(f"MLflow experiment {name!r} in {uri} is deleted; restore it in the "
                            "UI or pick another experiment")
    if EXPERIMENT_KIND not in found.tags:
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, "custom_model_development")
    return found.experiment_id


def use_short_http_timeouts() -> None:
    """Sets `HTTP_DEFAULTS` in the environment where the user has not set them."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def check_reachable(uri: str, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raises `TrackingError` naming `uri` unless the store answers within about `timeout_s`.

    A remote server must answer its `/health` endpoint and then the tracking API (which catches
    a wrong address that happens to serve something, or missing credentials); a local sqlite
    store must open, which creates it on first use.
    """
    if is_remote(uri):
        _check_health(uri, timeout_s)
    try:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as error:  # any failure here means the store is unusable
        raise TrackingError(_unreachable(uri, error)) from None


def _check_health(uri: str, timeout_s: float) -> None:
    # urllib rather than MLflow's client: MLflow would retry with backoff, and the point here is
    # to fail within seconds, before any training.
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            if response.status != 200:
                raise TrackingError(_unreachable(uri, f"GET {url} returned {response.status}"))
    except urllib.error.HTTPError as error:
        raise TrackingError(_unreachable(uri, f"GET {url} returned {error.code}")) from None
    except OSError as error:  # refused, timed out, unknown host
        raise TrackingError(_unreachable(uri, getattr(error, "reason", error))) from None


def _unreachable(uri: str, reason: object) -> str:
    text = " ".join(str(reason).split())  # one line, whatever the library put in it
    if len(text) > 300:
        text = text[:300] + "…"
    return (
        f"MLflow tracking store {uri} is unreachable ({text}); start it, or pass "
        "--tracking-uri / set MLFLOW_TRACKING_URI to one that answers"
    )
