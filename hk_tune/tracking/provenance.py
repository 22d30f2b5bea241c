"""Where a search's code came from: hk_tune's version and the git commit it runs in."""

from __future__ import annotations

import subprocess

from hk_tune import __version__


def provenance_tags(seed: int) -> dict[str, str]:
    """Tags of a search's parent run: `hk_tune.version`, `hk_tune.seed` and, inside a git
    checkout, `hk_tune.git_commit` (also as MLflow's own `mlflow.source.git.commit`, which the
    UI shows) and `hk_tune.git_dirty` (tracked files changed since that commit)."""

    return {"hk_tune.version": __version__, "hk_tune.seed": str(seed), **_git_tags()}


def _git_tags() -> dict[str, str]:
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return {}
    return {"hk_tune.git_commit": commit, "mlflow.source.git.commit": commit,
            "hk_tune.git_dirty": str(bool(dirty)).lower()}


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=True)
    return done.stdout.strip()
