"""The search: a space sampled by Optuna's TPE behind Ray Tune, trials scored by their best
evaluation, seed confirmation, and the results.

    result = run_search("search_spaces/quickstart.yaml", overrides=["num_samples=4"])
    result.best.name, result.best_config_path, result.adapter_path    # a SearchResult
    result = load_result("hk_tune_runs/quickstart")                   # a finished search
    summary = resume_search("hk_tune_runs/quickstart")                # an interrupted one

Ray and Optuna are imported when a search runs, not when this package is imported.
"""

from hk_tune.config.space import Entry, SearchConfig
from hk_tune.config.space_file import load_space
from hk_tune.search.api import (
    Confirmation,
    Confirmed,
    SearchResult,
    Trial,
    load_result,
    run_search,
)
from hk_tune.search.results import SearchSummary
from hk_tune.search.run import SearchOptions, resume_search, search, search_folder

__all__ = ["Confirmation", "Confirmed", "Entry", "SearchConfig", "SearchOptions",
           "SearchResult", "SearchSummary", "Trial", "load_result", "load_space",
           "resume_search", "run_search", "search", "search_folder"]
