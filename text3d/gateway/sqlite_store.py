"""The embedded store: one SQLite file (WAL), the default when no PostgreSQL URL is given.

Writes run in ``BEGIN IMMEDIATE``: one writer at a time across every thread and process
using the file, so counting a caller's usage and inserting its job cannot interleave with
another admission, and the quotas hold even with several gateway processes on one machine.
A busy file makes writers queue (``timeout_s``), not fail.

A full disk: ``admit`` refuses new jobs while the file's folder has less free space than the
reserve it is given, and a write that still fails for lack of space (``SQLITE_FULL``) is
``StoreFull``; nothing already stored is touched, so old results stay readable. Pruned
results give their pages back to the file system (``auto_vacuum = INCREMENTAL``).
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from text3d.gateway.sql_store import SqlJobStore
from text3d.gateway.store import JobPolicy
from text3d.protocol.errors import StoreFull, StoreUnavailable

__all__ = ["SqliteJobStore"]

_SQLITE_FULL = 13
_INCREMENTAL = 2  # PRAGMA auto_vacuum: 0 none, 1 full, 2 incremental


class SqliteJobStore(SqlJobStore):
    def __init__(self, path: Path, policy: JobPolicy = JobPolicy(), *, timeout_s: float = 30.0, **options: Any) -> None:
        super().__init__(policy, **options)
        self.path = Path(path).expanduser()
        self.timeout_s = timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the store's folder {self.path.parent}: {exc.strerror or exc}") from None
        with self._tx() as cur:
            self._create_schema(cur)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
        # takes effect on a new file only (before any table); set on every connection, it writes, and on a full
        # disk a new connection (a new thread's) then could not even read the stored results: set it once
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != _INCREMENTAL:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, write: bool) -> Iterator[sqlite3.Cursor]:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        finally:
            cur.close()

    def _translate(self, exc: Exception) -> Exception | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(exc):
            return StoreFull(f"the gateway's results disk is full ({self.path.parent}): new jobs are refused until "
                             "space is freed; stored results are kept")
        return StoreUnavailable(f"the store {self.path.name} failed: {exc}")

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.path.parent).free
        except OSError:
            return None

    def _after_prune(self) -> None:
        try:
            self._conn().execute("PRAGMA incremental_vacuum")
        except sqlite3.Error:
            pass  # space comes back at the next prune; nothing depends on it
