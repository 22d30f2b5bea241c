"""Where runs and searches keep their files: `storage_path` is a local folder, a folder every
node mounts (NFS), or an object-store URI (`s3://bucket/prefix`, `gs://bucket/prefix`, MinIO
through S3 with `AWS_ENDPOINT_URL`).

Ray Train and Tune open URIs themselves through `pyarrow.fs`; hk_tune's own small files
(search state, space copy, summary, best configuration) go through the same `pyarrow.fs`
filesystem here, so one storage_path names one place for both. Local paths stay plain
`pathlib` paths, made absolute because Ray workers run in their own working directories.

    folder = join(resolve("s3://bucket/runs"), "quickstart")   # s3://bucket/runs/quickstart
    write_text(join(folder, "summary.json"), text)

A URI may carry pyarrow's query options (`s3://bucket/runs?endpoint_override=host:9000`);
`join` keeps them at the end, where pyarrow reads them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from hk_tune.errors import ConfigError

# The file that makes a folder a search's (`hk-tune resume` reads it); a run never trains there.
SEARCH_STATE = "search.json"
# The object stores pyarrow's filesystems open, which Ray Train and Tune use.
SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")


def is_uri(path: str | Path) -> bool:
    """True for `scheme://...` (s3, gs, hdfs, file); False for a local or mounted path."""
    return "://" in str(path)


def resolve(path: str | Path) -> str:
    """A URI as given (without a trailing slash); a local path absolute, `~` expanded."""
    if is_uri(path):
        base, sep, query = str(path).partition("?")
        return base.rstrip("/") + sep + query
    return str(Path(path).expanduser().resolve())


def join(base: str | Path, *parts: str) -> str:
    """`base/part/...`, with a URI's query options kept at the end."""
    if not is_uri(base):
        return str(Path(base, *parts))
    path, sep, query = str(base).partition("?")
    return "/".join([path.rstrip("/"), *parts]) + sep + query


def check_creatable(folder: str, where: str) -> None:
    """Refuses a local `folder` that cannot be made: a part of it is a file, the nearest
    existing folder above it is not writable, or a part is longer than the filesystem takes;
    and a URI of a scheme no pyarrow filesystem opens (reaching the store is left to it).

    Raises:
        ConfigError: naming `where` (the file and key it came from) and the path.
    """
    if is_uri(folder):
        scheme = str(folder).partition("://")[0].lower()
        if scheme not in SCHEMES:
            raise ConfigError(f"{where}: {folder}: pyarrow opens no {scheme}:// store; allowed: "
                              f"a local or mounted folder, or {', '.join(SCHEMES)} URIs")
        return
    path = Path(folder)
    longest = max((len(part.encode()) for part in path.parts), default=0)
    if longest > 255:
        raise ConfigError(f"{where}: {str(path)[:80]}...: a folder name is over 255 bytes; "
                          "allowed: shorter names")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{where}: {folder}: {existing} is a file, so no folder can be made "
                          "under it; allowed: a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: {folder}: {existing} is not writable; allowed: a folder "
                          "this user may write")


def exists(path: str | Path) -> bool:
    if not is_uri(path):
        return Path(path).exists()
    import pyarrow.fs

    filesystem, inner = _filesystem(path)
    return filesystem.get_file_info(inner).type != pyarrow.fs.FileType.NotFound


def read_text(path: str | Path) -> str:
    return read_bytes(path).decode()


def read_bytes(path: str | Path) -> bytes:
    if not is_uri(path):
        return Path(path).read_bytes()
    filesystem, inner = _filesystem(path)
    with filesystem.open_input_stream(inner) as stream:
        return stream.read()


def list_files(folder: str, skip_folders: str) -> list[str]:
    """The files under the object-store `folder`, as paths relative to it, leaving out those
    inside a folder whose name matches the glob `skip_folders`."""
    import fnmatch

    import pyarrow.fs

    filesystem, inner = _filesystem(folder)
    inner = inner.rstrip("/")
    selector = pyarrow.fs.FileSelector(inner, recursive=True, allow_not_found=True)
    found = []
    for info in filesystem.get_file_info(selector):
        relative = info.path[len(inner) + 1:]
        parts = relative.split("/")
        if info.type == pyarrow.fs.FileType.File and not any(
                fnmatch.fnmatch(part, skip_folders) for part in parts[:-1]):
            found.append(relative)
    return sorted(found)


def write_text(path: str | Path, text: str) -> None:
    """Writes `text` to `path`, creating a local path's folders (object stores have none)."""
    if not is_uri(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
        return
    filesystem, inner = _filesystem(path)
    with filesystem.open_output_stream(inner) as stream:
        stream.write(text.encode())


def remove(path: str | Path) -> None:
    """Deletes one file, local or in an object store; a missing one is no error."""
    if not is_uri(path):
        Path(path).unlink(missing_ok=True)
        return
    filesystem, inner = _filesystem(path)
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_file(inner)


def copy_file(source: str | Path, destination: Path) -> None:
    """Copies one file, local or in an object store, to the local path `destination`."""
    if not is_uri(source):
        shutil.copyfile(source, destination)
        return
    filesystem, inner = _filesystem(source)
    with filesystem.open_input_stream(inner) as stream:
        destination.write_bytes(stream.read())


def _filesystem(uri: str | Path):
    """The pyarrow filesystem of `uri` and the path inside it. S3 reads its endpoint, keys and
    region from the standard AWS environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(str(uri))
    except ValueError as error:  # pyarrow's ArrowInvalid: a scheme or URI it cannot open
        raise ConfigError(f"{uri}: {' '.join(str(error).split())}; allowed: a local or mounted "
                          f"folder, or {', '.join(SCHEMES)} URIs") from None
