"""Trust-on-write for search folders: resuming a search unpickles what Tune saved in its folder
(`tuner.pkl`, the searcher's and callbacks' state, the cloudpickled values inside
`experiment_state-*.json`, a trial's `params.pkl` and `error.pkl`), and unpickling runs whatever
code the pickle names. A folder from a shared bucket or a colleague's copy could run its
author's code on `hk-tune resume`.

So hk_tune signs each of those files as it writes them, with an HMAC under a key only this user
holds (`signing.key` in hk_tune's config folder, made on first use, readable by its owner only),
as Jupyter signs the notebooks its user trusted. The signature sits beside the file
(`<name>.hk_tune.sig`). `hk-tune resume` verifies every such file before anything is unpickled
and refuses an unsigned or altered folder; `--trust` resumes it anyway and signs it, so the next
resume needs no flag.

In a local search folder each file is signed as Tune's copy lands (`tune_state`'s filesystem):
the signature of the new content is written, beside the previous one, before the content
replaces the old, so a search killed at any moment leaves a folder that verifies. In an object
store the state is signed in Tune's local staging folder, and the signatures travel with the
copy: a search killed in the instant between a file's upload and its signature's needs
`--trust`.

What it costs: a folder from another of your own machines needs `--trust` once (or the same
key in its config folder). What it does not cover: the checkpoints, which hold no pickle Tune or
hk_tune loads (safetensors, JSON, and tensors read with torch's weights-only unpickler), and a
search's own results (JSON and YAML).

    sign_local(path, content)          # before `content` replaces the local file `path`
    sign_tree(staging_folder)          # after Tune saves its state, for an object store
    sign_file(join(folder, "tuner.pkl"))
    verify_folder(folder)              # before Tuner.restore: UntrustedFolder naming a file
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from hk_tune import storage
from hk_tune.errors import ConfigError

# Files of a Tune experiment folder that restoring it unpickles (Tune's own names).
UNPICKLED = ("*.pkl", "experiment_state-*.json", "search_gen_state-*.json",
             "basic-variant-state-*.json")
SUFFIX = ".hk_tune.sig"
KEY_FILE = "signing.key"
_CONTEXT = b"hk_tune search folder v1\0"


class UntrustedFolder(ConfigError):
    """A search folder holds a pickle this user's hk_tune did not sign, or one altered since."""


def config_folder() -> Path:
    """hk_tune's folder of per-user settings: $HK_TUNE_CONFIG_DIR, else
    $XDG_CONFIG_HOME/hk_tune, else ~/.config/hk_tune."""
    if os.environ.get("HK_TUNE_CONFIG_DIR"):
        return Path(os.environ["HK_TUNE_CONFIG_DIR"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser() / "hk_tune"


def signing_key(create: bool = True) -> bytes | None:
    """This user's key; made (32 random bytes, mode 0600) when missing and `create`, else None.

    Two processes making it at once agree: the key is written to a private file first and
    linked into place, which fails for the second, which then reads the first's.
    """
    path = config_folder() / KEY_FILE
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        draft = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise ConfigError(f"{path}: not an hk_tune signing key (64 hex digits); delete it and "
                          "resume with --trust to make a new one") from None


def signature(key: bytes, name: str, content: bytes) -> str:
    """The HMAC-SHA256 of a file's name and content: a signed file renamed does not verify."""
    return hmac.new(key, _CONTEXT + name.encode() + b"\0" + content, hashlib.sha256).hexdigest()


def is_unpickled(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in UNPICKLED)


def sign_file(path: str) -> None:
    """Signs one file (local or in an object store) as it is now."""
    if not storage.is_uri(path):
        sign_local(Path(path), Path(path).read_bytes())
        return
    name = path.partition("?")[0].rsplit("/", 1)[-1]
    text = signature(signing_key(), name, storage.read_bytes(path))
    sig = _sig_path(path)
    if not storage.exists(sig) or storage.read_text(sig).split() != [text]:
        storage.write_text(sig, text + "\n")


def sign_local(path: Path, content: bytes) -> None:
    """Signs `content` for the local file `path`, keeping the signature of what `path` holds
    now: call it before `content` replaces the file, and the file verifies before and after."""
    text = signature(signing_key(), path.name, content)
    sig = Path(str(path) + SUFFIX)
    lines = sig.read_text().split() if sig.exists() else []
    if lines[:1] == [text]:
        return
    # Whole or not at all: a copy of the folder may read it at any moment.
    draft = sig.with_name(f".{sig.name}.{secrets.token_hex(4)}.tmp")
    draft.write_text("\n".join([text, *lines[:1]]) + "\n")
    os.replace(draft, sig)


def sign_tree(folder: str) -> None:
    """Signs every file under the local `folder` that a restore unpickles, where its signature
    is missing or stale (Tune rewrites its state files in place)."""
    for path in _unpickled_files(Path(folder)):
        sign_local(path, path.read_bytes())


def verify_folder(folder: str) -> None:
    """Checks that every file under the search folder `folder` that a restore unpickles carries
    this user's signature of its present content.

    Raises:
        UntrustedFolder: naming the first file that does not, and how to resume anyway.
    """
    key = signing_key(create=False)
    for name, path in _unpickled_in(folder):
        sig = _sig_path(path)
        good = key is not None and storage.exists(sig) and _signed(
            storage.read_text(sig).split(), signature(key, name, storage.read_bytes(path)))
        if not good:
            why = ("its signature is not your hk_tune's, or it changed since" if
                   key is not None and storage.exists(sig) else "your hk_tune did not sign it")
            raise UntrustedFolder(
                f"{path}: {why} (key: {config_folder() / KEY_FILE}). Resuming unpickles this "
                "file, which runs any code it names: resume a folder from elsewhere only if you "
                "trust its author, with --trust")


def adopt_folder(folder: str) -> None:
    """Signs every unpickled file of `folder` as it is now: what `--trust` does."""
    for _, path in _unpickled_in(folder):
        sign_file(path)


def _signed(signatures: list[str], expected: str) -> bool:
    """`expected` among the file's signatures (the newest and the one before it)."""
    return any(hmac.compare_digest(line, expected) for line in signatures[:2])


def _unpickled_in(folder: str) -> Iterator[tuple[str, str]]:
    """(name, path) of every file under `folder`, local or in an object store, that a restore
    unpickles; checkpoint folders (no pickle is loaded from them) are not walked."""
    if not storage.is_uri(folder):
        for path in _unpickled_files(Path(folder)):
            yield path.name, str(path)
        return
    for relative in storage.list_files(folder, skip_folders="checkpoint_*"):
        name = relative.rsplit("/", 1)[-1]
        if is_unpickled(name):
            yield name, storage.join(folder, *relative.split("/"))


def _unpickled_files(folder: Path) -> Iterator[Path]:
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not fnmatch.fnmatch(name, "checkpoint_*")]
        for name in sorted(files):
            if is_unpickled(name):
                yield Path(root, name)


def _sig_path(path: str) -> str:
    base, sep, query = path.partition("?")
    return base + SUFFIX + sep + query
