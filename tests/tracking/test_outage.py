"""The outage guard's own rules: queue, back off, retry once, drop what the store rejects."""

from __future__ import annotations

from hk_tune.tracking.outage import OutageGuard


class Rejected(Exception):
    error_code = "INVALID_PARAMETER_VALUE"  # what MLflow raises for a value it refuses


def test_outage_queues_backs_off_and_retries_once():
    guard = OutageGuard("http://store", cooldown_s=60)
    up = False
    landed = []

    def log(item):
        def call():
            if not up:
                raise ConnectionError("Connection refused")
            landed.append(item)
            return item

        return call

    assert guard.call("first", log(1)) is None
    assert guard.call("second", log(2)) is None  # backing off: not even tried
    up = True
    guard.retry()
    assert landed == [1, 2]
    assert guard.lines() == ["first: connection refused; logged on retry",
                             "second: store unreachable, not tried; logged on retry"]
    assert guard.call("third", log(3)) == 3 and len(guard.lines()) == 2
    guard.retry()  # nothing is retried twice
    assert landed == [1, 2, 3]


def test_rejected_calls_are_dropped_and_a_dead_store_is_given_up_on():
    guard = OutageGuard("http://store", cooldown_s=0)

    def rejected():
        raise Rejected("param already logged with another value")

    def down():
        raise TimeoutError("read timed out")

    guard.call("rejected", rejected)
    for index in range(5):
        guard.call(f"call {index}", down)
    guard.retry()
    lines = guard.lines()
    assert lines[0].endswith("rejected by the store, dropped")
    assert [line.split("; ")[-1] for line in lines[1:4]] == ["lost: retry failed (timed out)"] * 3
    assert all(line.endswith("store still unreachable at the end of the search")
               for line in lines[4:])
