"""Many runs of the training loop on this machine without Ray: a pool of worker processes, each
running `run_loop` in a `LocalSession` that keeps its tokenizer, data and base model between
runs, as a reused Tune actor does. One seed gives one result, so a run here has the numbers a
search trial of the same configuration has.

    runs = run_pool([cfg_a.to_dict(), cfg_b.to_dict()], processes=2, threads=1)
    runs[0].history[-1]["best_eval_accuracy"]

For comparisons that run a fixed grid (`benchmarks/reproduce.py`): no scheduler, no searcher,
no checkpoints, so none of a search's per-trial costs.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from hk_tune.train.loop import run_loop
from hk_tune.train.session import LocalSession


@dataclass(frozen=True)
class PoolRun:
    """One finished run: its index in the list given, every evaluation, its wall time and, if
    it failed, the error's last line (the other runs go on)."""

    index: int
    history: list[dict[str, Any]]
    seconds: float
    error: str | None = None


def run_pool(configs: Sequence[dict[str, Any]], processes: int = 1, threads: int = 1,
             on_done: Callable[[PoolRun], None] | None = None) -> list[PoolRun]:
    """Runs every `RunConfig.to_dict()` in `configs` in `processes` worker processes of
    `threads` torch threads each; returns the runs in the order given.

    Args:
        on_done: called in this process as each run finishes (progress, tracking).
    """
    context = multiprocessing.get_context("spawn")  # a clean process: no forked torch state
    done: list[PoolRun | None] = [None] * len(configs)
    with ProcessPoolExecutor(max_workers=processes, mp_context=context,
                             initializer=_start_worker, initargs=(threads,)) as pool:
        futures = [pool.submit(_run, index, config) for index, config in enumerate(configs)]
        for future in as_completed(futures):
            run = future.result()
            done[run.index] = run
            if on_done is not None:
                on_done(run)
    return [run for run in done if run is not None]


def _start_worker(threads: int) -> None:
    import torch

    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    torch.set_num_threads(threads)


def _run(index: int, config: dict[str, Any]) -> PoolRun:

    session = LocalSession(cache=True)
    started = time.perf_counter()
    try:
        run_loop(config, session)
    except Exception as error:  # one failed run is reported, the pool goes on
        return PoolRun(index, session.history, time.perf_counter() - started,
                       f"{type(error).__name__}: {' '.join(str(error).split())[:300]}")
    return PoolRun(index, session.history, time.perf_counter() - started)
