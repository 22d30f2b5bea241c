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

    build_search(space, max_concurrent=2, folder=folder)                         # a new one
    build_search(space, max_concurrent=2, trials=analysis.trials, folder=folder)  # resumed

The study lives in storage for the dashboard (`hk_tune.search.study`), rebuilt the same way.

Every trial of a search has the same seed, and one seed gives one result, so a configuration
TPE proposes again would train to the numbers it already has. It is not run: the proposal is told
to Optuna with the earlier trial's value (or as failed, while that trial still runs), the line
`TPE proposed ... again` goes to stderr, and TPE is asked for another point.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.search import ConcurrencyLimiter, Searcher, SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from hk_tune import storage
from hk_tune.config.space import SearchConfig
from hk_tune.search.ray_internals import (
    hold_live_trials,
    optuna_parts,
    replay_define_by_run,
    restore_generator_spec,
    set_generator_count,
)
from hk_tune.search.space import suggest
from hk_tune.search.study import drop_study, evaluations, open_storage, storage_address


def build_search(space: SearchConfig, max_concurrent: int, trials: Sequence[Trial] = (),
                 folder: str | None = None) -> SearchGenerator:
    """OptunaSearch (seeded TPE; the space's warm-start presets first) under a concurrency
    limit, holding `trials`, the trials Tune's saved experiment has (none for a new search).
    Its study is kept in the storage of the search in `folder` (None: in memory)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = max(2, min(10, space.num_samples // 2))  # random draws before TPE models anything
    storage = open_storage(storage_address(space, folder)) if folder is not None else None
    drop_study(storage, space.name)  # rebuilt from the trials, as the searcher is
    # The presets are enqueued after the replayed trials, not passed as points_to_evaluate:
    # Optuna hands enqueued points to the next ask(), which the replay below uses.
    searcher = DistinctOptunaSearch(
        space, metric=space.score, mode=space.mode, storage=storage, study_name=space.name,
        sampler=optuna.samplers.TPESampler(seed=space.seed, n_startup_trials=startup))
    unfinished = []
    ot_trials, study = optuna_parts(searcher)
    for trial in trials:
        ot_trials[trial.trial_id] = _replay(searcher, trial.evaluated_params)
        ot_trials[trial.trial_id].set_user_attr("trial_id", trial.trial_id)
        if folder is not None:  # its evaluations, as the dashboard showed them before
            for step, value in evaluations(trial_folder_of(folder, trial), space.score):
                ot_trials[trial.trial_id].report(value, step)
        searcher.remember(trial.trial_id, trial.evaluated_params)
        if trial.status == Trial.TERMINATED:
            searcher.on_trial_complete(trial.trial_id, result=trial.last_result)
        else:  # pending, running or errored: Tune runs it again on resume
            unfinished.append(trial.trial_id)
    # The first trials of a search are its presets, in order.
    for point in space.warm_start_points[len(trials):]:
        study.enqueue_trial(point)

    limiter = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    hold_live_trials(limiter, set(unfinished))
    return RebuiltSearch(limiter, budget=space.num_samples, created=len(trials))


class DistinctOptunaSearch(OptunaSearch):
    """OptunaSearch over a space's define-by-run function that never hands Tune a configuration
    a trial of the search already has (see the module docstring).

    Two proposals are the same configuration when they build the same run config, so `off` with
    any leftover value and an explicit rate of 0 are one configuration.
    """

    MAX_DRAWS = 100  # proposals per new trial before the space counts as used up

    def __init__(self, space: SearchConfig, **kwargs):
        self._define_by_run = functools.partial(suggest, space)
        super().__init__(self._define_by_run, **kwargs)
        self._search_space = space
        self._trial_of: dict[str, str] = {}  # configuration key -> the trial that has it

    def remember(self, trial_id: str, params: dict) -> None:
        """Records that `trial_id` has the configuration `params` (parameter name -> value)."""
        self._trial_of.setdefault(self._key(params), trial_id)

    def suggest(self, trial_id: str) -> dict | str | None:
        from ray.tune.utils import flatten_dict

        for _ in range(self.MAX_DRAWS):
            config = super().suggest(trial_id)
            params = flatten_dict(config, delimiter="/")
            twin = self._trial_of.get(self._key(params))
            if twin is None:
                self.remember(trial_id, params)
                optuna_parts(self)[0][trial_id].set_user_attr("trial_id", trial_id)
                return config
            proposal = optuna_parts(self)[0].pop(trial_id)
            proposal.set_user_attr("repeats_trial", twin)
            self._tell_like(proposal, twin)
        print(f"TPE proposed only configurations the search has already tried in "
              f"{self.MAX_DRAWS} draws: no new trial is started", file=sys.stderr, flush=True)
        return Searcher.FINISHED

    def _key(self, params: dict) -> str:
        """The run config `params` build, in its canonical form."""
        config = self._search_space.trial_config(params)
        return json.dumps(config.to_dict(), sort_keys=True, default=str)

    def _tell_like(self, proposal, twin_id: str) -> None:
        """Tells Optuna the repeated proposal's outcome: the twin's value, or failed while the
        twin is unfinished (TPE skips failed trials)."""
        from optuna.trial import TrialState

        ot_trials, study = optuna_parts(self)
        twin = study.get_trials(deepcopy=False)[ot_trials[twin_id].number]
        if twin.state == TrialState.COMPLETE:
            study.tell(proposal, twin.value)
            outcome = f"its {self.metric} {twin.value:.4f} is reused"
        else:
            study.tell(proposal, state=TrialState.FAIL)
            outcome = "it is still running"
        name = ", ".join(f"{key}={value}" for key, value in sorted(proposal.params.items()))
        print(f"TPE proposed {name or 'the same point'} again, which trial {twin_id} has with "
              f"the same seed ({outcome}); asking for another point", file=sys.stderr,
              flush=True)


class RebuiltSearch(SearchGenerator):
    """Tune's search generator, counting the trials it was built with and ignoring the state
    files a resume would restore over them (see the module docstring)."""

    def __init__(self, searcher: ConcurrencyLimiter, budget: int, created: int):
        super().__init__(searcher)
        self._budget = budget
        set_generator_count(self, created)  # new trials: budget - created

    def restore_from_dir(self, dirpath: str) -> None:
        """Takes only what to run (the experiment's spec) from the saved state, with Tune's own
        reader; the trials, Optuna's history, the concurrency limit and the count stay as built
        from the experiment's trials, which the saved searcher may not match."""
        restore_generator_spec(self, dirpath, self._budget)


def _replay(searcher: OptunaSearch, params: dict[str, Any]):
    """An Optuna trial that samples exactly `params` (a trial's evaluated parameters): asked
    with the point enqueued, and the space's define-by-run function run on it, so Optuna records
    each parameter with its distribution."""
    study = optuna_parts(searcher)[1]
    study.enqueue_trial(params)
    ot_trial = study.ask()
    replay_define_by_run(searcher, searcher._define_by_run, ot_trial)
    return ot_trial


def trial_folder_of(folder: str, trial: Trial) -> str:
    """A saved trial's folder in the search folder (named as `experiment.trial_folder` names
    it)."""
    return storage.join(folder, f"trial_{trial.trial_id}")
