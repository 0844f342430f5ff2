"""The miner batches concurrent requests, admits only what it can finish, and answers in time or not at all.

Pinned rules of the ``GenerationQueue``: requests arriving together share one
``generate`` call, never more than ``max_batch_size``; a request whose deadline passes
in the queue is dropped unstarted; a request whose budget is shorter than a typical
batch is refused at once (503), and an idle miner lets a one-off slow batch fade
instead of refusing forever; a failing batch fails only its own requests and the loop
goes on; one caller gets 429 past its in-flight cap; a full queue answers 503 unless
the newcomer has more stake than the lowest-stake queued request, which is evicted
(told 503); the queue runs by stake, then arrival.

Pinned rules of the ``Miner``: a mesh validators would refuse is refused with a sentence
before it is sent; one unencodable mesh fails only its own request; an answer that
finishes after the caller's deadline is dropped (503 with Retry-After); the caller's
timeout is capped; a taken ``--axon.port`` is one sentence; an unregistered hotkey
stops ``main()`` with exit 78 and one sentence; the module runs as a script.

The generator is a stand-in (coloured boxes) and the clock is injected where time
matters; requests reach the real ASGI app signed by real wallets.
"""

import asyncio
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import trimesh

from text3d.miner.caller_policy import CallerPolicy
from text3d.chain.devnet import DevnetChain
from text3d.miner.queue import GenerationQueue, Overloaded
from text3d.miner.main import Miner, main
from text3d.ops.net import check_port_free
from text3d.miner.encoding import encode_for_wire
from text3d.miner.app import MinerService
from text3d.miner.nonce_store import SqliteNonceStore
from text3d.settings import load_settings
from text3d.protocol.errors import EXIT_CONFIG, ConfigError
from text3d.protocol.limits import MeshLimits
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh
from text3d.protocol.wire import ROUTE, TextTo3DRequest, TextTo3DResponse
from tests.counting import until
from tests.loopback import free_socket, hand_metagraph, make_wallet
from tests.meshes import red_cube, uncoloured_cube

REPO = Path(__file__).resolve().parent.parent


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class RecordingWork:
    """``work(prompts, seeds)`` for the queue: records each batch; may advance a clock or fail.

    With a ``gate``, the batch holding ``gated`` (default: the first batch) waits for it,
    and ``started`` is set when that batch begins.
    """

    def __init__(self, clock=None, cost_s=0.0, fail_on=None, gate=None, gated=None):
        self.calls = []
        self.clock, self.cost_s, self.fail_on, self.gate, self.gated = clock, cost_s, fail_on, gate, gated
        self.started = threading.Event()

    def __call__(self, prompts, seeds):
        self.calls.append((list(prompts), list(seeds)))
        if self.gate is not None and (self.gated in prompts if self.gated else len(self.calls) == 1):
            self.started.set()
            assert self.gate.wait(30), "the test never opened the gate"
        if self.clock is not None:
            self.clock.now += self.cost_s
        if self.fail_on is not None and self.fail_on in prompts:
            raise RuntimeError("CUDA out of memory")
        return [f"mesh of {p!r} seed {s}" for p, s in zip(prompts, seeds)]

    @property
    def prompts(self):
        return [p for prompts, _ in self.calls for p in prompts]


def make_queue(work, clock=None, **options):
    options = {"max_batch_size": 4, "window_s": 0.05, "max_queue": 32, "max_in_flight_per_caller": 8, **options}
    return GenerationQueue(work, ThreadPoolExecutor(max_workers=1), clock=clock or time.monotonic, **options)


def run(coroutine_fn, queue):
    async def go():
        try:
            return await coroutine_fn()
        finally:
            await queue.close()

    return asyncio.run(go())


async def wait_until(predicate):
    await until(predicate, what="the queue's state")


FAR = 10**9  # a deadline nothing reaches


# -- the queue: batching -----------------------------------------------------------------------


