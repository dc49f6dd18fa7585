"""A real PostgreSQL server for tests, on 127.0.0.1 and a free port, in a throwaway data folder:
started once per test session, a fresh database per test, stopped and removed at the end.

The server comes from Debian's `postgresql` package; `make test` installs it (Makefile:
system). PostgreSQL refuses to run as root: as root the server runs as the `postgres` user the
package creates.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def binaries() -> Path | None:
    """The folder of `initdb` and `pg_ctl`, if this machine has a PostgreSQL server."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One running server; `database()` makes a fresh database and returns its URL."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://cswf@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        import psycopg2

        name = f"t{next(self._names)}"
        con = psycopg2.connect(self.url())
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name}")
        finally:
            con.close()
        return self.url(name)


@contextmanager
def running(bin_dir: Path) -> Iterator[Server]:
    folder = Path(tempfile.mkdtemp(prefix="cswf-pg-"))
    data, port = folder / "data", _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server will not run as root
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, text=True)

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "cswf", "--auth=trust", "-E", "UTF8",
        "--no-sync")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"),
        "-w", "-t", "60", "start")
    try:
        yield Server(port)
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
