"""Tune's saved state in a search folder: written whole, and checked before a resume.

Tune writes its state (experiment_state-*.json, searcher-state-*.pkl, search_gen_state-*.json)
atomically into a staging folder, then copies the folder into storage_path from a background
thread, after every step (`TUNE_GLOBAL_CHECKPOINT_S=0`, see `tuner.RAY_ENV`). pyarrow's local
filesystem opens each destination file truncated and then writes it, so a search killed during
a copy leaves an empty or partial file. `hk-tune resume` then fails to restore the searcher, and
Tune quietly starts the experiment over with a half-restored searcher that waits forever for a
trial that no longer exists. Through this filesystem each file is written to a temporary file
beside it and renamed over it when complete: a kill leaves the previous copy.

The copy itself can also be torn: Tune rewrites its staging experiment_state file in place
(open, truncate, write) at the next step while the previous copy may still be reading it, so a
copy can hold an empty or cut-short experiment state. Such a copy is dropped, keeping the
previous one; the next step copies the whole file. (The searcher files are replaced whole in
staging, so their copies are whole.)

    tune.RunConfig(storage_path=folder, storage_filesystem=tune_filesystem(folder))
    check_tune_state(folder)    # before Tuner.restore: ConfigError naming a damaged file

Object stores need none of this: an object appears whole when its upload completes.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow
import pyarrow.fs
from fsspec.implementations.local import LocalFileSystem

from hk_tune.errors import ConfigError
from hk_tune.train import storage

# What Tuner.restore reads from a search folder (the newest of each is the one it uses).
EXPERIMENT_STATE = "experiment_state-*.json"
TUNE_STATE_FILES = ("tuner.pkl", EXPERIMENT_STATE, "searcher-state-*.pkl",
                    "search_gen_state-*.json")


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
            damaged = not _is_json(str(newest))
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
        whole = _is_json if fnmatch.fnmatch(os.path.basename(path), EXPERIMENT_STATE) else None
        return pyarrow.PythonFile(ReplaceOnClose(path, whole), mode="w")

    def open_append_stream(self, path: str, metadata) -> pyarrow.NativeFile:
        # Appending means keeping what is there: copy it into the new file first.
        stream = ReplaceOnClose(path)
        if os.path.exists(path):
            with open(path, "rb") as existing:
                stream.write(existing.read())
        return pyarrow.PythonFile(stream, mode="w")


class ReplaceOnClose:
    """A binary file written as `.<name>.<random>.tmp` beside `path`, renamed to `path` by
    `close`, if `whole(temporary path)` says it is whole (else dropped, keeping `path`). The
    hidden temporary name matches none of the patterns Tune lists files by."""

    def __init__(self, path: str, whole: Callable[[str], bool] | None = None):
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        handle, self._temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        self._file = os.fdopen(handle, "wb")
        self._path = path
        self._whole = whole

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
        if self._whole is None or self._whole(self._temporary):
            os.replace(self._temporary, self._path)
        else:
            os.remove(self._temporary)


def _is_json(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            json.load(file)
    except ValueError:  # empty or cut short (JSONDecodeError, UnicodeDecodeError)
        return False
    return True
