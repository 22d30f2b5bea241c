"""The search: space files -> Optuna define-by-run, Ray Tune with Optuna TPE, seed confirmation.

    space = load_space("search_spaces/quickstart.yaml", ["num_samples=4"])
    summary = run_search(space, SearchOptions(space_file="search_spaces/quickstart.yaml"))
    summary = resume_search("hk_tune_runs/quickstart")

Ray and Optuna are imported when a search runs, not when this package is imported.
"""

from hk_tune.search.space import Entry, Space
from hk_tune.search.space_file import load_space
from hk_tune.search.tuner import SearchOptions, resume_search, run_search, search_folder

__all__ = ["Entry", "SearchOptions", "Space", "load_space", "resume_search", "run_search",
           "search_folder"]
