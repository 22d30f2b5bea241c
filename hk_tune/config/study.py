"""Where a search keeps its Optuna study, which `hk-tune dashboard` serves: by default a journal
file in the search folder (`optuna.journal`, written as each trial is asked, reports and
ends); `optuna_storage:` in the space file names a database instead (an RDB URL Optuna takes,
for a study several machines read). A search folder in an object store, where a journal
cannot be appended to, keeps the study only in memory unless a database is named.
"""

from __future__ import annotations

from typing import Any

from hk_tune.errors import ConfigError

JOURNAL_FILE = "optuna.journal"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")


def check_study_storage(value: Any, where: str) -> str | None:
    """The space file's `optuna_storage`: None (the default) or an RDB URL."""
    if value is None:
        return None
    scheme = value.partition("://")[0].split("+", 1)[0] if isinstance(value, str) else ""
    if scheme not in RDB_SCHEMES or "://" not in value:
        raise ConfigError(f"{where}: optuna_storage: {value!r}; allowed: an Optuna database URL "
                          f"({', '.join(s + '://...' for s in RDB_SCHEMES)}), or leave it out "
                          f"for {JOURNAL_FILE} in the search folder")
    return value