def test_concurrent_requests_share_one_generate_call():
    work = RecordingWork()
    queue = make_queue(work, window_s=0.2)
    results = run(lambda: asyncio.gather(*(queue.submit(f"prompt {i}", i, FAR, caller="v", stake=1.0)
                                           for i in range(4))), queue)  # fmt: skip
    assert len(work.calls) == 1
    assert sorted(work.calls[0][0]) == [f"prompt {i}" for i in range(4)] and sorted(work.calls[0][1]) == [0, 1, 2, 3]
    assert results == [f"mesh of 'prompt {i}' seed {i}" for i in range(4)]  # each gets its own result
    assert queue.batch_sizes == [4] and queue.queued == 0 and queue.in_flight("v") == 0


def test_batches_never_exceed_max_batch_size():
    work = RecordingWork()
    queue = make_queue(work, max_batch_size=4)
    results = run(lambda: asyncio.gather(*(queue.submit(f"p{i}", i, FAR, caller=f"v{i}", stake=1.0)
                                           for i in range(10))), queue)  # fmt: skip
    assert [len(prompts) for prompts, _ in work.calls] == [4, 4, 2]
    assert work.prompts == [f"p{i}" for i in range(10)]  # equal stake: first come, first served
    assert all(result is not None for result in results)


def test_a_request_waits_at_most_one_window_for_company():
    work = RecordingWork()
    queue = make_queue(work, window_s=0.05)

    async def go():
        first = await queue.submit("alone", 1, FAR, caller="v", stake=1.0)
        second = await queue.submit("alone again", 2, FAR, caller="v", stake=1.0)
        return first, second

    assert run(go, queue) == ("mesh of 'alone' seed 1", "mesh of 'alone again' seed 2")
    assert [len(prompts) for prompts, _ in work.calls] == [1, 1]


# -- the queue: deadlines --------------------------------------------------------------------


def test_a_queued_request_whose_deadline_passes_is_dropped_unstarted():
    clock, gate = FakeClock(), threading.Event()
    work = RecordingWork(clock=clock, cost_s=5.0, gate=gate)
    queue = make_queue(work, clock=clock, max_batch_size=1, window_s=0.0)

    async def go():
        first = asyncio.ensure_future(queue.submit("slow chair", 1, clock.now + 30, caller="a", stake=1.0))
        await wait_until(work.started.is_set)
        hurried = asyncio.ensure_future(queue.submit("hurried lamp", 2, clock.now + 3, caller="b", stake=1.0))
        await wait_until(lambda: queue.queued == 1)
        gate.set()
        return await first, await hurried

    first, hurried = run(go, queue)
    assert first == "mesh of 'slow chair' seed 1"
    assert hurried is None  # its deadline passed while the chair was generated ...
    assert work.prompts == ["slow chair"]  # ... so it was never started
    assert queue.in_flight("b") == 0


def test_a_request_shorter_than_a_typical_batch_is_not_started():
    clock = FakeClock()
    work = RecordingWork(clock=clock, cost_s=5.0)
    queue = make_queue(work, clock=clock, window_s=0.0)

    async def go():
        warm = await queue.submit("warm up", 1, clock.now + 30, caller="v", stake=1.0)
        with pytest.raises(Overloaded) as refused:
            await queue.submit("hurry", 2, clock.now + 2, caller="v", stake=1.0)
        return warm, refused.value

    warm, refused = run(go, queue)
    assert warm is not None and work.prompts == ["warm up"]  # "hurry" never reached the generator
    assert refused.status == 503 and "before its deadline" in refused.reason
    assert refused.retry_after_s == 4.0  # about one batch (the estimate, rounded up)
    assert queue.in_flight("v") == 0 and queue.queued == 0
    assert queue.expected_batch_s == pytest.approx(4.0)  # idle: the estimate decays, a slow warm-up is forgotten


