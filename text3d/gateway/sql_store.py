"""The body of both stores: one schema and one set of statements for SQLite and PostgreSQL.

A subclass supplies the connection and the dialect (``_transaction``, ``_lock_owner``,
``_skip_locked``, ``_translate``, ``free_bytes``); everything else -- admission under the
quotas, claims and leases, results and pruning, the replay nonces -- is written once here,
in the SQL both speak (``?`` placeholders become ``%s`` for psycopg; ``DOUBLE PRECISION``
and ``BIGINT`` mean REAL and INTEGER to SQLite). Tables are prefixed ``gateway_`` so the
gateway can share a PostgreSQL database with other things.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from text3d.gateway.keys import KeyRecord, check_key_name, hash_secret, looks_like_key, new_key_id, new_secret
from text3d.gateway.quotas import DAY_S, MINUTE_S, Admission, Limits, Usage, decide
from text3d.gateway.store import Claim, JobPolicy, JobRecord, JobStatus, NewJob, SweepReport
from text3d.protocol.errors import StoreFull, StoreUnavailable

__all__ = ["SqlJobStore", "SCHEMA"]

log = logging.getLogger("text3d.gateway")

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS gateway_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
    per_minute INTEGER NOT NULL, per_day INTEGER NOT NULL, concurrency INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION);
CREATE UNIQUE INDEX IF NOT EXISTS gateway_keys_active_name ON gateway_keys (name) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS gateway_jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, prompt TEXT NOT NULL, seed BIGINT, format TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT, created_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION, attempts INTEGER NOT NULL DEFAULT 0, worker TEXT, lease_token TEXT,
    lease_until DOUBLE PRECISION, score DOUBLE PRECISION, evidence TEXT, charged INTEGER NOT NULL DEFAULT 1,
    result_bytes BIGINT NOT NULL DEFAULT 0, parts TEXT NOT NULL DEFAULT '', pruned_at DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS gateway_jobs_owner ON gateway_jobs (owner, created_at);
CREATE INDEX IF NOT EXISTS gateway_jobs_status ON gateway_jobs (status, created_at);
CREATE TABLE IF NOT EXISTS gateway_blobs (
    job_id TEXT NOT NULL, name TEXT NOT NULL, data {blob} NOT NULL, PRIMARY KEY (job_id, name));
CREATE TABLE IF NOT EXISTS gateway_nonces (
    hotkey TEXT NOT NULL, nonce BIGINT NOT NULL, expires DOUBLE PRECISION NOT NULL, PRIMARY KEY (hotkey, nonce));
"""

_JOB_COLUMNS = ("id, owner, prompt, seed, format, status, created_at, reason, started_at, finished_at, attempts, "
                "worker, score, evidence, result_bytes, pruned_at, parts")


