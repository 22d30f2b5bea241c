"""A search folder from someone else: a real search's folder verifies for the user whose
hk_tune wrote it; a copy resumed by another user, or one whose pickle was crafted, is refused
with one line before anything is unpickled and before Ray starts; `--trust` resumes it and
signs it as the resuming user's."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fault_search import write_space

from hk_tune import cli
from hk_tune.search import trust

# A search of its own: the slow selection; tests/search/test_trust.py checks the signatures
# in the default suite, and tests/search/test_resume.py resumes signed folders there.
pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.slow]

# The real command in a fresh process, which then says whether Ray was started.
SHELL = ("import sys, ray; from hk_tune.cli import main; status = main(sys.argv[1:]); "
         "print('ray started' if ray.is_initialized() else 'no ray', file=sys.stderr); "
         "sys.exit(status)")


class Marker:
    """What a crafted pickle does when unpickled: here, only leave a file behind."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_models, toy_data):
    tmp_path = tmp_path_factory.mktemp("foreign")
    space = write_space(tmp_path, tiny_models["bert"], toy_data["pair"], {
        "dropout.ffn_hidden.rate": {"type": "grid", "values": [0.0, 0.1]}},
        num_samples=2, confirm={"top_k": 1, "seeds": 2})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["search", space, "optim.max_steps=4", "--tracking-uri", uri]) == 0
    return tmp_path / "runs" / "faults"


def resume(folder: Path, config: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HK_TUNE_CONFIG_DIR": str(config)}
    return subprocess.run([sys.executable, "-c", SHELL, "resume", str(folder), *flags],
                          capture_output=True, text=True, timeout=300, env=env)


def test_the_folder_a_search_wrote_verifies_for_its_user(searched):
    trust.verify_folder(str(searched))
    names = {path.name for path in searched.rglob(f"*{trust.SUFFIX}")}
    # The Tuner's pickle, Tune's saved state and each trial's, for the search and its
    # confirmation grid.
    assert {f"tuner.pkl{trust.SUFFIX}", f"params.pkl{trust.SUFFIX}"} <= names
    assert any(name.startswith("experiment_state-") for name in names)
    assert any(name.startswith("searcher-state-") for name in names)
    assert len([p for p in searched.rglob("tuner.pkl")]) == 2  # the search and "confirm"


def test_a_colleagues_copy_is_refused_then_trusted(searched, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(searched, copy)
    colleague = tmp_path / "colleague"  # another user's config folder: another key
    done = resume(copy, colleague)
    assert done.returncode == 2, done.stderr
    error, ray_state = done.stderr.strip().splitlines()
    assert error.startswith(f"hk-tune: error: {copy}/") and "--trust" in error
    assert ray_state == "no ray"

    trusted = resume(copy, colleague, "--trust")
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    env_before = os.environ.get("HK_TUNE_CONFIG_DIR")
    os.environ["HK_TUNE_CONFIG_DIR"] = str(colleague)
    try:
        trust.verify_folder(str(copy))  # signed as the colleague's now: no flag next time
    finally:
        os.environ["HK_TUNE_CONFIG_DIR"] = env_before


def test_a_crafted_pickle_never_runs(searched, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(searched, copy)
    marker = tmp_path / "the crafted pickle ran"
    (copy / "tuner.pkl").write_bytes(pickle.dumps(Marker(str(marker))))
    done = resume(copy, Path(os.environ["HK_TUNE_CONFIG_DIR"]))  # this user's own key
    assert done.returncode == 2, done.stderr
    error, ray_state = done.stderr.strip().splitlines()
    assert error.startswith(f"hk-tune: error: {copy / 'tuner.pkl'}: ")
    assert "changed since" in error and ray_state == "no ray"
    assert not marker.exists()
    pickle.loads((copy / "tuner.pkl").read_bytes())  # the test's own check that it would have
    assert marker.exists()
