"""GPU trials: whole or fractional GPUs per worker, and concurrency that follows the cluster's
GPU count (and its CPUs), capped by the space's max_concurrent."""

from __future__ import annotations

from pathlib import Path

import pytest

from hk_tune.config.space_file import load_space
from hk_tune.search.executor import choose_executor, trial_resources, trials_that_fit

QUICKSTART = Path(__file__).parents[2] / "search_spaces" / "quickstart.yaml"

CASES = [  # resources overrides, cluster totals, trials at once
    ([], {"CPU": 2.0}, 2),
    (["resources.gpus_per_worker=1"], {"CPU": 64.0, "GPU": 4.0}, 4),
    (["resources.gpus_per_worker=0.5"], {"CPU": 64.0, "GPU": 4.0}, 8),
    (["resources.gpus_per_worker=0.25"], {"CPU": 4.0, "GPU": 4.0}, 4),  # CPUs bind first
    (["resources.num_workers=2", "resources.gpus_per_worker=1"], {"CPU": 64.0, "GPU": 8.0}, 4),
    (["resources.gpus_per_worker=1"], {"CPU": 8.0}, 1),  # no GPU node yet: one waits for one
    (["resources.gpus_per_worker=0.5", "max_concurrent=3"], {"CPU": 64.0, "GPU": 4.0}, 3),
]


@pytest.mark.parametrize("overrides, cluster, expected", CASES)
def test_concurrency_follows_the_clusters_gpus(overrides, cluster, expected):
    space = load_space(QUICKSTART, [*overrides, "max_concurrent=null"]
                       if not any(o.startswith("max_concurrent") for o in overrides)
                       else overrides)
    assert trials_that_fit(space, cluster) == expected


def test_a_one_worker_gpu_trial_runs_in_the_reused_trial_actor_holding_its_gpu():
    space = load_space(QUICKSTART, ["resources.gpus_per_worker=0.5"])
    assert choose_executor(space) == "inprocess"  # no Ray Train worker processes per trial

    scaling = space.base.scaling
    assert scaling.use_gpu and scaling.gpus_per_worker == 0.5
    assert trial_resources(space) == {"cpu": 1.0, "gpu": 0.5}  # the trial actor holds it


def test_multi_worker_gpu_trials_keep_ray_train():
    space = load_space(QUICKSTART, ["resources.num_workers=4", "resources.gpus_per_worker=1"])
    assert choose_executor(space) == "train"
    assert trial_resources(space) == {"cpu": 0.01}  # the driver; the workers hold the GPUs
    assert trials_that_fit(space, {"CPU": 64.0, "GPU": 8.0}) == 2
    forced = load_space(QUICKSTART, ["resources.gpus_per_worker=1", "executor=train"])
    assert choose_executor(forced) == "train"


def test_storage_path_comes_from_the_environment_unless_the_space_sets_it(monkeypatch):
    monkeypatch.setenv("HK_TUNE_STORAGE_PATH", "s3://bucket/runs")
    assert load_space(QUICKSTART).storage_path == "s3://bucket/runs"
    assert load_space(QUICKSTART, ["storage_path=/shared/runs"]).storage_path == "/shared/runs"
    monkeypatch.delenv("HK_TUNE_STORAGE_PATH")
    assert load_space(QUICKSTART).storage_path == "hk_tune_runs"