def test_an_idle_miner_recovers_from_a_slow_warm_up():
    """A 40 s first batch must not make every 12 s request a 503 forever."""
    clock = FakeClock()
    work = RecordingWork(clock=clock, cost_s=3.0)
    queue = make_queue(work, clock=clock, window_s=0.0)

    async def go():
        work.cost_s = 40.0
        await queue.submit("warm up", 0, clock.now + 60, caller="v", stake=1.0)
        work.cost_s = 3.0
        outcomes = []
        for i in range(20):
            try:
                outcomes.append(await queue.submit(f"p{i}", i, clock.now + 11.75, caller="v", stake=1.0))
            except Overloaded as exc:
                outcomes.append(exc.status)
        return outcomes

    outcomes = run(go, queue)
    assert outcomes[0] == 503  # right after the warm-up the estimate says no ...
    assert outcomes.index(next(o for o in outcomes if o != 503)) <= 10  # ... but not for long
    assert all(isinstance(o, str) for o in outcomes[-5:])  # and then it keeps answering
    assert queue.expected_batch_s < 11.75


# -- the queue: failures ---------------------------------------------------------------------


def test_a_failed_batch_fails_only_its_requests_and_the_loop_survives():
    work = RecordingWork(fail_on="boom")
    queue = make_queue(work, window_s=0.2)

    async def go():
        together = await asyncio.gather(queue.submit("boom", 1, FAR, caller="a", stake=1.0),
                                        queue.submit("a lamp", 2, FAR, caller="b", stake=1.0),
                                        return_exceptions=True)  # fmt: skip
        later = await queue.submit("a vase", 3, FAR, caller="a", stake=1.0)
        return together, later

    together, later = run(go, queue)
    assert all(isinstance(r, RuntimeError) and "CUDA out of memory" in str(r) for r in together)  # one batch
    assert later == "mesh of 'a vase' seed 3"  # the next batch runs
    assert queue.in_flight("a") == 0 and queue.in_flight("b") == 0  # failures release their slots


def test_a_generator_returning_the_wrong_number_of_results_fails_its_batch():
    queue = make_queue(lambda prompts, seeds: ["only one"], window_s=0.2)

    async def go():
        return await asyncio.gather(*(queue.submit(f"p{i}", i, FAR, caller="v", stake=1.0) for i in range(2)),
                                    return_exceptions=True)  # fmt: skip

    results = run(go, queue)
    assert all(isinstance(r, RuntimeError) and "1 results for 2 prompts" in str(r) for r in results)


def test_a_caller_that_goes_away_is_forgotten():
    gate = threading.Event()
    work = RecordingWork(gate=gate)
    queue = make_queue(work, max_batch_size=1, window_s=0.0)

    async def go():
        first = asyncio.ensure_future(queue.submit("first", 1, FAR, caller="a", stake=1.0))
        await wait_until(work.started.is_set)
        gone = asyncio.ensure_future(queue.submit("abandoned", 2, FAR, caller="b", stake=1.0))
        await wait_until(lambda: queue.queued == 1)
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        assert queue.queued == 0 and queue.in_flight("b") == 0
        gate.set()
        await first
        return await queue.submit("next", 3, FAR, caller="b", stake=1.0)

    assert run(go, queue) == "mesh of 'next' seed 3"
    assert work.prompts == ["first", "next"]


# -- the queue: admission and order ----------------------------------------------------------


def test_per_caller_cap_gives_429_with_retry_after():
    gate = threading.Event()
    work = RecordingWork(gate=gate)
    queue = make_queue(work, max_batch_size=1, window_s=0.0, max_in_flight_per_caller=2)

    async def go():
        mine = [asyncio.ensure_future(queue.submit("p0", 0, FAR, caller="flood", stake=1.0))]
        await wait_until(work.started.is_set)
        mine.append(asyncio.ensure_future(queue.submit("p1", 1, FAR, caller="flood", stake=1.0)))
        await wait_until(lambda: queue.queued == 1)
        assert queue.in_flight("flood") == 2  # one running, one queued
        with pytest.raises(Overloaded) as refused:
            await queue.submit("p2", 2, FAR, caller="flood", stake=1.0)
        other = asyncio.ensure_future(queue.submit("q0", 0, FAR, caller="other", stake=1.0))  # others still get in
        await wait_until(lambda: queue.queued == 2)
        gate.set()
        await asyncio.gather(*mine, other)
        again = await queue.submit("p3", 3, FAR, caller="flood", stake=1.0)  # slots come back when answered
        return refused.value, again

    refused, again = run(go, queue)
    assert refused.status == 429 and "already has 2 requests" in refused.reason
    assert refused.retry_after_s >= 1.0
    assert again is not None and "p2" not in work.prompts


