"""Runs of the loop in local worker processes without Ray (hk_tune.train.pool): the numbers of
the same runs in this process, in the order given, and a failed run reported, not raised."""

from __future__ import annotations

from hk_tune.train.loop import run_loop
from hk_tune.train.pool import run_pool
from hk_tune.train.session import LocalSession


def without_speed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "tokens_per_s"} for row in history]


def test_a_pool_computes_what_this_process_computes(tiny_run):
    configs = [tiny_run("bert", "classification", dropout="hiddenkey", seed=seed)
               for seed in (1, 2)]
    configs.append({**configs[0], "data": {**configs[0]["data"], "source": "/no/such.jsonl"}})
    done = []
    runs = run_pool(configs, processes=2, threads=1, on_done=done.append)
    assert [run.index for run in runs] == [0, 1, 2] and len(done) == 3
    for config, run in zip(configs[:2], runs, strict=False):
        session = LocalSession(cache=False)
        run_loop(config, session)
        assert run.error is None and without_speed(run.history) == without_speed(
            session.history)
    assert runs[2].history == [] and "ConfigError" in runs[2].error
    assert runs[0].history != runs[1].history  # the seed is the run's own
