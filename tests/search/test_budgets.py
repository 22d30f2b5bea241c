"""A search ends early on its own terms, with a valid result: a time budget (Tune's
`time_budget_s`) or a score target (`stop:`), on the shared local Ray."""

from __future__ import annotations

import json

import pytest
from test_search import tiny_space

from hk_tune import cli
from hk_tune.config.space_file import load_space
from hk_tune.errors import ConfigError

pytestmark = pytest.mark.usefixtures("ray_session")


def summary_of(tmp_path) -> dict:
    return json.loads((tmp_path / "runs" / "tiny" / "summary.json").read_text())


def test_a_score_target_ends_the_search_at_the_first_trial_that_reaches_it(
        tmp_path, tiny_models, toy_data):
    space = tiny_space(tmp_path, tiny_models, toy_data, num_samples=12, max_concurrent=1,
                       scheduler="none", stop=0.0)  # any accuracy reaches 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["search", space, "--tracking-uri", uri, "--json"]) == 0
    summary = summary_of(tmp_path)
    assert 1 <= len(summary["results"]) <= 2  # the one that reached it (and one starting)
    assert summary["best"]["trial_id"] and summary["best_config"]


def test_a_time_budget_ends_the_search_early_with_its_trials_so_far(
        tmp_path, tiny_models, toy_data):
    space = tiny_space(tmp_path, tiny_models, toy_data, num_samples=40, max_concurrent=1,
                       scheduler="none", time_budget_s=15)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["search", space, "--tracking-uri", uri, "--json"]) == 0
    summary = summary_of(tmp_path)
    assert 1 <= len(summary["results"]) < 40
    assert summary["best"]["trial_id"] in {row["trial_id"] for row in summary["results"]}
    assert all(row["status"] in ("completed", "stopped") for row in summary["results"])


@pytest.mark.parametrize("change, allowed", [
    (["time_budget_s=0"], "seconds > 0"), (["time_budget_s=soon"], "expected a number"),
    (["stop=high"], "expected a number")])
def test_bad_budgets_are_refused_before_anything_runs(tmp_path, tiny_models, toy_data,
                                                      change, allowed):
    space = tiny_space(tmp_path, tiny_models, toy_data)
    with pytest.raises(ConfigError, match=allowed):
        load_space(space, change)


@pytest.mark.slow  # two searches and a confirmation each
def test_resume_num_samples_extends_a_finished_search_by_exactly_the_new_trials(
        tmp_path, tiny_models, toy_data, capsys):
    from test_study import check_study_holds_the_search

    space = tiny_space(tmp_path, tiny_models, toy_data, num_samples=2, max_concurrent=1,
                       scheduler="none", confirm={"top_k": 1, "seeds": 2})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = tmp_path / "runs" / "tiny"
    assert cli.main(["search", space, "--tracking-uri", uri]) == 0
    before = {row["trial_id"]: (folder / f"trial_{row['trial_id']}" / "result.json").read_text()
              for row in summary_of(tmp_path)["results"]}

    for bad, words in ((["seed=3"], "allowed: num_samples=N"),
                       (["num_samples=1"], "num_samples >= 2")):
        assert cli.main(["resume", str(folder), *bad]) == 2
        assert words in capsys.readouterr().err
    assert cli.main(["resume", str(folder), "num_samples=4"]) == 0
    after = {row["trial_id"] for row in summary_of(tmp_path)["results"]}
    assert len(after) == 4 and set(before) <= after  # 2 new trials, the first 2 kept
    for trial, lines in before.items():  # and not run again
        assert (folder / f"trial_{trial}" / "result.json").read_text() == lines
    assert (folder / "confirm.before_4").is_dir() and (folder / "confirm").is_dir()
    assert "num_samples=4" in json.loads((folder / "search.json").read_text())["overrides"]
    check_study_holds_the_search(folder)