class SqlJobStore:
    """``text3d.gateway.store.JobStore`` over a DB-API connection per thread."""

    blob_type = "BLOB"
    _skip_locked = ""  # PostgreSQL: " FOR UPDATE SKIP LOCKED"

    def __init__(self, policy: JobPolicy, *, clock: Callable[[], float] = time.time,
                 nonce_retention_s: float = 60.0) -> None:
        self.policy = policy
        self.retention = nonce_retention_s
        self._clock = clock
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    # -- dialect hooks ---------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    @contextmanager
    def _transaction(self, conn: Any, write: bool) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def _lock_owner(self, cur: "_Cursor", owner: str) -> None:
        """Serialise admissions of one caller across processes (SQLite's BEGIN IMMEDIATE already does)."""

    def _translate(self, exc: Exception) -> Exception | None:
        """Our error for a driver's exception, or None when it is not the driver's."""
        raise NotImplementedError

    def _placeholders(self, sql: str) -> str:
        return sql

    def free_bytes(self) -> int | None:
        return None

    # -- plumbing --------------------------------------------------------------------

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            try:
                conn.close()
            except Exception:
                pass

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator["_Cursor"]:
        try:
            conn = self._conn()
            with self._transaction(conn, write) as raw:
                yield _Cursor(raw, self._placeholders)
        except (StoreFull, StoreUnavailable):
            raise
        except Exception as exc:
            ours = self._translate(exc)
            if ours is None:
                raise
            if isinstance(ours, StoreUnavailable):
                self._drop_connection()  # a broken connection is not reused; the next call opens a new one
            raise ours from None

    def _create_schema(self, cur: "_Cursor") -> None:
        for statement in SCHEMA.format(blob=self.blob_type).split(";"):
            if statement.strip():
                cur.execute(statement)
        cur.execute("INSERT INTO gateway_meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                    (SCHEMA_VERSION,))
        found = cur.execute("SELECT value FROM gateway_meta WHERE key = 'schema_version'").fetchone()[0]
        if found != SCHEMA_VERSION:
            raise StoreUnavailable(f"the store holds schema version {found}; this gateway reads {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except Exception:
                pass
        self._local = threading.local()

    # -- keys ------------------------------------------------------------------------

    def create_key(self, name: str, limits: Limits) -> tuple[KeyRecord, str]:
        check_key_name(name)
        secret = new_secret()
        record = KeyRecord(new_key_id(), name, limits, self._clock())
        with self._tx() as cur:
            taken = cur.execute("SELECT id FROM gateway_keys WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
            if taken is not None:
                raise ValueError(f"an active key is already named {name!r} (revoke it first, or pick another name)")
            cur.execute("INSERT INTO gateway_keys (id, name, key_hash, per_minute, per_day, concurrency, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (record.id, name, hash_secret(secret), limits.per_minute, limits.per_day, limits.concurrency,
                         record.created_at))
        return record, secret

    def list_keys(self) -> list[KeyRecord]:
        with self._tx(write=False) as cur:
            rows = cur.execute("SELECT id, name, per_minute, per_day, concurrency, created_at, revoked_at "
                               "FROM gateway_keys ORDER BY created_at, id").fetchall()
        return [_key(row) for row in rows]

    def revoke_key(self, id_or_name: str) -> KeyRecord | None:
        now = self._clock()
        with self._tx() as cur:
            row = cur.execute("SELECT id, name, per_minute, per_day, concurrency, created_at, revoked_at "
                              "FROM gateway_keys WHERE (id = ? OR name = ?) AND revoked_at IS NULL",
                              (id_or_name, id_or_name)).fetchone()
            if row is None:
                return None
            cur.execute("UPDATE gateway_keys SET revoked_at = ? WHERE id = ?", (now, row[0]))
        return KeyRecord(row[0], row[1], Limits(row[2], row[3], row[4]), row[5], now)

    def key_by_secret(self, secret: str) -> KeyRecord | None:
        if not looks_like_key(secret):
            return None
        with self._tx(write=False) as cur:
            row = cur.execute("SELECT id, name, per_minute, per_day, concurrency, created_at, revoked_at "
                              "FROM gateway_keys WHERE key_hash = ? AND revoked_at IS NULL",
                              (hash_secret(secret),)).fetchone()
        return None if row is None else _key(row)

    # -- admission ---------------------------------------------------------------------

    def admit(self, owner: str, limits: Limits, job: NewJob, *, max_queued: int,
              min_free_bytes: int = 0) -> tuple[Admission, JobRecord | None]:
        free = self.free_bytes()
        if free is not None and free < min_free_bytes:
            raise StoreFull(f"the gateway's results disk is full ({free // 2**20} MB free, below its reserve of "
                            f"{min_free_bytes // 2**20} MB): new jobs are refused until space is freed; stored "
                            "results are kept")
        with self._tx() as cur:
            self._lock_owner(cur, owner)
            now = self._clock()  # after the lock: a job admitted while we waited is older than now
            in_flight = cur.execute("SELECT COUNT(*) FROM gateway_jobs WHERE owner = ? AND status IN ('queued', "
                                    "'running')", (owner,)).fetchone()[0]
            day, oldest_day, minute, oldest_minute = cur.execute(
                "SELECT COUNT(*), MIN(created_at), SUM(CASE WHEN created_at > ? THEN 1 ELSE 0 END), "
                "MIN(CASE WHEN created_at > ? THEN created_at END) "
                "FROM gateway_jobs WHERE owner = ? AND charged = 1 AND created_at > ?",
                (now - MINUTE_S, now - MINUTE_S, owner, now - DAY_S)).fetchone()
            queued = cur.execute("SELECT COUNT(*) FROM gateway_jobs WHERE status = 'queued'").fetchone()[0]
            usage = Usage(last_minute=int(minute or 0), last_day=int(day), in_flight=int(in_flight),
                          oldest_in_minute=oldest_minute, oldest_in_day=oldest_day)
            admission = decide(limits, usage, now=now, queued_total=int(queued), max_queued=max_queued)
            if not admission.allowed:
                return admission, None
            record = JobRecord(secrets.token_urlsafe(16), owner, job.prompt, job.seed, job.format, "queued", now)
            cur.execute("INSERT INTO gateway_jobs (id, owner, prompt, seed, format, status, created_at) "
                        "VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                        (record.id, owner, job.prompt, job.seed, job.format, now))
        return admission, record

    # -- reading ----------------------------------------------------------------------------

    def job(self, job_id: str) -> JobRecord | None:
        with self._tx(write=False) as cur:
            row = cur.execute(f"SELECT {_JOB_COLUMNS} FROM gateway_jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def queue_position(self, job_id: str) -> int:
        with self._tx(write=False) as cur:
            row = cur.execute("SELECT created_at, status FROM gateway_jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row[1] != "queued":
                return 0
            return int(cur.execute("SELECT COUNT(*) FROM gateway_jobs WHERE status = 'queued' AND "
                                   "(created_at < ? OR (created_at = ? AND id < ?))",
                                   (row[0], row[0], job_id)).fetchone()[0])

    def blob(self, job_id: str, name: str) -> bytes | None:
        with self._tx(write=False) as cur:
            row = cur.execute("SELECT data FROM gateway_blobs WHERE job_id = ? AND name = ?", (job_id, name)).fetchone()
        return None if row is None else bytes(row[0])

    def counts(self) -> dict[str, int]:
        with self._tx(write=False) as cur:
            rows = cur.execute("SELECT status, COUNT(*) FROM gateway_jobs GROUP BY status").fetchall()
            stored = cur.execute("SELECT COALESCE(SUM(result_bytes), 0) FROM gateway_jobs").fetchone()[0]
        counts = {status: 0 for status in ("queued", "running", "done", "failed")}
        counts.update({status: int(n) for status, n in rows})
        counts["result_bytes"] = int(stored)
        return counts

    # -- workers ----------------------------------------------------------------------------

    def claim(self, worker: str) -> Claim | None:
        """The oldest queued job for ``worker``, unless it already holds ``policy.max_jobs_per_worker`` leases."""
        with self._tx(write=False) as cur:  # most claims find nothing: look before taking the write lock
            if cur.execute("SELECT 1 FROM gateway_jobs WHERE status = 'queued' LIMIT 1").fetchone() is None:
                return None
        with self._tx() as cur:
            held = cur.execute("SELECT COUNT(*) FROM gateway_jobs WHERE status = 'running' AND worker = ?",
                               (worker,)).fetchone()[0]
            if int(held) >= self.policy.max_jobs_per_worker:  # one validator cannot hoard the queue
                return None
            row = cur.execute("SELECT id, prompt, seed, format, attempts FROM gateway_jobs WHERE status = 'queued' "
                              "ORDER BY created_at, id LIMIT 1" + self._skip_locked).fetchone()
            if row is None:
                return None
            now = self._clock()
            token = secrets.token_urlsafe(16)
            lease_until = now + self.policy.lease_s
            cur.execute("UPDATE gateway_jobs SET status = 'running', worker = ?, lease_token = ?, lease_until = ?, "
                        "attempts = attempts + 1, started_at = COALESCE(started_at, ?) WHERE id = ?",
                        (worker, token, lease_until, now, row[0]))
        return Claim(row[0], row[1], row[2], row[3], token, lease_until, int(row[4]) + 1)

    def complete(self, job_id: str, lease_token: str, *, worker: str, score: float, evidence: dict[str, Any],
                 parts: dict[str, bytes]) -> bool:
        now = self._clock()
        size = sum(len(data) for data in parts.values())
        with self._tx() as cur:
            updated = cur.execute(
                "UPDATE gateway_jobs SET status = 'done', score = ?, evidence = ?, finished_at = ?, reason = NULL, "
                "lease_token = NULL, lease_until = NULL, result_bytes = ?, parts = ? "
                "WHERE id = ? AND status = 'running' AND lease_token = ? AND worker = ?",
                (float(score), json.dumps(evidence), now, size, ",".join(parts), job_id, lease_token, worker)).rowcount
            if updated != 1:
                return False
            cur.execute("DELETE FROM gateway_blobs WHERE job_id = ?", (job_id,))
            for name, data in parts.items():
                cur.execute("INSERT INTO gateway_blobs (job_id, name, data) VALUES (?, ?, ?)", (job_id, name, data))
        return True

    def fail(self, job_id: str, lease_token: str, *, worker: str, reason: str) -> JobStatus | None:
        now = self._clock()
        with self._tx() as cur:
            row = cur.execute("SELECT attempts FROM gateway_jobs WHERE id = ? AND status = 'running' AND "
                              "lease_token = ? AND worker = ?", (job_id, lease_token, worker)).fetchone()
            if row is None:
                return None
            attempts = int(row[0])
            if attempts >= self.policy.max_attempts:
                cur.execute("UPDATE gateway_jobs SET status = 'failed', reason = ?, charged = 0, finished_at = ?, "
                            "lease_token = NULL, lease_until = NULL WHERE id = ?",
                            (f"{reason} (after {attempts} attempts)", now, job_id))
                return "failed"
            cur.execute("UPDATE gateway_jobs SET status = 'queued', reason = ?, worker = NULL, lease_token = NULL, "
                        "lease_until = NULL WHERE id = ?", (f"attempt {attempts} failed: {reason}", job_id))
            return "queued"

    def sweep(self) -> SweepReport:
        now = self._clock()
        policy = self.policy
        with self._tx() as cur:
            failed = cur.execute(
                "UPDATE gateway_jobs SET status = 'failed', charged = 0, finished_at = ?, lease_token = NULL, "
                "lease_until = NULL, reason = ? WHERE status = 'running' AND lease_until < ? AND attempts >= ?",
                (now, f"no worker finished the job: each of {policy.max_attempts} attempts outlived its "
                      f"{policy.lease_s:g} s lease", now, policy.max_attempts)).rowcount
            requeued = cur.execute(
                "UPDATE gateway_jobs SET status = 'queued', worker = NULL, lease_token = NULL, lease_until = NULL, "
                "reason = ? WHERE status = 'running' AND lease_until < ?",
                (f"handed on: a worker did not finish within its {policy.lease_s:g} s lease", now)).rowcount
            failed += cur.execute(
                "UPDATE gateway_jobs SET status = 'failed', charged = 0, finished_at = ?, reason = ? "
                "WHERE status = 'queued' AND created_at < ?",
                (now, f"no worker finished the job within {policy.job_timeout_s:g} s", now - policy.job_timeout_s)).rowcount
            cur.execute("DELETE FROM gateway_nonces WHERE expires <= ?", (now,))
        if failed or requeued:
            log.info("sweep: %d jobs handed on, %d failed", requeued, failed)
        return SweepReport(requeued=int(requeued), failed=int(failed))

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        with self._tx() as cur:
            return cur.execute("INSERT INTO gateway_nonces (hotkey, nonce, expires) VALUES (?, ?, ?) "
                               "ON CONFLICT (hotkey, nonce) DO NOTHING",
                               (hotkey_ss58, int(nonce_ns), self._clock() + self.retention)).rowcount == 1

    # -- pruning -------------------------------------------------------------------------

    def prune(self, *, max_bytes: int, max_age_s: float) -> int:
        """Drop results (blobs) past ``max_age_s`` or beyond ``max_bytes`` (oldest first); forget job
        rows finished more than ``max(2 * max_age_s, 1 day)`` ago. Returns the results dropped."""
        now = self._clock()
        with self._tx() as cur:
            rows = cur.execute("SELECT id, result_bytes, finished_at FROM gateway_jobs WHERE result_bytes > 0 "
                               "ORDER BY finished_at DESC, id").fetchall()
            kept, drop = 0, []
            for job_id, size, finished_at in rows:
                if (finished_at or now) < now - max_age_s or kept + int(size) > max_bytes:
                    drop.append(job_id)
                else:
                    kept += int(size)
            for job_id in drop:
                cur.execute("DELETE FROM gateway_blobs WHERE job_id = ?", (job_id,))
                cur.execute("UPDATE gateway_jobs SET result_bytes = 0, parts = '', pruned_at = ? WHERE id = ?",
                            (now, job_id))
            horizon = now - max(2 * max_age_s, DAY_S)
            old = [r[0] for r in cur.execute("SELECT id FROM gateway_jobs WHERE finished_at < ?", (horizon,)).fetchall()]
            for job_id in old:
                cur.execute("DELETE FROM gateway_blobs WHERE job_id = ?", (job_id,))
                cur.execute("DELETE FROM gateway_jobs WHERE id = ?", (job_id,))
        if drop:
            log.info("pruned %d stored results (cap %d MB, %g h)", len(drop), max_bytes // 2**20, max_age_s / 3600)
            self._after_prune()
        return len(drop)

    def _after_prune(self) -> None:
        """Give freed space back to the file system where the dialect can (SQLite: incremental vacuum)."""


class _Cursor:
    """A DB-API cursor whose ``execute`` takes ``?`` placeholders in every dialect."""

    def __init__(self, raw: Any, translate: Callable[[str], str]) -> None:
        self._raw = raw
        self._translate = translate

    def execute(self, sql: str, params: tuple = ()) -> Any:
        self._raw.execute(self._translate(sql), params)
        return self._raw


def _key(row: tuple) -> KeyRecord:
    return KeyRecord(row[0], row[1], Limits(int(row[2]), int(row[3]), int(row[4])), float(row[5]),
                     None if row[6] is None else float(row[6]))


def _job(row: tuple) -> JobRecord:
    (job_id, owner, prompt, seed, fmt, status, created_at, reason, started_at, finished_at, attempts, worker, score,
     evidence, result_bytes, pruned_at, parts) = row
    return JobRecord(
        id=job_id, owner=owner, prompt=prompt, seed=None if seed is None else int(seed), format=fmt, status=status,
        created_at=float(created_at), reason=reason, started_at=started_at, finished_at=finished_at,
        attempts=int(attempts), worker=worker, score=None if score is None else float(score),
        evidence=json.loads(evidence) if evidence else None, result_bytes=int(result_bytes), pruned_at=pruned_at,
        parts=tuple(p for p in (parts or "").split(",") if p),
    )