def test_full_queue_gives_503_and_a_higher_stake_evicts_the_lowest():
    gate = threading.Event()
    work = RecordingWork(gate=gate)
    queue = make_queue(work, max_batch_size=1, window_s=0.0, max_queue=2)

    async def go():
        running = asyncio.ensure_future(queue.submit("running", 0, FAR, caller="r", stake=1.0))
        await wait_until(work.started.is_set)
        low = asyncio.ensure_future(queue.submit("low", 1, FAR, caller="low", stake=1.0))
        mid = asyncio.ensure_future(queue.submit("mid", 2, FAR, caller="mid", stake=5.0))
        await wait_until(lambda: queue.queued == 2)
        with pytest.raises(Overloaded) as full:  # equal stake takes nobody's place
            await queue.submit("also low", 3, FAR, caller="low2", stake=1.0)
        high = asyncio.ensure_future(queue.submit("high", 4, FAR, caller="high", stake=10.0))
        with pytest.raises(Overloaded) as evicted:
            await low  # told at once, not when the queue drains
        assert queue.queued == 2 and queue.in_flight("low") == 0
        gate.set()
        return full.value, evicted.value, await asyncio.gather(running, mid, high)

    full, evicted, answered = run(go, queue)
    assert full.status == 503 and "queue is full" in full.reason and full.retry_after_s >= 1.0
    assert evicted.status == 503 and "more stake took this request's place" in evicted.reason
    assert all(answered) and work.prompts == ["running", "high", "mid"]
    assert queue.peak_queued == 2  # the queue never outgrew its cap


def test_the_queue_runs_by_stake_then_arrival():
    gate = threading.Event()
    work = RecordingWork(gate=gate)
    queue = make_queue(work, max_batch_size=1, window_s=0.0)
    arrivals = [("a", 1.0), ("b", 50.0), ("c", 1.0), ("d", 50.0), ("e", 7.0), ("f", 0.0)]

    async def go():
        first = asyncio.ensure_future(queue.submit("first", 0, FAR, caller="x", stake=0.0))
        await wait_until(work.started.is_set)
        rest = []
        for name, stake in arrivals:
            rest.append(asyncio.ensure_future(queue.submit(name, 0, FAR, caller=name, stake=stake)))
            await wait_until(lambda: queue.queued == len(rest))
        gate.set()
        await asyncio.gather(first, *rest)

    run(go, queue)
    assert work.prompts == ["first", "b", "d", "e", "a", "c", "f"]


def test_the_wait_estimate_counts_only_requests_served_first():
    clock, gate = FakeClock(), threading.Event()
    work = RecordingWork(clock=clock, cost_s=2.0, gate=gate, gated="running")
    queue = make_queue(work, clock=clock, max_batch_size=1, window_s=0.0)

    async def go():
        await queue.submit("timed", 0, FAR, caller="x", stake=0.0)  # expected_batch_s = 2
        assert queue.expected_batch_s == 2.0
        work.calls.clear()
        blocker = asyncio.ensure_future(queue.submit("running", 0, FAR, caller="x", stake=0.0))
        await wait_until(work.started.is_set)
        queued = [asyncio.ensure_future(queue.submit(f"low{i}", 0, FAR, caller=f"l{i}", stake=1.0)) for i in range(3)]
        await wait_until(lambda: queue.queued == 3)
        low_wait, high_wait = queue.estimated_wait_s(1.0), queue.estimated_wait_s(100.0)
        with pytest.raises(Overloaded):  # the running batch, 3 ahead, its own: 10 s > 5 s
            await queue.submit("low late", 0, clock.now + 5, caller="l9", stake=1.0)
        high = asyncio.ensure_future(queue.submit("high", 0, clock.now + 5, caller="h", stake=100.0))  # jumps the line
        await wait_until(lambda: queue.queued == 4)
        gate.set()
        await asyncio.gather(blocker, *queued)
        return low_wait, high_wait, await high

    low_wait, high_wait, high = run(go, queue)
    assert (low_wait, high_wait) == (pytest.approx(10.0), pytest.approx(4.0))  # 5 and 2 batches of 2 s
    assert high is not None and work.prompts[:2] == ["running", "high"]


