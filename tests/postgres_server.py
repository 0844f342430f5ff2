"""A throwaway PostgreSQL server for tests: Debian's ``postgresql-15`` run as the ``postgres`` user.

``with PostgresServer() as pg: pg.url`` runs ``initdb`` into a fresh folder under /tmp (owned by
``postgres``: the server refuses to run as root), starts it with ``pg_ctl`` on a free port on
127.0.0.1 only (trust authentication, no fsync: nothing here must survive), and removes it all
on the way out. ``stop()`` / ``start()`` restart it on the same folder and port.

Needs the ``postgresql`` package (the Makefile's APT_PACKAGES) and root (``runuser``); the
tests that use it fail, saying so, where either is missing -- they are part of the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from text3d.ops.net import free_port

__all__ = ["PostgresServer", "PG_BIN", "postgres_missing"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def postgres_missing() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    if not (PG_BIN / "initdb").is_file():
        return f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing): apt-get install postgresql"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "starting a throwaway PostgreSQL server needs root (runuser -u postgres)"
    return None


class PostgresServer:
    def __init__(self, database: str = "text3d") -> None:
        self.database = database
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="text3d-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _as_postgres(self, *argv: str, timeout_s: float = 120.0) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                              timeout=timeout_s)
        if done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr[-2000:]}\n{tail}")

    def __enter__(self) -> "PostgresServer":
        reason = postgres_missing()
        if reason:
            raise RuntimeError(reason)
        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "-E", "UTF8", "--no-sync", "--no-instructions")
        self.start()
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                          "-t", "60", "start")

    def stop(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def __exit__(self, *exc: object) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
