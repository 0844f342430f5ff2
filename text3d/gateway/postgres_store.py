"""The shared store: a PostgreSQL server (psycopg 3) that several gateway processes use at once.

Keys, quotas, jobs, results and the workers' replay nonces live in the server, so every
gateway process sees the same limits: a caller's admission takes a transaction-level
advisory lock on the caller (``pg_advisory_xact_lock``) before it counts and inserts, so
two processes admitting for one key at the same instant are serialised and a per-minute
limit holds across them; claims take ``FOR UPDATE SKIP LOCKED`` so two workers never get
one job. Creating the tables is serialised the same way, so processes can start together.

The URL is a libpq connection string (``postgresql://user@host:5432/db``); keep passwords out
of it (``PGPASSWORD`` or ``~/.pgpass``). A connection that breaks is dropped and reopened on
the next call; while the server is unreachable every call is ``StoreUnavailable`` (HTTP 503).
A full disk on the server (``DiskFull``) is ``StoreFull``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from text3d.gateway.sql_store import SqlJobStore
from text3d.gateway.store import JobPolicy
from text3d.protocol.errors import StoreFull, StoreUnavailable

__all__ = ["PostgresJobStore"]

_SCHEMA_LOCK = 0x74336467  # any constant: one advisory lock id for creating the tables


class PostgresJobStore(SqlJobStore):
    blob_type = "BYTEA"
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, policy: JobPolicy = JobPolicy(), *, connect_timeout_s: float = 5.0,
                 **options: Any) -> None:
        super().__init__(policy, **options)
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            self._create_schema(cur)

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s)),
                               application_name="text3d-gateway")

    @contextmanager
    def _transaction(self, conn: Any, write: bool) -> Iterator[Any]:
        with conn.transaction():
            with conn.cursor() as cur:
                yield cur

    def _placeholders(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _lock_owner(self, cur: Any, owner: str) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (owner,))

    def _translate(self, exc: Exception) -> Exception | None:
        import psycopg

        if not isinstance(exc, psycopg.Error):
            return None
        if isinstance(exc, psycopg.errors.DiskFull):
            return StoreFull("the PostgreSQL server's disk is full: new jobs are refused until space is freed; "
                             "stored results are kept")
        return StoreUnavailable(f"the PostgreSQL store failed: {type(exc).__name__}: {str(exc).strip()[:200]}")
