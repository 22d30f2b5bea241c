"""Tune's saved state in a search folder: saved when a trial changes, written whole, never naming
a deleted checkpoint, and checked before a resume.

Tune saves its state (experiment_state-*.json, searcher-state-*.pkl, search_gen_state-*.json)
into a staging folder, then copies the folder into storage_path from a background thread. By
default it does so every 10 s or more: a search killed meanwhile loses the trials that started,
reported or finished since (a finished trial would run again). Saving after every step instead
(`TUNE_GLOBAL_CHECKPOINT_S=0`, ten times a second) slows every trial on a small machine: the
driver rewrites and copies the whole state, most times unchanged, growing with the trials
(`benchmarks/search_overhead.py` measures it with that setting in its environment).
`ray_internals.save_state_on_change` saves it at the end of every step in which a trial was
added, started, reported, checkpointed or stopped, and only then (besides Tune's own period).

pyarrow's local filesystem opens each destination file truncated and then writes it, so a search
killed during a copy leaves an empty or partial file. `hk-tune resume` then fails to restore the
searcher, and Tune quietly starts the experiment over with a half-restored searcher that waits
forever for a trial that no longer exists. Through this filesystem each file is written to a
temporary file beside it and renamed over it when complete: a kill leaves the previous copy.

The copy itself can also be torn: Tune rewrites its staging experiment_state file in place
(open, truncate, write) while the previous copy may still be reading it, so a copy can hold an
empty or cut-short experiment state. Such a copy is dropped, keeping the previous one; the next
copy is whole. (The searcher files are replaced whole in staging, so their copies are whole.)

Tune deletes a trial's older checkpoints as new ones arrive, before the saved experiment state
names the new ones: a search killed in between would resume the trial from a checkpoint that is
gone. Through this filesystem a checkpoint folder is deleted only once the experiment state in
its search folder no longer names it; until then it waits. A search killed meanwhile leaves the
waiting folders on disk (a checkpoint or two per trial).

    with save_state_on_change():                # hk_tune.search.ray_internals
        tune.Tuner(..., run_config=tune.RunConfig(
            storage_path=folder, storage_filesystem=tune_filesystem(folder))).fit()
    check_tune_state(folder)    # before Tuner.restore: ConfigError naming a damaged file

Object stores need none of the filesystem's care for whole files (an object appears whole when
its upload completes); a deleted checkpoint there is named until the next snapshot lands.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow
import pyarrow.fs
from fsspec.implementations.local import LocalFileSystem

from hk_tune import storage
from hk_tune.errors import ConfigError
from hk_tune.search import trust

# What Tuner.restore reads from a search folder (the newest of each is the one it uses).
EXPERIMENT_STATE = "experiment_state-*.json"
TUNE_STATE_FILES = ("tuner.pkl", EXPERIMENT_STATE, "searcher-state-*.pkl",
                    "search_gen_state-*.json")
CHECKPOINT = "checkpoint_*"  # a trial's checkpoint folder: <search>/trial_<id>/checkpoint_<n>

# Checkpoint folders Tune has deleted that the search folder's experiment state may still name,
# by search folder; a search folder is a key once this process has saved a state into it. The
# driver's trials hand their checkpoints back with filesystems of their own: this is per process.
_WAITING: dict[str, set[str]] = {}
_WAITING_LOCK = threading.Lock()


def signs_on_write(filesystem) -> bool:
    """True for `atomic_local_filesystem`, which signs Tune's pickles as they land."""
    return (isinstance(filesystem, pyarrow.fs.PyFileSystem)
            and isinstance(filesystem.handler, AtomicLocalHandler))


def tune_filesystem(path: str):
    """Where Tune writes a local search folder: files replaced whole, so a search killed while
    Tune copies its state there can be resumed (see the module docstring). None for an
    object store: Tune's own filesystem for the URI."""
    return None if storage.is_uri(path) else atomic_local_filesystem()


def check_tune_state(folder: str) -> None:
    """Refuses a local search folder whose newest Tune state files are empty or cut short (a
    search killed while Tune copied them, before `tune_filesystem`): Tune would fail to restore
    them, start the experiment over with a half-restored searcher, and wait forever.

    Raises:
        ConfigError: naming the file.
    """
    if storage.is_uri(folder):
        return  # an object appears whole when its upload completes
    for pattern in TUNE_STATE_FILES:
        found = sorted(Path(folder).glob(pattern), key=lambda path: path.stat().st_mtime)
        if not found:
            continue
        newest = found[-1]
        damaged = newest.stat().st_size == 0
        if not damaged and pattern == EXPERIMENT_STATE:  # JSON, unlike the others (pickles)
            damaged = not _is_json(newest.read_bytes())
        if damaged:
            raise ConfigError(f"{newest}: Tune's saved state is empty or cut short (the search "
                              "was killed while Tune wrote it), so the search cannot be resumed; "
                              "start it again under another name (name=...)")


