"""Trust-on-write (hk_tune.search.trust): the pickles of a search folder verify only as this
user's hk_tune wrote them; anything else is refused by name before it is unpickled."""

from __future__ import annotations

import os
import pickle
import stat
import threading

import pytest

from hk_tune.errors import ConfigError
from hk_tune.search import trust


@pytest.fixture
def own_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HK_TUNE_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


def a_folder(root):
    """A folder shaped like a search's: Tune's state files, a trial, a checkpoint."""
    root.mkdir()
    (root / "tuner.pkl").write_bytes(pickle.dumps({"tuner": 1}))
    (root / "experiment_state-2026.json").write_text('{"trial_data": []}')
    (root / "searcher-state-2026.pkl").write_bytes(pickle.dumps([1, 2]))
    (root / "trial_a").mkdir()
    (root / "trial_a" / "params.pkl").write_bytes(pickle.dumps({"x": 1}))
    (root / "trial_a" / "result.json").write_text("{}")  # not unpickled: not signed
    (root / "trial_a" / "checkpoint_000000").mkdir()
    (root / "trial_a" / "checkpoint_000000" / "trainer_state.pt").write_bytes(b"tensors")
    return root


def test_a_folder_signed_as_written_verifies(tmp_path, own_key):
    folder = a_folder(tmp_path / "search")
    trust.sign_tree(str(folder))
    trust.verify_folder(str(folder))
    signed = sorted(p.name for p in folder.rglob(f"*{trust.SUFFIX}"))
    assert signed == [f"{name}{trust.SUFFIX}" for name in
                      ("experiment_state-2026.json", "params.pkl", "searcher-state-2026.pkl",
                       "tuner.pkl")]
    key = own_key / trust.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600  # the owner's alone
    assert stat.S_IMODE(own_key.stat().st_mode) == 0o700


@pytest.mark.parametrize("change, why", [
    ("altered", "changed since"),
    ("unsigned", "did not sign"),
    ("renamed", "changed since"),
    ("someone else's key", "not your hk_tune's"),
    ("no key at all", "did not sign"),
])
def test_anything_else_is_refused_naming_the_file(tmp_path, own_key, monkeypatch, change, why):
    folder = a_folder(tmp_path / "search")
    trust.sign_tree(str(folder))
    named = folder / "tuner.pkl"
    if change == "altered":
        named.write_bytes(pickle.dumps({"tuner": 2}))
    elif change == "unsigned":
        named = folder / "trial_a" / "error.pkl"
        named.write_bytes(pickle.dumps(ValueError("boom")))
    elif change == "renamed":  # a signed pickle and its signature, under another signed name
        os.replace(folder / "searcher-state-2026.pkl", named)
        os.replace(folder / f"searcher-state-2026.pkl{trust.SUFFIX}",
                   folder / f"tuner.pkl{trust.SUFFIX}")
    else:  # every file fails; the first one walked is named
        named = folder / "experiment_state-2026.json"
        monkeypatch.setenv("HK_TUNE_CONFIG_DIR", str(tmp_path / "elsewhere"))
        if change == "someone else's key":
            trust.signing_key()
    with pytest.raises(trust.UntrustedFolder, match=why) as refused:
        trust.verify_folder(str(folder))
    message = str(refused.value)
    assert message.startswith(f"{named}: ") and "--trust" in message
    assert "\n" not in message


def test_adopting_signs_the_folder_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("HK_TUNE_CONFIG_DIR", str(tmp_path / "colleague"))
    folder = a_folder(tmp_path / "search")
    trust.sign_tree(str(folder))
    monkeypatch.setenv("HK_TUNE_CONFIG_DIR", str(tmp_path / "mine"))
    with pytest.raises(trust.UntrustedFolder):
        trust.verify_folder(str(folder))
    trust.adopt_folder(str(folder))
    trust.verify_folder(str(folder))


def test_checkpoints_are_not_walked(tmp_path, own_key):
    folder = a_folder(tmp_path / "search")
    trust.sign_tree(str(folder))
    # hk_tune loads no pickle from a checkpoint (safetensors, JSON, weights-only tensors).
    (folder / "trial_a" / "checkpoint_000000" / "extra.pkl").write_bytes(b"never loaded")
    trust.verify_folder(str(folder))


def test_processes_making_the_key_at_once_agree(own_key):
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(trust.signing_key()))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert [p.name for p in own_key.iterdir()] == [trust.KEY_FILE]  # no draft left behind


def test_a_damaged_key_is_a_config_error(own_key):
    own_key.mkdir()
    (own_key / trust.KEY_FILE).write_text("not hex")
    with pytest.raises(ConfigError, match="not an hk_tune signing key"):
        trust.signing_key()
