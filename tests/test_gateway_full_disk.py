"""A full results disk: new jobs are refused with a clear reason, stored results stay readable.

Rules pinned here, on a real 4 MB tmpfs holding the gateway's SQLite store (a loop file system
when tmpfs cannot be mounted): with the disk full, ``POST /v1/assets`` answers 507 with a
sentence saying the disk is full -- both when the free space is under the reserve
(``min_free_mb``: refused before any write) and when there is no reserve and SQLite's own write
fails (``SQLITE_FULL``); a worker's upload is refused the same way and its job stays running,
to be uploaded again; every stored result is still served; once space returns, jobs are
taken again and the held result is stored.
"""

import json
import threading

import httpx
import pytest

from tests.test_full_disk import fill, small_disk  # noqa: F401 -- the fixture
from tests.test_gateway_api import Gateway, result_body
from text3d.demo import LocalSubnet
from text3d.gateway.quotas import Limits
from text3d.gateway.sqlite_store import SqliteJobStore
from text3d.gateway.store import NewJob
from text3d.protocol.organic import RESULT_ROUTE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def subnet(tmp_path_factory):
    return LocalSubnet.create(tmp_path_factory.mktemp("devnet"), validators=("validator",), miners=())


@pytest.mark.parametrize("reserve_mb", [1.0, 0.0])
def test_a_full_disk_refuses_new_jobs_and_keeps_old_results(small_disk, subnet, reserve_mb):  # noqa: F811
    with Gateway(small_disk, subnet, min_free_mb=reserve_mb) as gateway:
        key = gateway.key("alice")
        auth = {"Authorization": f"Bearer {key}"}
        validator = subnet.wallet("validator")
        old = gateway.post(key, {"prompt": "a red chair"}).json()
        job = gateway.claim(validator)
        assert gateway.signed(validator, RESULT_ROUTE.format(job_id=job["id"]), result_body(job)).status_code == 200
        pending = gateway.post(key, {"prompt": "a blue vase"}).json()
        held = gateway.claim(validator)
        assert held["id"] == pending["id"]

        ballast = fill(small_disk)
        refused = gateway.post(key, {"prompt": "a green bottle"})
        assert refused.status_code == 507, refused.text
        assert "results disk is full" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) > 0
        upload = gateway.signed(validator, RESULT_ROUTE.format(job_id=held["id"]), result_body(held))
        if upload.status_code != 200:  # the result did not fit: the worker keeps it and tries again
            assert upload.status_code == 507, upload.text
            assert gateway.store.job(held["id"]).status == "running"
        done = httpx.get(old["links"]["self"], headers=auth).json()
        assert done["status"] == "done"
        assert httpx.get(done["links"]["mesh"], headers=auth).content.startswith(b"glTF")
        assert httpx.get(done["links"]["views"][0], headers=auth).status_code == 200

        ballast.unlink()
        if upload.status_code != 200:
            again = gateway.signed(validator, RESULT_ROUTE.format(job_id=held["id"]), result_body(held))
            assert again.status_code == 200, again.text
        assert gateway.store.job(held["id"]).status == "done"
        assert gateway.post(key, {"prompt": json.dumps("a green bottle")}).status_code == 202


def test_a_new_connection_reads_stored_results_on_a_full_disk(small_disk):  # noqa: F811
    """The HTTP server answers each request on a worker thread, and a thread new since the disk
    filled opens its own SQLite connection: opening it must not write (it did: the auto_vacuum
    pragma, on every connection), or stored results answer 507 at random."""
    store = SqliteJobStore(small_disk / "gateway.sqlite3")
    _, job = store.admit("k_a", Limits(10, 10, 10), NewJob("a chair", None), max_queued=10)
    claim = store.claim("worker")
    assert store.complete(claim.id, claim.lease_token, worker="worker", score=0.5, evidence={},
                          parts={"mesh": b"glTF" + bytes(2000)})
    ballast = fill(small_disk)
    read: dict = {}

    def on_a_new_thread() -> None:
        try:
            read["mesh"] = store.blob(job.id, "mesh")
        except Exception as exc:  # noqa: BLE001 -- what the request would have turned into a 507
            read["error"] = exc

    thread = threading.Thread(target=on_a_new_thread)
    thread.start()
    thread.join()
    assert read.get("mesh", b"")[:4] == b"glTF", read.get("error")
    ballast.unlink()
    store.close()
