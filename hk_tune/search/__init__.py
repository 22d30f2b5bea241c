"""The search: a space sampled by Optuna's TPE behind Ray Tune, trials scored by their best
evaluation, seed confirmation, and the results.

    space = load_space("search_spaces/quickstart.yaml", ["num_samples=4"])
    summary = run_search(space, SearchOptions(space_file="search_spaces/quickstart.yaml"))
    summary = resume_search("hk_tune_runs/quickstart")
    summary.best["name"], summary.best_config_path        # a SearchSummary

Ray and Optuna are imported when a search runs, not when this package is imported.
"""

from hk_tune.config.space import Entry, SearchConfig
from hk_tune.config.space_file import load_space
from hk_tune.search.results import SearchSummary
from hk_tune.search.run import SearchOptions, resume_search, run_search, search_folder

__all__ = ["Entry", "SearchConfig", "SearchOptions", "SearchSummary", "load_space",
           "resume_search", "run_search", "search_folder"]
