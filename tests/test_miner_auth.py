"""Who may make a miner work: btauth/1 and the caller policy, over loopback with real wallets.

The real miner app (``MinerService`` + ``create_app``) under a real uvicorn server; real
bittensor 11 wallets sign with ``bt.http_auth.sign``; the real ``MinerClient`` sends the
honest request. Only the generator is cheap (it returns a pre-encoded Draco mesh).

Pinned:

- a signed request from a registered, permitted, staked validator is answered (200, a mesh
  that decodes);
- tampered body, wrong receiver, stale nonce (30 s old), replay (the same headers and body
  twice) and a forged signature (another key signing for the claimed hotkey) get 401 with a
  short JSON reason, no traceback, and no generation;
- unregistered, permit-less and low-stake callers get 403 *before their body is read*: the
  request announces a body under the size cap and never sends it, so a server that read
  the body first would hang; the 403 comes back at once (a permitted caller sending the
  same thing gets no answer: the proof has teeth);
- a 200 MB body is refused (413) from its declared length without being buffered (the
  miner's RSS stays far below 200 MB while the client streams garbage), and a chunked body
  without ``Content-Length`` is refused at the cap (413);
- ``SqliteNonceStore`` holds across two "workers" (two apps, two store instances, one
  file): a request answered by the first is refused as a replay by the second.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import bittensor as bt
import httpx
import psutil
import pytest

from text3d.miner.caller_policy import CallerPolicy
from text3d.miner.queue import GenerationQueue
from text3d.miner.app import MinerService, create_app
from text3d.validator.client import MinerClient, Target
from text3d.miner.nonce_store import SqliteNonceStore
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh
from text3d.protocol.wire import HEADER_FORMAT, MAX_REQUEST_BYTES, ROUTE, TextTo3DRequest, TextTo3DResponse
from tests.loopback import ServedApp, hand_metagraph, make_wallet, tiny_mesh_payload

MIN_STAKE = 10.0
MIB = 1 << 20


# -- helpers -------------------------------------------------------------------------------


class Generator:
    """The cheap part: a pre-encoded mesh per prompt, counting the prompts it was given."""

    def __init__(self) -> None:
        self.payload = tiny_mesh_payload()
        self.prompts = 0

    def __call__(self, prompts: list[str], seeds: list[int]) -> list[tuple[bytes, MeshFormat]]:
        self.prompts += len(prompts)
        return [(self.payload, MeshFormat.DRACO) for _ in prompts]


def build_miner(hotkey: str, metagraph, nonce_store, generator: Generator) -> MinerService:
    queue = GenerationQueue(
        generator, ThreadPoolExecutor(max_workers=1), max_batch_size=4, window_s=0.01, max_queue=32,
        max_in_flight_per_caller=4,
    )
    return MinerService(
        hotkey=hotkey, policy=CallerPolicy(min_validator_stake=MIN_STAKE, require_validator_permit=True),
        queue=queue, nonce_store=nonce_store, max_timeout_s=10.0, deadline_margin_s=0.1, metagraph=metagraph,
    )


def body_of(seed: int = 1) -> bytes:
    return TextTo3DRequest(prompt="a red chair", seed=seed, timeout_s=5.0).to_body()


def signed(wallet, receiver: str, body: bytes, **kwargs) -> dict[str, str]:
    headers = bt.http_auth.sign(wallet, method="POST", path=ROUTE, body=body, receiver_ss58=receiver, **kwargs)
    headers["Content-Type"] = "application/json"
    return headers


def raw_head(port: int, headers: dict[str, str], content_length: int) -> bytes:
    lines = [f"POST {ROUTE} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {content_length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket, timeout_s: float) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body; ``socket.timeout`` if none comes in time."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} bytes")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(status_line.split()[1]), headers, rest[:length]


def assert_short_refusal(status: int, text: str, expected: int) -> str:
    assert status == expected, text
    data = json.loads(text)
    assert set(data) == {"detail"} and isinstance(data["detail"], str)
    detail = data["detail"]
    assert 0 < len(detail) <= 160, detail
    assert "Traceback" not in text and "File \"" not in text and "0x" not in text
    return detail


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("wallets")
    wallets = {name: make_wallet(root, name) for name in ("validator", "low", "nopermit", "miner", "other", "stranger")}
    hk = {name: w.hotkey.ss58_address for name, w in wallets.items()}
    metagraph = hand_metagraph([
        (hk["validator"], 100.0, True),
        (hk["low"], 1.0, True),  # registered, permit, stake below MIN_STAKE
        (hk["nopermit"], 100.0, False),
        (hk["miner"], 0.0, False),
        (hk["other"], 100.0, True),
    ])  # fmt: skip  # "stranger" is not registered
    generator = Generator()
    store = SqliteNonceStore(tmp_path_factory.mktemp("nonces") / "nonces.sqlite")
    service = build_miner(hk["miner"], metagraph, store, generator)
    with ServedApp(create_app(service)) as served:
        yield {"wallets": wallets, "hk": hk, "metagraph": metagraph, "service": service, "port": served.port,
               "generator": generator, "url": f"http://127.0.0.1:{served.port}{ROUTE}"}


def post(world, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(world["url"], content=body, headers=headers, timeout=10.0)


# -- the honest path -----------------------------------------------------------------------


def test_signed_request_is_answered_with_a_mesh(world):
    async def ask():
        client = MinerClient(world["wallets"]["validator"])
        try:
            target = Target(uid=3, hotkey=world["hk"]["miner"], ip="127.0.0.1", port=world["port"])
            return await client.query(target, TextTo3DRequest(prompt="a red chair", seed=7, timeout_s=5.0), 5.0)
        finally:
            await client.aclose()

    answer = asyncio.run(ask())
    assert answer.status == "ok", answer.detail
    assert answer.http_status == 200
    assert answer.headers[HEADER_FORMAT.lower()] == "draco"
    response = TextTo3DResponse.from_http(answer.headers, answer.body)
    mesh = decode_mesh(response.payload)
    assert len(mesh.faces) > 0 and mesh.visual.vertex_colors.shape[0] == len(mesh.vertices)


# -- 401: authentication -------------------------------------------------------------------


def _unauthenticated_cases(world):
    w, hk = world["wallets"], world["hk"]
    miner = hk["miner"]
    body = body_of(11)
    tampered = signed(w["validator"], miner, body), body_of(12)  # signed one body, sent another
    wrong_receiver = signed(w["validator"], hk["other"], body), body
    stale = signed(w["validator"], miner, body, nonce_ns=time.time_ns() - 30 * 10**9), body
    nonce = time.time_ns()
    payload = bt.http_auth.build_payload(
        scheme="sr25519", method="POST", path=ROUTE, body=body, nonce_ns=nonce, sender_ss58=hk["validator"],
        receiver_ss58=miner,
    )  # fmt: skip
    forged_headers = signed(w["validator"], miner, body, nonce_ns=nonce)
    forged_headers["X-Bittensor-Signature"] = "0x" + bytes(w["other"].hotkey.sign(payload)).hex()  # another key
    return {
        "tampered": (tampered, "signature"),
        "wrong_receiver": (wrong_receiver, "receiv"),
        "stale": (stale, "older than"),
        "forged": ((forged_headers, body), "signature"),
    }


@pytest.mark.parametrize("case", ["tampered", "wrong_receiver", "stale", "forged"])
def test_bad_authentication_gets_401_with_a_short_reason(world, case):
    (headers, body), reason = _unauthenticated_cases(world)[case]
    before = world["generator"].prompts
    response = post(world, body, headers)
    detail = assert_short_refusal(response.status_code, response.text, 401)
    assert reason in detail, detail
    assert response.headers["content-type"].startswith("application/json")
    assert world["generator"].prompts == before  # nothing was generated


def test_replayed_request_gets_401(world):
    body = body_of(21)
    headers = signed(world["wallets"]["validator"], world["hk"]["miner"], body)
    first = post(world, body, headers)
    assert first.status_code == 200 and first.content
    before = world["generator"].prompts
    second = post(world, body, headers)  # byte for byte the same request
    detail = assert_short_refusal(second.status_code, second.text, 401)
    assert "already accepted" in detail
    assert world["generator"].prompts == before


# -- 403: the caller policy runs before the body is read -----------------------------------


@pytest.mark.parametrize(
    "who, reason", [("stranger", "not registered"), ("nopermit", "no validator permit"), ("low", "below the minimum")]
)
def test_refused_callers_get_403_before_their_body_is_read(world, who, reason):
    """Headers announce a 4000-byte body (under the cap) that never comes: only a refusal
    decided on the headers alone can answer; reading the body would wait forever."""
    body = body_of(31)
    headers = signed(world["wallets"][who], world["hk"]["miner"], body)
    with socket.create_connection(("127.0.0.1", world["port"]), timeout=5) as sock:
        sock.sendall(raw_head(world["port"], headers, content_length=4000))
        status, response_headers, payload = read_response(sock, timeout_s=3.0)  # answered with no body byte sent
    detail = assert_short_refusal(status, payload.decode(), 403)
    assert reason in detail, detail


def test_a_permitted_caller_with_a_missing_body_waits_for_it(world):
    """The control for the 403 proof above: the same request from an allowed caller is not
    answered, because the miner does wait for a body it has to verify."""
    body = body_of(32)
    headers = signed(world["wallets"]["validator"], world["hk"]["miner"], body)
    with socket.create_connection(("127.0.0.1", world["port"]), timeout=5) as sock:
        sock.sendall(raw_head(world["port"], headers, content_length=4000))
        with pytest.raises(socket.timeout):
            read_response(sock, timeout_s=1.0)


# -- 413: bodies over the cap are never buffered -------------------------------------------


def test_200_mb_body_is_refused_without_being_buffered(world):
    """Content-Length 200 MB: 413 from the headers, at once; garbage streamed afterwards is
    not kept (the miner runs in this process: its RSS is ours)."""
    body = body_of(41)
    headers = signed(world["wallets"]["validator"], world["hk"]["miner"], body)
    declared = 200 * MIB
    process = psutil.Process()
    rss_before = process.memory_info().rss
    peak = [rss_before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sent = 0
    try:
        with socket.create_connection(("127.0.0.1", world["port"]), timeout=5) as sock:
            sock.sendall(raw_head(world["port"], headers, content_length=declared))
            status, _, payload = read_response(sock, timeout_s=3.0)  # answered before any body byte is sent
            garbage = b"\xa5" * MIB
            sock.settimeout(5.0)
            try:
                while sent < declared:
                    sock.sendall(garbage)
                    sent += len(garbage)
            except OSError:
                pass  # the miner closed the connection instead of draining it
    finally:
        done.set()
        sampler.join()
    detail = assert_short_refusal(status, payload.decode(), 413)
    assert str(MAX_REQUEST_BYTES) in detail
    growth_mb = (peak[0] - rss_before) / MIB
    assert growth_mb < 32, f"RSS grew by {growth_mb:.1f} MB while {sent / MIB:.0f} MB were streamed"
    assert sent < declared, "the miner kept reading a body it had refused (Connection: close expected)"


def test_chunked_body_over_the_cap_is_refused(world):
    """No Content-Length at all: the body is read under the cap and refused at it."""
    chunks = [b"x" * 1024 for _ in range(4 * MAX_REQUEST_BYTES // 1024)]
    headers = signed(world["wallets"]["validator"], world["hk"]["miner"], b"".join(chunks))

    def stream():
        yield from chunks

    before = world["generator"].prompts
    response = httpx.post(world["url"], content=stream(), headers=headers, timeout=10.0)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    detail = assert_short_refusal(response.status_code, response.text, 413)
    assert str(MAX_REQUEST_BYTES) in detail
    assert world["generator"].prompts == before


# -- the replay store holds across workers -------------------------------------------------


def test_sqlite_nonce_store_holds_across_two_workers(world, tmp_path):
    """Two miner "workers" (two apps, two SqliteNonceStore instances on one file): a request
    the first answered is a replay to the second."""
    path = tmp_path / "shared_nonces.sqlite"
    miner, metagraph = world["hk"]["miner"], world["metagraph"]
    first = build_miner(miner, metagraph, SqliteNonceStore(path), Generator())
    second = build_miner(miner, metagraph, SqliteNonceStore(path), Generator())
    validator = world["wallets"]["validator"]
    with ServedApp(create_app(first)) as one, ServedApp(create_app(second)) as two:
        body = body_of(51)
        headers = signed(validator, miner, body)
        answered = httpx.post(f"http://127.0.0.1:{one.port}{ROUTE}", content=body, headers=headers, timeout=10)
        replayed = httpx.post(f"http://127.0.0.1:{two.port}{ROUTE}", content=body, headers=headers, timeout=10)
        fresh_body = body_of(52)
        fresh = httpx.post(f"http://127.0.0.1:{two.port}{ROUTE}", content=fresh_body,
                           headers=signed(validator, miner, fresh_body), timeout=10)
    assert answered.status_code == 200 and answered.content
    detail = assert_short_refusal(replayed.status_code, replayed.text, 401)
    assert "already accepted" in detail
    assert fresh.status_code == 200  # the second worker serves fresh requests
