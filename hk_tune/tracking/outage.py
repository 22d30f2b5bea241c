"""Every MLflow call of a search goes through one `OutageGuard`: a failure never reaches the search.

A call that fails because the store is away (refused, timed out, 5xx) is recorded as a gap and
queued; `retry` runs each queued call once more, at the end of the search, so a server that came
back gets the missing data. A call the server rejects (bad value, missing run) is recorded and
dropped: sending it again would be rejected again. After an outage error the guard stops calling
the store for `cooldown_s` (doubling while it stays away) and queues directly, so a server that
hangs costs one timeout now and then, not one per metric.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

# MLflow error codes that mean "the server answered and said no"; anything else is an outage.
_REJECTED = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_ALREADY_EXISTS",
    "RESOURCE_DOES_NOT_EXIST",
    "BAD_REQUEST",
    "INVALID_STATE",
    "NOT_FOUND",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
}
_MAX_QUIET_S = 300.0
# During the final retry, give up on the rest after this many outage errors in a row: the
# server is still away and each try could cost a full timeout.
_RETRY_GIVE_UP_AFTER = 3


@dataclass
class Gap:
    """One call that did not land when it was made."""

    what: str
    error: str
    call: Callable[[], object] | None  # None once retried or dropped
    outcome: str = "waiting for the retry at the end of the search"

    def line(self) -> str:
        return f"{self.what}: {self.error}; {self.outcome}"


class OutageGuard:
    """Runs MLflow calls, turning failures into recorded gaps (see the module docstring).

    Args:
        where: the tracking URI, named in log messages.
        cooldown_s: how long to queue calls without trying after an outage error.
    """

    def __init__(self, where: str, cooldown_s: float = 30.0):
        self.where = where
        self.cooldown_s = cooldown_s
        self._gaps: list[Gap] = []
        self._quiet_until = 0.0
        self._quiet_s = cooldown_s  # doubles while the store stays away, up to _MAX_QUIET_S

    def call(self, what: str, fn: Callable[[], T]) -> T | None:
        """Runs `fn` now; on failure records a gap, queues `fn` if worth retrying, returns None.

        Args:
            what: the call in words, e.g. "metrics of trial t1 at step 3", for the gap report.
            fn: the call; it must look up run ids when it runs, so that a queued call can use
                a run created by an earlier queued call.
        """
        if time.monotonic() < self._quiet_until:
            self._gaps.append(Gap(what, "store unreachable, not tried", fn))
            return None
        try:
            result = fn()
        except Exception as error:  # never into the search: record and go on
            self._record(what, error, fn)
            return None
        self._quiet_s = self.cooldown_s
        return result

    def defer(self, what: str, reason: str, fn: Callable[[], object]) -> None:
        """Queues `fn` without trying it, e.g. because the run it logs to is not created yet."""
        self._gaps.append(Gap(what, reason, fn))

    def lost(self, what: str, reason: str) -> None:
        """Records something that could not be logged and will not be retried."""
        self._gaps.append(Gap(what, reason, None, "not logged"))

    def retry(self) -> None:
        """Runs every queued call once more, in the order they were made."""
        outages_in_a_row = 0
        for gap in self._gaps:
            if gap.call is None:
                continue
            fn, gap.call = gap.call, None
            if outages_in_a_row >= _RETRY_GIVE_UP_AFTER:
                gap.outcome = "lost: store still unreachable at the end of the search"
                continue
            try:
                fn()
            except Exception as error:
                outages_in_a_row += 0 if _rejected(error) else 1
                gap.outcome = f"lost: retry failed ({one_line(error)})"
            else:
                outages_in_a_row = 0
                gap.outcome = "logged on retry"
        self._quiet_until = 0.0

    def lines(self) -> list[str]:
        """One line per call that did not land when made, with what became of it."""
        return [gap.line() for gap in self._gaps]

    def _record(self, what: str, error: Exception, fn: Callable[[], object]) -> None:
        if _rejected(error):
            self._gaps.append(Gap(what, one_line(error), None, "rejected by the store, dropped"))
            log.warning("MLflow rejected %s: %s", what, one_line(error))
            return
        self._gaps.append(Gap(what, one_line(error), fn))
        # A server that hangs costs a full HTTP timeout per try: try less often the longer it
        # stays away, so the search's event loop is held up rarely.
        self._quiet_until = time.monotonic() + self._quiet_s
        self._quiet_s = min(2 * self._quiet_s, _MAX_QUIET_S)
        log.warning(
            "MLflow store %s unreachable (%s); queuing %s and later calls for a retry at the end",
            self.where, one_line(error), what,
        )


def _rejected(error: Exception) -> bool:
    return getattr(error, "error_code", None) in _REJECTED


# Root causes worth naming instead of the library's nested message.
_CAUSES = (("Connection refused", "connection refused"), ("timed out", "timed out"),
           ("Name or service not known", "unknown host"), ("Max retries exceeded", "no answer"))


def one_line(error: object, limit: int = 200) -> str:
    """An error as one short line: its root cause when it is a known one, else its text."""
    text = " ".join(str(error).split())
    for marker, cause in _CAUSES:
        if marker in text:
            return cause
    return text if len(text) <= limit else text[:limit] + "…"
