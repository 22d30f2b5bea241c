"""Ray for a search: the environment its processes inherit, starting or joining it, stopping the
local Ray a search started, and work done in a background thread meanwhile.

    start_ray(address=None)          # local Ray, no dashboard; or join the cluster at address
    setup = InBackground(fn)         # e.g. MLflow's set-up while Ray starts
    stop_local_ray()                 # after the last trial, beside the results
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

# Set before Ray starts so every Ray process inherits them (docs/design.md, "Facts"): glibc
# arenas grow per thread and reused actors run each trial in a new thread; Train's fixed waits
# go down; library progress bars would drown the per-evaluation lines.
RAY_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
# Ray's own wait at the interpreter's exit, for its workers' last output lines to arrive
# through its log monitor before it disconnects.
LAST_OUTPUT_S = 0.5


def start_ray(address: str | None, dashboard: bool = False) -> None:
    """Connects to `address`, or starts local Ray; a Ray already started here is reused.

    Local Ray starts without its dashboard unless `dashboard`: the search reports through the
    terminal and MLflow, and on a small machine the dashboard's processes wake often enough to
    preempt a trial that uses every core (`benchmarks/trial_cpu_wait.py` measures it). A cluster
    (`address`) keeps its own dashboard.
    """
    import ray

    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    if not ray.is_initialized():
        # A driver's ray.init makes SIGTERM a plain sys.exit(15); keep the handler the command
        # line set, which stops the search as Ctrl-C does and records why.
        handler = signal.getsignal(signal.SIGTERM)
        ray.init(address=address, log_to_driver=True, configure_logging=False,
                 include_dashboard=dashboard)
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)


def stop_local_ray() -> None:
    """Shuts down the Ray this process started, after Ray's own wait for its workers' last
    output."""
    import ray

    time.sleep(LAST_OUTPUT_S)
    ray.shutdown()


class InBackground:
    """`fn()` in a background thread; `result` waits and returns its value or re-raises.

    The search sets up MLflow this way while the main thread starts Ray, whose start is mostly
    its own processes starting, which leaves the driver's core free. (`ray.init` itself must run
    in the main thread: started from another one, its GCS client loses the connection.)
    """

    def __init__(self, fn: Callable[[], Any]):
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as error:  # handed to the main thread by result()
            self._error = error

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
