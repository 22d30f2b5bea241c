"""A throwaway PostgreSQL server from Debian's `postgresql` package, on 127.0.0.1, in a temp
folder: the backend store an MLflow tracking server uses on a cluster (cluster/README.md)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def postgres_bin() -> Path | None:
    """Debian's versioned bin folder (initdb and pg_ctl are not on PATH there), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user the package made."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Postgres:
    """A running server; `uri(database)` is what `mlflow server --backend-store-uri` takes."""

    folder: Path
    port: int
    bin: Path

    def uri(self, database: str) -> str:
        # The driver is named: SQLAlchemy would otherwise pick psycopg 3, which is not installed.
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        subprocess.run(_as_owner([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p",
                                  str(self.port), "-U", "postgres", name]),
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(_as_owner([str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"),
                                  "stop", "-m", "fast"]), capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(bin_folder: Path, port: int) -> Postgres:
    """initdb + pg_ctl start in a fresh temp folder (trust auth, loopback only)."""
    # Not under pytest's tmp_path: its parents are root-only, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="hk_pg_"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    subprocess.run(_as_owner([str(bin_folder / "initdb"), "-D", str(data), "-U", "postgres",
                              "--auth=trust", "--no-sync"]), check=True, capture_output=True)
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off"
    subprocess.run(_as_owner([str(bin_folder / "pg_ctl"), "-D", str(data), "-l",
                              str(folder / "server.log"), "-o", options, "-w", "start"]),
                   check=True, capture_output=True, timeout=60)
    return Postgres(folder, port, bin_folder)
