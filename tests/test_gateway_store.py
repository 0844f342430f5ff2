"""The gateway's store, the same rules on SQLite and on a real PostgreSQL server.

Rules pinned here (each test runs on both stores; time is a fake clock):
- a key's secret is shown once and never stored: only its SHA-256 is in the database;
  revoked keys stop working at once; names are unique among active keys;
- the quotas: per-minute, per-day (rolling 24 h) and concurrency, each with a Retry-After that
  says when the oldest counted job leaves its window; a failed job is never charged;
- the limits hold when two store instances (two gateway processes) admit for one key at once;
- a claimed job whose lease passes is handed on, and fails with a reason once its attempts
  are used up; a job nobody claims fails after ``job_timeout_s``; only the lease holder can
  finish or give up a job;
- results survive reopening the store (a gateway restart); pruning keeps the newest results
  within the size cap and drops those past the age cap, keeping the job's record;
- a worker's nonce accepted by one store instance is a replay for every other.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest

from tests.postgres_server import PostgresServer
from text3d.gateway.quotas import Limits
from text3d.gateway.store import JobPolicy, NewJob, open_store

pytestmark = pytest.mark.integration

START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def postgres():
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request, tmp_path):
    """``make_store(policy)`` -> a new store instance on the same database (call twice: two gateways)."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres")
        import psycopg

        with psycopg.connect(server.url, autocommit=True) as conn:  # a clean database for each test
            conn.execute("DROP TABLE IF EXISTS gateway_meta, gateway_keys, gateway_jobs, gateway_blobs, gateway_nonces")
        location = server.url
    else:
        location = str(tmp_path / "gateway.sqlite3")
    clock = Clock()
    stores = []

    def make(policy: JobPolicy = JobPolicy()):
        store = open_store(location, policy, clock=clock)
        stores.append(store)
        return store

    make.clock = clock
    make.kind = request.param
    make.location = location
    yield make
    for store in stores:
        store.close()


