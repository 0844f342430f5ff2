"""The gateway's one store: keys, jobs, usage, results and the workers' replay nonces.

``JobStore`` is the interface; two implementations share one SQL body
(``text3d.gateway.sql_store``):

- ``SqliteJobStore`` (the embedded default): one file, WAL mode, writes serialised by
  ``BEGIN IMMEDIATE``; one gateway process, or several on one machine.
- ``PostgresJobStore``: a PostgreSQL server (psycopg 3) that several gateway processes on
  any number of machines share; each caller's admission is serialised by a transaction-level
  advisory lock on the caller, claims by ``FOR UPDATE SKIP LOCKED``.

``open_store(location, policy)`` picks one: a ``postgresql://`` (or ``postgres://``) URL,
else a SQLite file path. Everything lives in the store -- the meshes and views too -- so a
gateway process holds no state of its own: it can be restarted, or run as several replicas,
and nothing is lost. Times are wall-clock seconds (``time.time``): several processes compare them.

A job's life::

    queued --claim--> running --complete--> done
      ^                  |  \\--fail / lease passed--> queued again (attempts < max_attempts)
      |                  \\----------------------------> failed (attempts used up), not charged
      \\-- queued longer than job_timeout_s --> failed, not charged

Errors: ``StoreUnavailable`` (cannot reach or use the store: HTTP 503) and ``StoreFull``
(the disk is full: new jobs are refused with HTTP 507, stored results stay readable), both
from ``text3d.protocol.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from text3d.gateway.keys import KeyRecord
from text3d.gateway.quotas import Admission, Limits

__all__ = ["JobStatus", "JobPolicy", "NewJob", "JobRecord", "Claim", "SweepReport", "JobStore", "open_store",
           "is_postgres_url"]

JobStatus = Literal["queued", "running", "done", "failed"]


@dataclass(frozen=True)
class JobPolicy:
    """How long a worker may hold a job, how often it is handed on, how long it may wait in the queue."""

    lease_s: float = 300.0
    max_attempts: int = 3
    job_timeout_s: float = 1800.0
    max_jobs_per_worker: int = 8  # leases one worker may hold at once: a validator cannot hoard the queue


@dataclass(frozen=True)
class NewJob:
    """A checked request: the normalised prompt, the caller's seed (or None) and the format."""

    prompt: str
    seed: int | None
    format: str = "glb"


@dataclass(frozen=True)
class JobRecord:
    """A job as the API shows it (``evidence`` is the worker's ``OrganicEvidence`` as a dict)."""

    id: str
    owner: str
    prompt: str
    seed: int | None
    format: str
    status: JobStatus
    created_at: float
    reason: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    worker: str | None = None
    score: float | None = None
    evidence: dict[str, Any] | None = None
    result_bytes: int = 0
    pruned_at: float | None = None
    parts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_views(self) -> int:
        return sum(1 for name in self.parts if name.startswith("view_"))


@dataclass(frozen=True)
class Claim:
    """A job a worker now holds until ``lease_until`` (wall clock)."""

    id: str
    prompt: str
    seed: int | None
    format: str
    lease_token: str
    lease_until: float
    attempt: int


@dataclass(frozen=True)
class SweepReport:
    requeued: int = 0
    failed: int = 0


class JobStore(Protocol):
    """What the gateway asks of its store. Every method may raise ``StoreUnavailable``."""

    policy: JobPolicy
    retention: float  # seconds a worker's nonce is remembered (read by ``bittensor.http_auth.verify``)

    # keys
    def create_key(self, name: str, limits: Limits) -> tuple[KeyRecord, str]:
        """A new key and its secret (the only time the secret exists outside the caller's hands)."""

    def list_keys(self) -> list[KeyRecord]: ...

    def revoke_key(self, id_or_name: str) -> KeyRecord | None:
        """Revoke the key with this id or name; None when there is no such active key."""

    def key_by_secret(self, secret: str) -> KeyRecord | None:
        """The active key whose hash matches ``secret``; None for unknown or revoked keys."""

    # jobs
    def admit(self, owner: str, limits: Limits, job: NewJob, *, max_queued: int,
              min_free_bytes: int = 0) -> tuple[Admission, JobRecord | None]:
        """Count ``owner``'s usage and insert the job in one transaction, or refuse it.

        Raises ``StoreFull`` when the disk has less than ``min_free_bytes`` free (when the
        store can tell) or a write fails for lack of space.
        """

    def job(self, job_id: str) -> JobRecord | None: ...

    def queue_position(self, job_id: str) -> int:
        """Queued jobs created before this one (0 when it is next, or not queued)."""

    def claim(self, worker: str) -> Claim | None:
        """Hand the oldest queued job to ``worker``; None when none waits or it holds its share of leases."""

    def complete(self, job_id: str, lease_token: str, *, worker: str, score: float, evidence: dict[str, Any],
                 parts: dict[str, bytes]) -> bool:
        """Store the result; False when the lease is not this worker's any more (nothing is written)."""

    def fail(self, job_id: str, lease_token: str, *, worker: str, reason: str) -> JobStatus | None:
        """A worker gives a job up: queued again while attempts remain, else failed (not charged).

        Returns the job's new status, or None when the lease is not this worker's any more.
        """

    def sweep(self) -> SweepReport:
        """Hand on jobs whose lease passed, fail those out of attempts or out of time, forget old nonces."""

    def prune(self, *, max_bytes: int, max_age_s: float) -> int:
        """Drop the oldest results until their bytes fit ``max_bytes``, and those older than ``max_age_s``."""

    def blob(self, job_id: str, name: str) -> bytes | None: ...

    def counts(self) -> dict[str, int]:
        """Jobs by status, and ``result_bytes``: the stored results' size."""

    def free_bytes(self) -> int | None:
        """Free space on the store's disk, when the store can tell (SQLite: yes; PostgreSQL: no)."""

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        """btauth/1 replay check shared by every gateway process: True the first time a pair is seen."""

    def close(self) -> None: ...


def is_postgres_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def open_store(location: str | Path, policy: JobPolicy = JobPolicy(), **options: Any) -> JobStore:
    """The store at ``location``: a PostgreSQL URL or a SQLite file (created with its folder)."""
    if isinstance(location, str) and is_postgres_url(location):
        from text3d.gateway.postgres_store import PostgresJobStore

        return PostgresJobStore(location, policy, **options)
    from text3d.gateway.sqlite_store import SqliteJobStore

    return SqliteJobStore(Path(location), policy, **options)
