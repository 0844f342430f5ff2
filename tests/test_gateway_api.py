"""The gateway's API against hostile callers and forged workers: the real app under uvicorn on
127.0.0.1, a real SQLite store, real wallets with btauth/1 signatures, the SQLite devnet for the
validator permits.

Rules pinned here:
- no key, a malformed header, an unknown key or a revoked key: 401 before the body is read;
  without a key only when anonymous access is switched on, then limited per address;
- a 100 KB prompt is refused with 413 from its headers (the body is never read), a chunked one
  at the cap; control characters and invisible characters 422; markup is accepted as text;
- a flood of 2,000 posts from one key: its per-minute limit holds (429 with Retry-After) and
  another key is served as if nothing happened;
- a job is visible to the key that asked for it only (another key gets 404);
- forged workers: an unregistered hotkey and a hotkey without a validator permit get 403
  before their body is read; a tampered body or a stale nonce 401; a replayed request 401;
  a worker that does not hold the job's lease cannot finish it (409); a result that lies about
  its parts or is over the cap is refused (400/413);
- a job that fails is not charged to the key's quota;
- /health, /openapi.json and /metrics (text3d_gateway_*) answer.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import bittensor as bt
import httpx
import pytest

from tests.loopback import ServedApp, make_wallet, tiny_mesh
from text3d.demo import LocalSubnet
from text3d.gateway.app import create_app
from text3d.gateway.quotas import Limits
from text3d.gateway.store import JobPolicy, open_store
from text3d.gateway.workers import WorkerGate
from text3d.protocol.mesh_codec import MeshFormat, encode_mesh
from text3d.protocol.organic import (
    CLAIM_ROUTE, FAIL_ROUTE, RESULT_ROUTE, OrganicEvidence, ResultLimits, build_manifest, frame_result,
)
from text3d.settings import GatewaySettings

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


# -- fixtures ------------------------------------------------------------------------------


class Gateway:
    """One app under uvicorn on a store, with the devnet's wallets to sign as workers."""

    def __init__(self, tmp, subnet: LocalSubnet, **overrides) -> None:
        self.settings = GatewaySettings(**{"key_per_minute": 10, "key_per_day": 1000, "key_concurrency": 1000,
                                           "min_free_mb": 0, **overrides})
        self.policy = JobPolicy(lease_s=overrides.get("lease_s", 300.0), max_attempts=overrides.get("max_attempts", 3))
        self.store = open_store(tmp / "gateway.sqlite3", self.policy)
        self.gate = WorkerGate(subnet.chain, self.store, ttl_s=60.0)
        self.app = create_app(self.settings, self.store, self.gate,
                              result_limits=ResultLimits(max_mesh_bytes=256 * 1024, max_view_bytes=64 * 1024))
        self.served = ServedApp(self.app)
        self.subnet = subnet

    def __enter__(self) -> "Gateway":
        self.served.__enter__()
        self.url = f"http://127.0.0.1:{self.served.port}"
        return self

    def __exit__(self, *exc) -> None:
        self.served.__exit__(*exc)
        self.store.close()

    def key(self, name: str, **limits) -> str:
        base = dict(per_minute=10, per_day=1000, concurrency=1000) | limits
        return self.store.create_key(name, Limits(**base))[1]

    def post(self, key: str | None, body, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return httpx.post(self.url + "/v1/assets", content=content, headers=headers, timeout=10.0, **kwargs)

    def signed(self, wallet, route: str, body: bytes, **kwargs) -> httpx.Response:
        headers = bt.http_auth.sign(wallet, method="POST", path=route, body=body, receiver_ss58=None, **kwargs)
        return httpx.post(self.url + route, content=body, headers=headers, timeout=30.0)

    def claim(self, wallet) -> dict:
        response = self.signed(wallet, CLAIM_ROUTE, b'{"wait_s": 0}')
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def subnet(tmp_path_factory):
    """A devnet: two validators with permits, a miner without one."""
    return LocalSubnet.create(tmp_path_factory.mktemp("devnet"), validators=("validator", "validator2"),
                              miners=("miner1",))


@pytest.fixture
def gateway(tmp_path, subnet):
    with Gateway(tmp_path, subnet) as served:
        yield served


def result_body(job: dict, *, score: float = 0.7, fmt: str = "glb", **manifest_overrides) -> bytes:
    parts = {"mesh": encode_mesh(tiny_mesh(), MeshFormat(fmt))}
    if fmt != "glb":
        parts["preview.glb"] = encode_mesh(tiny_mesh(), MeshFormat.GLB)
    parts["view_0.png"] = PNG
    evidence = OrganicEvidence(score=score, winner_uid=2, miner_seed=7)
    manifest = build_manifest(job_id=job["id"], lease_token=job["lease_token"], score=score, evidence=evidence,
                              parts=parts)
    if manifest_overrides:
        manifest = manifest.model_copy(update=manifest_overrides)
    return frame_result(manifest, parts)


def detail_of(response: httpx.Response) -> str:
    data = response.json()
    assert set(data) == {"detail"}, data
    assert "Traceback" not in response.text
    return data["detail"]


# -- callers -------------------------------------------------------------------------------


def test_missing_malformed_unknown_and_revoked_keys_get_401(gateway):
    key = gateway.key("alice")
    assert gateway.post(key, {"prompt": "a red chair"}).status_code == 202
    cases = {
        "no key": {},
        "not bearer": {"Authorization": f"Basic {key}"},
        "empty bearer": {"Authorization": "Bearer"},
        "unknown key of the right shape": {"Authorization": "Bearer t3d_" + "A" * 43},
        "garbage": {"Authorization": "Bearer " + "x" * 5000},
    }
    for what, headers in cases.items():
        response = httpx.post(gateway.url + "/v1/assets", json={"prompt": "a red chair"}, headers=headers)
        assert response.status_code == 401, what
        assert response.headers["www-authenticate"] == "Bearer"
        assert key not in response.text and len(detail_of(response)) < 120
    assert gateway.store.revoke_key("alice") is not None
    revoked = gateway.post(key, {"prompt": "a red chair"})
    assert revoked.status_code == 401 and "revoked" in detail_of(revoked)
    status = httpx.get(gateway.url + "/v1/assets/whatever123", headers={"Authorization": f"Bearer {key}"})
    assert status.status_code == 401


def test_anonymous_access_is_off_unless_asked_for_and_then_limited_per_address(tmp_path, subnet):
    with Gateway(tmp_path / "off", subnet) as closed:
        assert "key is required" in detail_of(closed.post(None, {"prompt": "a chair"}))
    with Gateway(tmp_path / "on", subnet, anonymous_per_day=3, anonymous_per_minute=2, anonymous_concurrency=5) as open_:
        codes = [open_.post(None, {"prompt": f"a chair {i}"}).status_code for i in range(4)]
        assert codes == [202, 202, 429, 429]
        refused = open_.post(None, {"prompt": "a chair"})
        assert "2 jobs a minute" in detail_of(refused) and int(refused.headers["retry-after"]) >= 1
        assert open_.post(open_.key("bob"), {"prompt": "a chair"}).status_code == 202  # keys have their own limits


def test_a_100_kb_prompt_is_refused_from_its_headers_without_being_read(gateway):
    key = gateway.key("alice")
    body_bytes = 100 * 1024
    head = (f"POST /v1/assets HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {body_bytes}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", gateway.served.port), timeout=10) as sock:
        sock.sendall(head)  # and never the body: the answer must not wait for it
        sock.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 413 " in status_line, answer[:300]
    assert b"connection: close" in answer.lower()
    # the same prompt as a real body, and streamed without a length: 413 at the cap
    prompt = {"prompt": "a chair " * (body_bytes // 8)}
    assert gateway.post(key, prompt).status_code == 413
    streamed = httpx.post(gateway.url + "/v1/assets", content=iter([json.dumps(prompt).encode()]),
                          headers={"Authorization": f"Bearer {key}"})
    assert streamed.status_code == 413
    assert gateway.store.counts()["queued"] == 0


@pytest.mark.parametrize("prompt, status", [
    ("a red\x00chair", 422), ("a red chair\x1b[31m", 422), ("a red \u202echair", 422), ("a red\u200bchair", 422),
    ("", 422), ("   \n\t ", 422), ("x" * 513, 422), (12, 422),
    ("<script>alert(1)</script> a chair", 202), ("a chair &amp; <b>table</b>", 202), ("a red\n  chair", 202),
])
def test_prompts_are_checked_before_anything_is_queued(gateway, prompt, status):
    key = gateway.key("alice")
    response = gateway.post(key, {"prompt": prompt})
    assert response.status_code == status, response.text
    if status == 202:
        job = response.json()
        assert job["prompt"] == " ".join(str(prompt).split())  # normalised, otherwise as sent: markup is text
        assert gateway.store.job(job["id"]).prompt == job["prompt"]
    else:
        assert gateway.store.counts()["queued"] == 0
        assert "\x00" not in response.text and "\u202e" not in response.text


def test_a_bad_body_gets_422_with_what_to_send(gateway):
    key = gateway.key("alice")
    for body in (b"not json", b"[1, 2]", b'{"prompt": "a chair", "format": "obj"}', b'{"prompt": "a chair", "seed": -1}',
                 b'{"prompt": "a chair", "seed": 1.5}', b'{"prompt": "a chair", "extra": 1}', b"[" * 5000):
        response = gateway.post(key, body)
        assert response.status_code == 422, (body[:40], response.text)
        assert len(detail_of(response)) < 200


def test_a_flood_of_2000_posts_from_one_key_stops_at_its_limit_and_other_keys_are_unaffected(gateway):
    flooder, other = gateway.key("flooder", per_minute=10), gateway.key("other", per_minute=10)

    async def flood() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=60.0) as client:
            gate = asyncio.Semaphore(32)

            async def one(i: int) -> httpx.Response:
                async with gate:
                    return await client.post("/v1/assets", json={"prompt": f"chair {i}"},
                                             headers={"Authorization": f"Bearer {flooder}"})

            return list(await asyncio.gather(*(one(i) for i in range(2000))))

    responses = asyncio.run(flood())
    codes = [r.status_code for r in responses]
    assert codes.count(202) == 10 and codes.count(429) == 1990, {c: codes.count(c) for c in set(codes)}
    refused = next(r for r in responses if r.status_code == 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 60 and "10 jobs a minute" in detail_of(refused)
    assert gateway.post(other, {"prompt": "a blue vase"}).status_code == 202
    counts = gateway.store.counts()
    assert counts["queued"] == 11  # the flood queued no more than its limit
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'text3d_gateway_refusals_total{limit="per_minute"} 1990.0' in metrics


def test_a_job_is_visible_to_its_own_key_only(gateway):
    alice, mallory = gateway.key("alice"), gateway.key("mallory")
    job = gateway.post(alice, {"prompt": "a red chair", "seed": 7, "format": "ply"}).json()
    assert job["status"] == "queued" and job["seed"] == 7 and job["format"] == "ply"
    own = httpx.get(job["links"]["self"], headers={"Authorization": f"Bearer {alice}"})
    assert own.status_code == 200 and own.json()["queue_position"] == 0
    for path in ("", "/mesh", "/preview.glb", "/views/0.png"):
        other = httpx.get(job["links"]["self"] + path, headers={"Authorization": f"Bearer {mallory}"})
        assert other.status_code == 404 and "a red chair" not in other.text
    not_ready = httpx.get(job["links"]["self"] + "/mesh", headers={"Authorization": f"Bearer {alice}"})
    assert not_ready.status_code == 409 and "queued" in detail_of(not_ready)


# -- workers -------------------------------------------------------------------------------


def test_a_permitted_worker_claims_uploads_and_the_caller_gets_the_asset(gateway, subnet):
    key = gateway.key("alice")
    asked = gateway.post(key, {"prompt": "a red chair", "format": "ply"}).json()
    job = gateway.claim(subnet.wallet("validator"))
    assert job["id"] == asked["id"] and job["format"] == "ply" and job["attempt"] == 1
    running = httpx.get(asked["links"]["self"], headers={"Authorization": f"Bearer {key}"}).json()
    assert running["status"] == "running"
    stored = gateway.signed(subnet.wallet("validator"), RESULT_ROUTE.format(job_id=job["id"]), result_body(job, fmt="ply"))
    assert stored.status_code == 200, stored.text
    done = httpx.get(asked["links"]["self"], headers={"Authorization": f"Bearer {key}"}).json()
    assert done["status"] == "done" and done["score"] == pytest.approx(0.7)
    assert done["evidence"]["validator"] == subnet.hotkey_of("validator")
    auth = {"Authorization": f"Bearer {key}"}
    mesh = httpx.get(done["links"]["mesh"], headers=auth)
    assert mesh.content.startswith(b"ply") and "attachment" in mesh.headers["content-disposition"]
    assert httpx.get(done["links"]["preview"], headers=auth).content.startswith(b"glTF")
    assert httpx.get(done["links"]["views"][0], headers=auth).content == PNG


def test_forged_workers_are_refused(gateway, subnet, tmp_path):
    gateway.post(gateway.key("alice"), {"prompt": "a red chair"})
    body = b'{"wait_s": 0}'
    stranger = make_wallet(tmp_path / "strangers", "stranger")
    unregistered = gateway.signed(stranger, CLAIM_ROUTE, body)
    assert unregistered.status_code == 403 and "not registered" in detail_of(unregistered)
    no_permit = gateway.signed(subnet.wallet("miner1"), CLAIM_ROUTE, body)
    assert no_permit.status_code == 403 and "validator permit" in detail_of(no_permit)
    validator = subnet.wallet("validator")
    headers = bt.http_auth.sign(validator, method="POST", path=CLAIM_ROUTE, body=body)
    tampered = httpx.post(gateway.url + CLAIM_ROUTE, content=b'{"wait_s": 1}', headers=headers)
    assert tampered.status_code == 401
    stale = gateway.signed(validator, CLAIM_ROUTE, body, nonce_ns=time.time_ns() - 60 * 10**9)
    assert stale.status_code == 401 and "older" in detail_of(stale)
    unsigned = httpx.post(gateway.url + CLAIM_ROUTE, content=body)
    assert unsigned.status_code == 401
    bound = bt.http_auth.sign(validator, method="POST", path=CLAIM_ROUTE, body=body,
                              receiver_ss58=subnet.hotkey_of("miner1"))  # signed for a miner, replayed here
    assert httpx.post(gateway.url + CLAIM_ROUTE, content=body, headers=bound).status_code == 401
    assert gateway.store.counts()["running"] == 0  # none of them got the job
    headers = bt.http_auth.sign(validator, method="POST", path=CLAIM_ROUTE, body=body)
    first = httpx.post(gateway.url + CLAIM_ROUTE, content=body, headers=headers)
    replayed = httpx.post(gateway.url + CLAIM_ROUTE, content=body, headers=headers)
    assert first.status_code == 200
    assert replayed.status_code == 401 and "already" in detail_of(replayed)


def test_only_the_worker_holding_the_lease_can_finish_or_fail_a_job(gateway, subnet):
    gateway.post(gateway.key("alice"), {"prompt": "a red chair"})
    job = gateway.claim(subnet.wallet("validator"))
    route = RESULT_ROUTE.format(job_id=job["id"])
    other = gateway.signed(subnet.wallet("validator2"), route, result_body(job))
    assert other.status_code == 409
    guessed = gateway.signed(subnet.wallet("validator"), route, result_body({**job, "lease_token": "x" * 22}))
    assert guessed.status_code == 409
    fail_other = gateway.signed(subnet.wallet("validator2"), FAIL_ROUTE.format(job_id=job["id"]),
                                json.dumps({"lease_token": job["lease_token"], "reason": "nope"}).encode())
    assert fail_other.status_code == 409
    # another validator announcing a 200 MB result is refused from its headers: the body is never read
    headers = bt.http_auth.sign(subnet.wallet("validator2"), method="POST", path=route, body=b"x")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", gateway.served.port), timeout=10) as sock:
        sock.sendall(f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {200 * 2**20}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    assert b" 409 " in answer.split(b"\r\n", 1)[0] and b"connection: close" in answer.lower(), answer[:300]
    assert gateway.store.job(job["id"]).status == "running"


def test_results_that_lie_or_are_too_large_are_refused(gateway, subnet):
    gateway.post(gateway.key("alice"), {"prompt": "a red chair", "format": "draco"})
    validator = subnet.wallet("validator")
    job = gateway.claim(validator)
    route = RESULT_ROUTE.format(job_id=job["id"])
    good = result_body(job, fmt="draco")
    cases = {
        "truncated": (good[:-10], 400),
        "trailing bytes": (good + b"x", 400),
        "not a frame": (b"GIF89a" + good, 400),
        "wrong format": (result_body(job, fmt="glb"), 400),
        "manifest for another job": (result_body(job, fmt="draco", job_id="Z" * 22), 400),
        "manifest length past the body": (good[:4] + (200_000).to_bytes(4, "big") + good[8:], 400),
        "mesh over the cap": (frame_result(build_manifest(
            job_id=job["id"], lease_token=job["lease_token"], score=0.5,
            evidence=OrganicEvidence(score=0.5, winner_uid=1, miner_seed=1),
            parts={"mesh": b"DRACO" + b"\0" * (300 * 1024), "preview.glb": b"glTF" + b"\0" * 8}),
            {"mesh": b"DRACO" + b"\0" * (300 * 1024), "preview.glb": b"glTF" + b"\0" * 8}), 413),
    }
    for what, (body, status) in cases.items():
        response = gateway.signed(validator, route, body)
        assert response.status_code == status, (what, response.text)
    assert gateway.store.job(job["id"]).status == "running"
    assert gateway.signed(validator, route, good).status_code == 200


def test_a_failed_job_is_not_charged_to_the_key(tmp_path, subnet):
    with Gateway(tmp_path, subnet, max_attempts=1) as gateway:
        key = gateway.key("alice", per_day=2)
        validator = subnet.wallet("validator")
        first = gateway.post(key, {"prompt": "a red chair"}).json()
        job = gateway.claim(validator)
        given_up = gateway.signed(validator, FAIL_ROUTE.format(job_id=job["id"]),
                                  json.dumps({"lease_token": job["lease_token"], "reason": "no miner answered"}).encode())
        assert given_up.json() == {"status": "failed"}
        failed = httpx.get(first["links"]["self"], headers={"Authorization": f"Bearer {key}"}).json()
        assert failed["status"] == "failed" and "no miner answered" in failed["reason"]
        assert [gateway.post(key, {"prompt": f"a chair {i}"}).status_code for i in range(3)] == [202, 202, 429]


def test_health_openapi_and_metrics_answer(gateway):
    health = httpx.get(gateway.url + "/health").json()
    assert health["status"] == "ok" and set(health["jobs"]) >= {"queued", "running", "done", "failed"}
    schema = httpx.get(gateway.url + "/openapi.json").json()
    assert {"/v1/assets", "/v1/assets/{job_id}", "/v1/assets/{job_id}/mesh"} <= set(schema["paths"])
    assert "prompt" in json.dumps(schema["paths"]["/v1/assets"]["post"])
    gateway.post(None, {"prompt": "a chair"})
    metrics = httpx.get(gateway.url + "/metrics")
    assert metrics.status_code == 200
    names = {line.split("{")[0].split(" ")[0] for line in metrics.text.splitlines() if line and line[0] != "#"}
    assert names and all(name.startswith("text3d_gateway_") for name in names), names
    for name in ("text3d_gateway_requests_total", "text3d_gateway_jobs", "text3d_gateway_refusals_total",
                 "text3d_gateway_results_bytes", "text3d_gateway_workers_active", "text3d_gateway_job_seconds_bucket"):
        assert name in names, name
    assert 'text3d_gateway_requests_total{route="/v1/assets",status="401"} 1.0' in metrics.text


def test_the_api_docs_page_is_served_by_the_gateway_itself_and_works_offline(gateway):
    """FastAPI's default /docs loads Swagger UI from a CDN and shows nothing offline: ours serves every file."""
    import re

    from tests.browser import launch, offline_page

    page = httpx.get(gateway.url + "/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert sources and all(s.startswith("/") for s in sources), sources  # nothing from another host
    for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        served = httpx.get(f"{gateway.url}/static/swagger/{name}")
        assert served.status_code == 200 and kind in served.headers["content-type"] and len(served.content) > 1000
    assert httpx.get(gateway.url + "/static/swagger/..%2F..%2Fpackage.json").status_code == 404
    assert httpx.get(gateway.url + "/static/swagger/index.html").status_code == 404  # a fixed list of files
    assert httpx.get(gateway.url + "/redoc").status_code == 404  # its default loads from a CDN too
    with launch() as browser, offline_page(browser, allow=(gateway.url,)) as tab:
        tab.goto(gateway.url + "/docs")
        tab.wait_for_selector(".opblock-summary-path", timeout=60_000)  # Swagger UI rendered the operations
        paths = tab.locator(".opblock-summary-path").all_inner_texts()
        assert {"/v1/assets", "/v1/assets/{job_id}"} <= {p.replace("\u200b", "").strip() for p in paths}, paths
        assert tab.blocked == [] and tab.errors == []