def test_a_key_is_stored_as_a_hash_only_and_revocation_is_immediate(make_store, tmp_path):
    store = make_store()
    record, secret = store.create_key("alice", Limits(5, 50, 2))
    assert secret.startswith("t3d_") and len(secret) == 47
    assert store.key_by_secret(secret) == record
    assert store.key_by_secret(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    if make_store.kind == "sqlite":
        dump = "\n".join(sqlite3.connect(make_store.location).iterdump())
    else:
        import psycopg

        with psycopg.connect(make_store.location) as conn:
            dump = repr(conn.execute("SELECT * FROM gateway_keys").fetchall())
    assert secret not in dump and secret[4:] not in dump
    with pytest.raises(ValueError, match="already named"):
        store.create_key("alice", Limits(1, 1, 1))
    other = make_store()  # another gateway process sees the revocation at once
    assert other.revoke_key("alice").revoked_at is not None
    assert store.key_by_secret(secret) is None
    make_store.clock.now += 1
    assert store.create_key("alice", Limits(1, 1, 1))[0].id != record.id  # the name is free again
    assert [k.active for k in store.list_keys()] == [False, True]
    assert store.revoke_key("nobody") is None


def test_per_minute_per_day_and_concurrency_limits_with_retry_after(make_store):
    store, clock = make_store(), make_store.clock
    limits = Limits(per_minute=2, per_day=3, concurrency=10)

    def admit():
        return store.admit("k_a", limits, NewJob("a chair", None), max_queued=100)[0]

    assert admit().allowed and admit().allowed
    clock.now += 20
    refused = admit()
    assert (refused.status, refused.limit) == (429, "per_minute") and refused.retry_after_s == pytest.approx(40)
    clock.now += 41
    assert admit().allowed  # the first two left the minute
    clock.now += 61
    refused = admit()
    assert refused.limit == "per_day" and refused.retry_after_s == pytest.approx(86400 - 122)
    clock.now += 86400 - 121
    assert admit().allowed
    assert store.admit("k_b", limits, NewJob("a chair", None), max_queued=100)[0].allowed  # another key: its own count
    tight = Limits(per_minute=100, per_day=100, concurrency=1)
    assert store.admit("k_c", tight, NewJob("x", None), max_queued=100)[0].allowed
    refused = store.admit("k_c", tight, NewJob("x", None), max_queued=100)[0]
    assert refused.limit == "concurrency" and refused.status == 429


def test_the_gateway_queue_is_bounded_for_everyone(make_store):
    store = make_store()
    limits = Limits(100, 100, 100)
    for owner in ("k_a", "k_b", "k_c"):
        assert store.admit(owner, limits, NewJob("x", None), max_queued=3)[0].allowed
    refused = store.admit("k_d", limits, NewJob("x", None), max_queued=3)[0]
    assert (refused.status, refused.limit) == (503, "queue") and refused.retry_after_s > 0


def test_a_failed_job_is_not_charged(make_store):
    store = make_store(JobPolicy(lease_s=10, max_attempts=1))
    limits = Limits(per_minute=1, per_day=1, concurrency=1)
    _, job = store.admit("k_a", limits, NewJob("a chair", None), max_queued=100)
    claim = store.claim("worker")
    assert store.fail(claim.id, claim.lease_token, worker="worker", reason="no miner answered") == "failed"
    failed = store.job(job.id)
    assert failed.status == "failed" and "no miner answered" in failed.reason
    assert store.admit("k_a", limits, NewJob("again", None), max_queued=100)[0].allowed


def test_two_gateway_processes_cannot_overrun_a_key_together(make_store):
    stores = [make_store(), make_store()]
    limits = Limits(per_minute=10, per_day=1000, concurrency=1000)
    admitted = []
    lock = threading.Lock()

    def post(store):
        for _ in range(15):
            admission, _ = store.admit("k_shared", limits, NewJob("a chair", None), max_queued=10_000)
            with lock:
                admitted.append(admission.allowed)

    threads = [threading.Thread(target=post, args=(stores[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 60 and admitted.count(True) == 10


def test_a_lease_that_passes_hands_the_job_on_then_fails_it(make_store):
    store, clock = make_store(JobPolicy(lease_s=30, max_attempts=2)), make_store.clock
    _, job = store.admit("k_a", Limits(10, 10, 10), NewJob("a chair", 7, "ply"), max_queued=10)
    first = store.claim("worker-a")
    assert (first.id, first.seed, first.format, first.attempt) == (job.id, 7, "ply", 1)
    assert store.claim("worker-b") is None  # nothing else waits
    clock.now += 31
    assert store.sweep().requeued == 1  # the gateway's housekeeping, every few seconds
    second = store.claim("worker-b")
    assert second.id == job.id and second.attempt == 2 and second.lease_token != first.lease_token
    assert "handed on" in (store.job(job.id).reason or "")
    assert not store.complete(job.id, first.lease_token, worker="worker-a", score=0.9, evidence={}, parts={"mesh": b"x"})
    assert store.fail(job.id, first.lease_token, worker="worker-a", reason="late") is None
    clock.now += 31
    assert store.sweep().failed == 1
    failed = store.job(job.id)
    assert failed.status == "failed" and "2 attempts" in failed.reason


def test_one_worker_cannot_hoard_the_queue(make_store):
    store = make_store(JobPolicy(max_jobs_per_worker=2))
    for i in range(4):
        store.admit(f"k_{i}", Limits(10, 10, 10), NewJob("a chair", None), max_queued=10)
    assert store.claim("greedy") and store.claim("greedy")
    assert store.claim("greedy") is None  # it holds its share: the rest wait for other workers
    assert store.claim("honest") is not None


def test_a_job_nobody_takes_fails_after_its_timeout(make_store):
    store, clock = make_store(JobPolicy(job_timeout_s=600)), make_store.clock
    _, job = store.admit("k_a", Limits(10, 10, 10), NewJob("a chair", None), max_queued=10)
    clock.now += 599
    assert store.sweep().failed == 0
    clock.now += 2
    assert store.sweep().failed == 1
    assert "within 600 s" in store.job(job.id).reason


def test_results_survive_a_restart_and_pruning_keeps_the_newest_within_the_caps(make_store):
    store, clock = make_store(), make_store.clock
    ids = []
    for i in range(4):
        _, job = store.admit("k_a", Limits(10, 10, 10), NewJob(f"chair {i}", None), max_queued=10)
        claim = store.claim("worker")
        assert store.complete(claim.id, claim.lease_token, worker="worker", score=0.5, evidence={"n": i},
                              parts={"mesh": bytes([i]) * 1000, "view_0.png": b"p" * 24})
        ids.append(job.id)
        clock.now += 10
    store.close()
    reopened = make_store()  # a restarted gateway
    assert reopened.blob(ids[2], "mesh") == bytes([2]) * 1000 and reopened.job(ids[2]).evidence == {"n": 2}
    assert reopened.counts()["result_bytes"] == 4 * 1024
    assert reopened.prune(max_bytes=2 * 1024, max_age_s=3600) == 2
    assert [reopened.blob(i, "mesh") is not None for i in ids] == [False, False, True, True]
    pruned = reopened.job(ids[0])
    assert pruned.status == "done" and pruned.pruned_at is not None and pruned.parts == ()
    clock.now += 3600 - 15
    assert reopened.prune(max_bytes=10**9, max_age_s=3600) == 1  # ids[2] finished 25 s before ids[3]... 3605 s ago
    assert reopened.blob(ids[3], "mesh") is not None and reopened.counts()["result_bytes"] == 1024


def test_a_worker_nonce_is_a_replay_for_every_gateway_process(make_store):
    first, second = make_store(), make_store()
    assert first.check_and_store("5Hotkey", 123)
    assert not second.check_and_store("5Hotkey", 123)
    assert second.check_and_store("5Hotkey", 124) and second.check_and_store("5Other", 123)
    make_store.clock.now += 120
    first.sweep()
    assert first.check_and_store("5Hotkey", 123)  # forgotten after the retention: freshness refuses it anyway