def atomic_local_filesystem() -> pyarrow.fs.FileSystem:
    """The local filesystem, with files replaced whole (see the module docstring)."""
    return pyarrow.fs.PyFileSystem(AtomicLocalHandler())


class AtomicLocalHandler(pyarrow.fs.FSSpecHandler):
    """fsspec's local filesystem for pyarrow, with output streams that replace on close.

    Tune pickles its storage filesystem into every trial actor, which writes its checkpoints
    through it: the handler pickles as its class alone.
    """

    def __init__(self):
        super().__init__(LocalFileSystem(auto_mkdir=True))

    def __reduce__(self):
        return (AtomicLocalHandler, ())

    def open_output_stream(self, path: str, metadata) -> pyarrow.NativeFile:
        signed = trust.is_unpickled(os.path.basename(path))
        if fnmatch.fnmatch(os.path.basename(path), EXPERIMENT_STATE):
            stream = ReplaceOnClose(path, _is_json,
                                    lambda state: release_checkpoints(os.path.dirname(path), state),
                                    signed=True)
        else:
            stream = ReplaceOnClose(path, signed=signed)
        return pyarrow.PythonFile(stream, mode="w")

    def delete_dir(self, path: str) -> None:
        """Deletes `path`; a trial's checkpoint waits until the saved state stops naming it."""
        search = os.path.dirname(os.path.dirname(path))
        with _WAITING_LOCK:
            if fnmatch.fnmatch(os.path.basename(path), CHECKPOINT) and search in _WAITING:
                _WAITING[search].add(path)
                return
        super().delete_dir(path)

    def open_append_stream(self, path: str, metadata) -> pyarrow.NativeFile:
        # Appending means keeping what is there: copy it into the new file first.
        stream = ReplaceOnClose(path, signed=trust.is_unpickled(os.path.basename(path)))
        if os.path.exists(path):
            with open(path, "rb") as existing:
                stream.write(existing.read())
        return pyarrow.PythonFile(stream, mode="w")


def release_checkpoints(search: str, state: bytes) -> None:
    """Deletes the waiting checkpoint folders of `search` that `state`, its experiment state
    now saved, does not name. Tune keeps a trial's checkpoints as pickles inside the JSON, so a
    path is named either as text or as the hex of its UTF-8 bytes."""
    with _WAITING_LOCK:
        waiting = _WAITING.setdefault(search, set())
        unnamed = {path for path in waiting
                   if path.encode() not in state and path.encode().hex().encode() not in state}
        waiting -= unnamed
    for path in unnamed:
        shutil.rmtree(path, ignore_errors=True)


class ReplaceOnClose:
    """A binary file written as `.<name>.<random>.tmp` beside `path`, renamed to `path` by
    `close` if `whole(content)` says it is whole (else dropped, keeping `path`), then its content
    handed to `saved(content)`. `signed`: the content is signed before it replaces the file
    (`hk_tune.search.trust.sign_local`). The hidden temporary name matches none of the patterns
    Tune lists files by."""

    def __init__(self, path: str, whole: Callable[[bytes], bool] | None = None,
                 saved: Callable[[bytes], None] | None = None, signed: bool = False):
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        handle, self._temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        self._file = os.fdopen(handle, "wb")
        self._path = path
        self._whole = whole
        self._saved = saved
        self._signed = signed

    def write(self, data) -> int:
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()
        content = b""
        if self._whole is not None or self._saved is not None or self._signed:
            with open(self._temporary, "rb") as file:  # read once, for all
                content = file.read()
        if self._whole is not None and not self._whole(content):
            os.remove(self._temporary)
            return
        if self._signed:
            trust.sign_local(Path(self._path), content)
        os.replace(self._temporary, self._path)
        if self._saved is not None:
            self._saved(content)


def _is_json(content: bytes) -> bool:
    try:
        json.loads(content)
    except ValueError:  # empty or cut short (JSONDecodeError, UnicodeDecodeError)
        return False
    return True
