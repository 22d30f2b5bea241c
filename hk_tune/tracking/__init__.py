"""MLflow tracking of a search: a parent run per search, a child run per trial, artifacts.

    tracker = SearchTracker(tracking_uri)   # None: MLFLOW_TRACKING_URI or ./mlflow.db
    tracker.check()                         # TrackingError now, not after an hour of training
    parent = tracker.start_search(name, space_file, fixed, seed)
    ...                                     # trial_started / trial_metrics / trial_finished
    tracker.finish_search(results, best_config, metric, mode, importances, histories)

MLflow is imported here only, and only when a store is used, so importing this package is cheap.
"""

from hk_tune.tracking.names import run_name
from hk_tune.tracking.search_run import SearchTracker
from hk_tune.tracking.store import TrackingError, check_tracking_uri, resolve_tracking_uri
from hk_tune.tracking.ui import serve_ui, stop_ui, ui_url

__all__ = [
    "SearchTracker",
    "TrackingError",
    "check_tracking_uri",
    "resolve_tracking_uri",
    "run_name",
    "serve_ui",
    "stop_ui",
    "ui_url",
]
