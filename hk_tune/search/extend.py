"""Extending a search: `hk-tune resume PATH num_samples=N` raises its budget to N trials in all
(as `num_samples` means in a space file), the searcher keeping its history, so a finished
search of 6 trials resumed with num_samples=10 runs exactly 4 more and none of the 6 again.

The new trials may change which configurations seed confirmation picks, so the earlier
confirmation grid is moved aside (`confirm.before_<N>`, kept) and confirmation runs again; the
search state records the new budget, so a later resume keeps it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from hk_tune import storage
from hk_tune.config.files import parse_override
from hk_tune.errors import ConfigError
from hk_tune.search.confirm import CONFIRM_FOLDER
from hk_tune.search.results import SUMMARY

EXTENSIBLE = ("num_samples",)


def extension(overrides: Sequence[str], folder: str) -> list[str]:
    """The overrides a resume may take (`num_samples=N`), checked; [] for a plain resume.

    Raises:
        ConfigError: another setting (a search's other settings are its own), or a budget
            below the trials the finished search already ran.
    """
    for override in overrides:
        key, value = parse_override(override, f"{folder}: resume")
        if key not in EXTENSIBLE:
            raise ConfigError(f"{folder}: resume {override!r}: a search keeps the settings it "
                              f"began with; allowed: {', '.join(k + '=N' for k in EXTENSIBLE)}")
        summary = storage.join(folder, SUMMARY)
        if storage.exists(summary) and isinstance(value, int) and not isinstance(value, bool):
            ran = len(json.loads(storage.read_text(summary)).get("results", []))
            if value < ran:
                raise ConfigError(f"{folder}: resume num_samples={value}: the search has run "
                                  f"{ran} trials already; allowed: num_samples >= {ran}")
    return list(overrides)


def extend(folder: str, state: dict, overrides: list[str], num_samples: int) -> None:
    """Records the new budget in the search state and moves the confirmation grid aside."""
    if not overrides:
        return
    if storage.is_uri(folder):
        raise ConfigError(f"{folder}: extending a search in an object store is not supported "
                          "(its confirmation grid cannot be moved aside there); copy the folder "
                          "to a local or mounted path first")
    confirm = os.path.join(folder, CONFIRM_FOLDER)
    if os.path.isdir(confirm):
        aside, n = os.path.join(folder, f"{CONFIRM_FOLDER}.before_{num_samples}"), 1
        while os.path.exists(aside):  # extended to this budget before
            aside, n = os.path.join(folder, f"{CONFIRM_FOLDER}.before_{num_samples}.{n}"), n + 1
        os.replace(confirm, aside)
    kept = [o for o in state["overrides"] if o.partition("=")[0] not in EXTENSIBLE]
    state = {**state, "overrides": [*kept, *overrides]}
    storage.write_text(storage.join(folder, storage.SEARCH_STATE), json.dumps(state, indent=1))
