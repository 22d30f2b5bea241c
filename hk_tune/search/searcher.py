"""The search algorithm: Optuna's seeded TPE behind Ray Tune, built from the trials a search has.

A resumed search does not restore the searcher from its own saved files. Tune saves the
experiment (its trials) and the searcher (Optuna's study, the concurrency limiter, the trial
counter) in separate files and copies them into the search folder one by one, in parallel,
at every snapshot. A search killed between two copies leaves a searcher that does not match the
trials, and the resumed search then fails on a trial the searcher never saw (KeyError in
`OptunaSearch.on_trial_result`), waits forever for one it holds a concurrency slot for but the
experiment lacks, or runs one trial more or fewer than the budget. So the trials are the one
record: the searcher is rebuilt from them, every finished trial told to Optuna with its result
(the searcher keeps its history), every unfinished one registered so Tune can run it again.

    build_search(space, max_concurrent=2)                         # a new search
    build_search(space, max_concurrent=2, trials=analysis.trials)  # a resumed one
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.search import ConcurrencyLimiter, SearchGenerator
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import _load_newest_checkpoint

from hk_tune.search.space import Space


def build_search(space: Space, max_concurrent: int, trials: Sequence[Trial] = ()
                 ) -> SearchGenerator:
    """OptunaSearch (seeded TPE; the space's warm-start presets first) under a concurrency
    limit, holding `trials`, the trials Tune's saved experiment has (none for a new search)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = max(2, min(10, space.num_samples // 2))  # random draws before TPE models anything
    # The presets are enqueued after the replayed trials, not passed as points_to_evaluate:
    # Optuna hands enqueued points to the next ask(), which the replay below uses.
    searcher = OptunaSearch(
        space.suggest, metric=space.metric, mode=space.mode,
        sampler=optuna.samplers.TPESampler(seed=space.seed, n_startup_trials=startup))
    unfinished = []
    for trial in trials:
        searcher._ot_trials[trial.trial_id] = _replay(searcher, trial.evaluated_params)
        if trial.status == Trial.TERMINATED:
            searcher.on_trial_complete(trial.trial_id, result=trial.last_result)
        else:  # pending, running or errored: Tune runs it again on resume
            unfinished.append(trial.trial_id)
    # The first trials of a search are its presets, in order.
    for point in space.warm_start_points()[len(trials):]:
        searcher._ot_study.enqueue_trial(point)

    limiter = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    limiter.live_trials = set(unfinished)
    limiter.num_unfinished_live_trials = len(unfinished)
    return RebuiltSearch(limiter, budget=space.num_samples, created=len(trials))


class RebuiltSearch(SearchGenerator):
    """Tune's search generator, counting the trials it was built with and ignoring the state
    files a resume would restore over them (see the module docstring)."""

    def __init__(self, searcher: ConcurrencyLimiter, budget: int, created: int):
        super().__init__(searcher)
        self._budget = budget
        self._counter = created  # new trials: budget - created

    def restore_from_dir(self, dirpath: str) -> None:
        """Takes only what to run (the experiment's spec) from the saved state, with Tune's own
        reader; the trials, Optuna's history, the concurrency limit and the count stay as built
        from the experiment's trials, which the saved searcher may not match."""
        state = _load_newest_checkpoint(dirpath, self.CKPT_FILE_TMPL.format("*"))
        if not state:
            raise RuntimeError(f"{dirpath}: no {self.CKPT_FILE_TMPL.format('*')} to resume from")
        self._experiment = state["experiment"]
        self._total_samples = self._budget


def _replay(searcher: OptunaSearch, params: dict[str, Any]):
    """An Optuna trial that samples exactly `params` (a trial's evaluated parameters): asked
    with the point enqueued, and the space's define-by-run function run on it, so Optuna records
    each parameter with its distribution."""
    searcher._ot_study.enqueue_trial(params)
    ot_trial = searcher._ot_study.ask()
    searcher._suggest_from_define_by_run_func(searcher._space, ot_trial)
    return ot_trial
