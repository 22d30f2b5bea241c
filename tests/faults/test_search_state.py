"""A search killed while Tune copies its state into the search folder: through the filesystem
the search gives Tune, the file being written keeps its previous content; through pyarrow's
plain local filesystem it is left cut short, which `hk-tune resume` then refuses by name.
(The kill lands inside one write here; in a search it lands there now and then.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

WRITER = """
import os, signal, sys
import pyarrow.fs
from hk_tune.search.tune_state import tune_filesystem

fs = tune_filesystem(sys.argv[2]) if sys.argv[1] == "search" else pyarrow.fs.LocalFileSystem()
stream = fs.open_output_stream(sys.argv[2])
stream.write(b"new state, " * 1000)
stream.flush()
os.kill(os.getpid(), signal.SIGKILL)  # killed before the write completes
"""


@pytest.mark.parametrize("filesystem, left", [("search", b"previous state"),
                                              ("pyarrow", b"new state, " * 1000)])
def test_a_kill_during_a_write_leaves_a_whole_file(tmp_path, filesystem, left):
    state = tmp_path / "searcher-state-2026-01-01_00-00-00.pkl"
    state.write_bytes(b"previous state")
    killed = subprocess.run([sys.executable, "-c", WRITER, filesystem, str(state)])
    assert killed.returncode == -9
    # pyarrow truncated the file when it opened it: what it holds now is what the kill left.
    assert state.read_bytes() == left
    assert [p.name for p in tmp_path.glob("searcher-state-*")] == [state.name]


def test_resume_refuses_a_search_whose_tune_state_is_cut_short(tmp_path, capsys):
    from hk_tune import cli

    folder = tmp_path / "runs" / "cut"
    folder.mkdir(parents=True)
    # A search state as hk_tune writes it, so the check reached is the one on Tune's files.
    (folder / "search.json").write_text(json.dumps(
        {"overrides": [], "tracking_uri": "file:./mlruns", "parent_run_id": "0" * 32}))
    (folder / "tuner.pkl").write_bytes(b"\x80\x05 Tune's tuner")
    cut = folder / "searcher-state-2026-01-01_00-00-00.pkl"
    cut.write_bytes(b"")
    assert cli.main(["resume", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"hk-tune: error: {cut}: Tune's saved state is empty or cut short (the search "
                   "was killed while Tune wrote it), so the search cannot be resumed; start it "
                   "again under another name (name=...)")


def test_a_torn_copy_of_the_experiment_state_keeps_the_previous_one(tmp_path):
    # Tune rewrites its staging experiment state in place while the previous copy may still read
    # it: the copy then holds a prefix of the new file. Copied as Tune copies (pyarrow's
    # copy_files through the search's filesystem), such a copy is dropped and a whole one kept.
    import pyarrow.fs

    from hk_tune.search import trust
    from hk_tune.search.tune_state import tune_filesystem

    staging, folder = tmp_path / "staging", tmp_path / "search"
    staging.mkdir()
    folder.mkdir()
    name = "experiment_state-2026-01-01_00-00-00.json"
    whole = json.dumps({"trial_data": [["{}", "{}"]] * 50})
    destination = tune_filesystem(str(folder))
    for text in (whole, whole[:len(whole) // 2], "", whole.replace("{}", "[]")):
        (staging / name).write_text(text)
        (staging / "searcher-state-2026-01-01_00-00-00.pkl").write_bytes(text.encode()[:10])
        pyarrow.fs.copy_files(str(staging), str(folder), destination_filesystem=destination)
        kept = json.loads((folder / name).read_text())
        assert kept == json.loads(whole if text in ("", whole[:len(whole) // 2]) else text)
        # Only the experiment state is checked: other files are copied as they are.
        assert (folder / "searcher-state-2026-01-01_00-00-00.pkl").read_bytes() == (
            text.encode()[:10])
        trust.verify_folder(str(folder))  # each kept file signed as it landed, none torn
    searcher = "searcher-state-2026-01-01_00-00-00.pkl"
    assert sorted(p.name for p in folder.iterdir()) == [
        name, name + trust.SUFFIX, searcher, searcher + trust.SUFFIX]


def _state(*checkpoints) -> bytes:
    """An experiment state naming `checkpoints` as Tune does: pickled, hex, inside JSON strings."""
    import pickle

    manager = {"checkpoint_manager": {"_type": "CLOUDPICKLE_FALLBACK",
                                      "value": pickle.dumps([str(c) for c in checkpoints]).hex()}}
    return json.dumps({"trial_data": [["{}", json.dumps(manager)]]}).encode()


def test_a_deleted_checkpoint_waits_until_the_saved_state_stops_naming_it(tmp_path):
    # Tune deletes a trial's older checkpoint as a new one arrives, before its saved state names
    # the new one: a kill in between would leave a state naming a checkpoint that is gone.
    from hk_tune.search.tune_state import tune_filesystem

    search = tmp_path / "search"
    first, second, third = (search / "trial_a" / f"checkpoint_00000{i}" for i in range(3))
    other = search / "trial_a" / "scratch"
    for folder in (first, second, third, other):
        folder.mkdir(parents=True)
        (folder / "trainer_state.pt").write_bytes(b"state")
    fs = tune_filesystem(str(search))
    state = str(search / "experiment_state-2026-01-01_00-00-00.json")

    def save(content: bytes) -> None:
        with fs.open_output_stream(state) as stream:
            stream.write(content)

    save(_state(first))
    fs.delete_dir(str(first))
    assert first.exists()  # the saved state names it
    fs.delete_dir(str(other))
    assert not other.exists()  # not a checkpoint: deleted at once
    save(_state(first, second)[:40])  # cut short: dropped, and the state on disk still names it
    assert first.exists()
    save(_state(second))
    assert not first.exists() and second.exists()
    fs.delete_dir(str(second))
    save(_state(third))
    assert not second.exists() and third.exists()


def test_checkpoints_of_a_search_this_process_saves_no_state_for_are_deleted_at_once(tmp_path):
    from hk_tune.search.tune_state import tune_filesystem

    checkpoint = tmp_path / "search" / "trial_a" / "checkpoint_000000"
    checkpoint.mkdir(parents=True)
    tune_filesystem(str(tmp_path / "search")).delete_dir(str(checkpoint))
    assert not checkpoint.exists()
