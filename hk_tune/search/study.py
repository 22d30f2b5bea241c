"""The search's Optuna study in storage, where `hk-tune dashboard` (optuna-dashboard) reads it
live: every trial as Tune runs it, with the score at each evaluation as intermediate values
and the Tune trial id as a user attribute (`trial_id`, the same tag MLflow's runs carry).

The study is the searcher's own (`OptunaSearch(storage=...)`), so what the dashboard shows is
what TPE sees. A resumed search rebuilds its searcher from Tune's saved trials
(`hk_tune.search.searcher`); the study is rebuilt with it, each trial's evaluations replayed
from its `result.json`, so the dashboard shows the search whole again.

    where = storage_address(space, folder)    # what search.json keeps for the dashboard
    storage = open_storage(where)             # None: the study lives in memory only
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hk_tune import storage as files
from hk_tune.config.space import SearchConfig
from hk_tune.config.study import JOURNAL_FILE

JOURNAL = "journal:"  # storage_address's prefix for a journal file


def storage_address(space: SearchConfig, folder: str) -> str | None:
    """`journal:<path>` or the RDB URL of the study of the search in `folder`; None when it
    lives in memory only (an object-store folder with no `optuna_storage`)."""
    if space.optuna_storage:
        return space.optuna_storage
    if files.is_uri(folder):
        return None
    return JOURNAL + str(Path(folder, JOURNAL_FILE))


def open_storage(address: str | None):
    """The Optuna storage at `address` (see `storage_address`), or None."""
    if address is None:
        return None
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if address.startswith(JOURNAL):
        return optuna.storages.JournalStorage(JournalFileBackend(address[len(JOURNAL):]))
    return optuna.storages.RDBStorage(address)


def drop_study(storage, name: str) -> None:
    """Deletes the study `name` from `storage` if it is there: the searcher rebuilds it."""
    import optuna

    if storage is not None and name in optuna.get_all_study_names(storage):
        optuna.delete_study(study_name=name, storage=storage)


def evaluations(trial_folder: str, metric: str) -> list[tuple[int, float]]:
    """(Tune's training_iteration, value of `metric`) of each result a trial reported, from its
    folder's result.json; [] when the folder has none (a trial that never reported)."""
    path = files.join(trial_folder, "result.json")
    if not files.exists(path):
        return []
    found = []
    for line in files.read_text(path).splitlines():
        try:
            result: dict[str, Any] = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        value = result.get(metric)
        if isinstance(value, (int, float)) and "training_iteration" in result:
            found.append((int(result["training_iteration"]), float(value)))
    return found