# -- the miner: encoding ---------------------------------------------------------------------


def test_a_mesh_validators_would_refuse_is_refused_with_a_sentence(monkeypatch):
    payload, fmt = encode_for_wire(red_cube(), MeshFormat.DRACO)
    assert fmt is MeshFormat.DRACO and len(decode_mesh(payload).faces) == 12
    monkeypatch.setattr("text3d.miner.encoding.DEFAULT_LIMITS", MeshLimits(max_faces=11))
    with pytest.raises(ValueError) as too_many:
        encode_for_wire(red_cube(), MeshFormat.DRACO)
    assert str(too_many.value) == ("mesh has 8 vertices and 12 faces, validators accept at most 1000000 and 11; "
                                   "lower --generation.grid_size")  # fmt: skip
    monkeypatch.setattr("text3d.miner.encoding.DEFAULT_LIMITS", MeshLimits(max_vertices=7))
    with pytest.raises(ValueError, match="accept at most 7 and"):
        encode_for_wire(red_cube(), MeshFormat.DRACO)
    monkeypatch.setattr("text3d.miner.encoding.DEFAULT_LIMITS", MeshLimits(max_payload_bytes=100))
    with pytest.raises(ValueError, match=r"^encoded mesh is \d+ bytes, validators accept at most 100$"):
        encode_for_wire(red_cube(), MeshFormat.PLY)
    with pytest.raises(ValueError, match="no colours"):
        encode_for_wire(uncoloured_cube(), MeshFormat.DRACO)


class BoxGenerator:
    """A stand-in for Shap-E: a coloured box per prompt (an uncoloured one for "grey ..."); may sleep."""

    def __init__(self, sleep_s=0.0):
        self.calls, self.sleep_s = [], sleep_s

    def generate(self, prompts, seeds):
        self.calls.append((list(prompts), list(seeds)))
        time.sleep(self.sleep_s)
        meshes = []
        for prompt in prompts:
            mesh = trimesh.creation.box()
            if not prompt.startswith("grey"):
                mesh.visual.vertex_colors = np.full((len(mesh.vertices), 4), 255, dtype=np.uint8)
            meshes.append(mesh)
        return meshes


class FakeHotkey:
    def __init__(self, ss58_address):
        self.ss58_address = ss58_address


class FakeWallet:
    def __init__(self, ss58_address="miner-hotkey"):
        self.hotkey = FakeHotkey(ss58_address)


def make_miner(generator, *flags, wallet=None, nonce_store=None):
    settings = load_settings("miner", ["--miner.batch_window_s", "0.2", *flags])
    return Miner(settings, wallet=wallet or FakeWallet(), chain=None, generator=generator, nonce_store=nonce_store)


def test_the_miner_batches_and_encodes_in_its_wire_format():
    generator = BoxGenerator()
    miner = make_miner(generator, "--miner.max_batch_size", "4", "--miner.format", "ply")
    results = run(lambda: asyncio.gather(*(miner.queue.submit(f"box {i}", i, FAR, caller="v", stake=1.0)
                                           for i in range(4))), miner.queue)  # fmt: skip
    assert len(generator.calls) == 1 and sorted(generator.calls[0][1]) == [0, 1, 2, 3]
    for payload, fmt in results:
        assert fmt is MeshFormat.PLY and payload.startswith(b"ply")
        assert len(decode_mesh(payload).faces) == 12


