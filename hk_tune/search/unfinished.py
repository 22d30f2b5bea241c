"""A search that does not finish (an error, Ctrl-C, SIGTERM, a closed terminal) ends its tracked
runs with a status and the reason instead of leaving them RUNNING, and leaves a folder that
`hk-tune resume` continues. One that failed before Tune wrote anything (Ray did not start)
leaves no search state behind, so running it again under the same name works.

    with ended_if_unfinished(tracker, folder):
        grid = fit(tuner)
        return finish(...)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from hk_tune import storage
from hk_tune.search.experiment import TUNER_FILE
from hk_tune.search.tracker import Tracker

SEARCH_STATE = storage.SEARCH_STATE  # what `hk-tune resume` reads: overrides, tracking, parent
SPACE_COPY = "space.yaml"  # the space file as the search read it


@contextlib.contextmanager
def ended_if_unfinished(tracker: Tracker, folder: str) -> Iterator[None]:
    """Runs the block; if it raises (KeyboardInterrupt included), records why on the tracker,
    forgets a search Tune never began, and raises again."""
    try:
        yield
    except BaseException as error:
        abandon(tracker, folder, error)
        raise


def abandon(tracker: Tracker, folder: str, error: BaseException) -> None:
    status, reason = why(error)
    tracker.end_search(status, reason)
    if not storage.exists(storage.join(folder, TUNER_FILE)):  # nothing to resume
        for name in (SEARCH_STATE, SPACE_COPY):
            storage.remove(storage.join(folder, name))


def why(error: BaseException) -> tuple[str, str]:
    """The tracker's status and reason for `error`."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", "interrupted (Ctrl-C or a signal); hk-tune resume continues it"
    text = " ".join(str(error).split())
    return "errored", f"{type(error).__name__}: {text}" if text else type(error).__name__