def test_one_unencodable_mesh_fails_only_its_own_request():
    miner = make_miner(BoxGenerator())
    good, grey = run(lambda: asyncio.gather(miner.queue.submit("red box", 1, FAR, caller="v", stake=1.0),
                                            miner.queue.submit("grey box", 2, FAR, caller="w", stake=1.0)),
                     miner.queue)  # fmt: skip
    assert isinstance(good, tuple) and len(decode_mesh(good[0]).faces) == 12
    assert isinstance(grey, ValueError) and "no colours" in str(grey)


# -- the miner over HTTP (in-process ASGI, real signatures) -------------------------------


@pytest.fixture(scope="module")
def wallets(tmp_path_factory):
    root = tmp_path_factory.mktemp("wallets")
    return {name: make_wallet(root, name) for name in ("miner", "validator")}


def signed_post(miner, wallet, request):
    import bittensor as bt

    body = request.to_body()
    headers = bt.http_auth.sign(wallet, method="POST", path=ROUTE, body=body, receiver_ss58=miner.service.hotkey)
    headers["Content-Type"] = "application/json"

    async def go():
        transport = httpx.ASGITransport(app=miner.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://miner") as client:
            return await client.post(ROUTE, content=body, headers=headers)

    return run(go, miner.queue)


def served_miner(wallets, tmp_path, generator, *flags):
    miner = make_miner(generator, "--miner.batch_window_s", "0", *flags, wallet=wallets["miner"],
                       nonce_store=SqliteNonceStore(tmp_path / "nonces.sqlite"))  # fmt: skip
    miner.service.metagraph = hand_metagraph([(wallets["miner"].hotkey.ss58_address, 0.0, False),
                                              (wallets["validator"].hotkey.ss58_address, 100.0, True)])  # fmt: skip
    return miner


def test_a_signed_request_is_answered_with_the_mesh_bytes(wallets, tmp_path):
    generator = BoxGenerator()
    miner = served_miner(wallets, tmp_path, generator)
    response = signed_post(miner, wallets["validator"], TextTo3DRequest(prompt="a red box", seed=42, timeout_s=10.0))
    assert response.status_code == 200, response.text
    answer = TextTo3DResponse.from_http(response.headers, response.content)
    assert answer.format is MeshFormat.DRACO and answer.generation_time_s >= 0
    assert len(decode_mesh(answer.payload).faces) == 12
    assert generator.calls == [(["a red box"], [42])] and miner.service.answered == 1


def test_an_unencodable_mesh_is_a_500_with_a_sentence(wallets, tmp_path):
    miner = served_miner(wallets, tmp_path, BoxGenerator())
    response = signed_post(miner, wallets["validator"], TextTo3DRequest(prompt="grey box", seed=1))
    assert response.status_code == 500
    assert response.json() == {"detail": "the generated mesh could not be encoded"}


def test_an_answer_finishing_after_the_deadline_is_dropped(wallets, tmp_path):
    generator = BoxGenerator(sleep_s=1.5)  # the deadline is 1.0 - 0.25 s: generation outlives it
    miner = served_miner(wallets, tmp_path, generator, "--miner.deadline_margin_s", "0.25")
    response = signed_post(miner, wallets["validator"], TextTo3DRequest(prompt="a slow chair", seed=1, timeout_s=1.0))
    assert len(generator.calls) == 1  # it was started: no batch had been timed yet ...
    assert response.status_code == 503  # ... but its answer came too late to be of use
    assert "before the caller's deadline" in response.json()["detail"]
    assert int(response.headers["Retry-After"]) >= 1
    assert miner.service.dropped == 1 and miner.service.answered == 0


def test_the_callers_timeout_is_capped_and_the_trip_back_kept():
    clock = FakeClock(50.0)
    service = MinerService(hotkey="m", policy=CallerPolicy(), queue=None, nonce_store=None, max_timeout_s=20.0,
                           deadline_margin_s=0.25, clock=clock)  # fmt: skip
    assert service.deadline_of(TextTo3DRequest(prompt="x", seed=1, timeout_s=10.0)) == pytest.approx(59.75)
    assert service.deadline_of(TextTo3DRequest(prompt="x", seed=1, timeout_s=60.0)) == pytest.approx(69.75)


# -- the miner's start-up ----------------------------------------------------------------------


def test_a_taken_port_is_one_sentence_naming_the_flag():
    taken = free_socket()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(ConfigError) as caught:
            check_port_free("127.0.0.1", port)
        assert str(caught.value).startswith(f"--axon.port {port} is already in use on 127.0.0.1")
        assert "\n" not in str(caught.value)
    finally:
        taken.close()
    sock = check_port_free("127.0.0.1", port)  # free again: we get the listening socket
    try:
        assert sock.getsockname()[1] == port and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        sock.close()


def test_an_address_this_machine_does_not_have_names_the_flags():
    with pytest.raises(ConfigError, match=r"^cannot listen on 203\.0\.113\.7:\d+ .*check --axon\.ip and --axon\.port"):
        check_port_free("203.0.113.7", 18_999)


def test_unregistered_hotkey_exits_78_with_one_sentence(tmp_path, capsys):
    DevnetChain.create(tmp_path / "devnet.db", 3)
    wallet = make_wallet(tmp_path / "wallets", "lonely")
    taken = free_socket()  # the check runs before the port is even tried
    argv = [
        "--netuid", "3", "--subtensor.network", "devnet", "--devnet.db", str(tmp_path / "devnet.db"),
        "--wallet.name", "lonely", "--wallet.path", str(tmp_path / "wallets"), "--models", "tiny",
        "--axon.ip", "127.0.0.1", "--axon.port", str(taken.getsockname()[1]),
    ]  # fmt: skip
    try:
        assert main(argv) == EXIT_CONFIG
    finally:
        taken.close()
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"text3d miner: hotkey {wallet.hotkey.ss58_address}")
    assert "is not registered on netuid 3" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_runs_as_a_script():
    done = subprocess.run([sys.executable, "neurons/miner.py", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--miner.max_batch_size" in done.stdout and "--axon.external_ip" in done.stdout
    assert "--generation.grid_size" in done.stdout and "--validator.timeout_s" not in done.stdout


def test_deadline_counts_time_already_spent_in_transit():
    """A request signed 3 s ago with a 10 s timeout has 7 s left (minus the margin), not 10."""
    from text3d.miner.caller_policy import CallerPolicy
    from text3d.miner.app import MinerService
    from text3d.protocol.wire import TextTo3DRequest

    now_ns = 1_000_000_000_000
    service = MinerService(
        hotkey="h", policy=CallerPolicy(), queue=None, nonce_store=None, max_timeout_s=30.0, deadline_margin_s=0.5,
        clock=lambda: 100.0, wall_clock_ns=lambda: now_ns,
    )
    task = TextTo3DRequest(prompt="a chair", seed=1, timeout_s=10.0)
    assert service.deadline_of(task, now_ns - 3_000_000_000) == pytest.approx(100.0 + 10.0 - 3.0 - 0.5)
    assert service.deadline_of(task, None) == pytest.approx(109.5)
    # a nonce from the future or older than the timeout means the clocks disagree: trust the timeout alone
    assert service.deadline_of(task, now_ns + 1_000_000_000) == pytest.approx(109.5)
    assert service.deadline_of(task, now_ns - 20_000_000_000) == pytest.approx(109.5)
    # the caller's timeout is capped by max_timeout_s
    service.max_timeout_s = 4.0
    assert service.deadline_of(TextTo3DRequest(prompt="a chair", seed=1, timeout_s=60.0), None) == pytest.approx(103.5)
