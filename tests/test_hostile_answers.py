"""Hostile miners against the validator's real HTTP client, over loopback.

bittensor 10.5's Dendrite read and gunzipped a whole answer before any limit: 2.09 MB of
gzip grew a validator by 6.2 GB, and the honest miner in the same step became "late"
because it was timed after the blocking parse. Here the real ``MinerClient`` (one
``httpx.AsyncClient``, ``Accept-Encoding: identity``, answers streamed under a hard cap, one
deadline per answer) queries, in ONE ``query_many`` call, small raw-socket stub miners that
answer hostilely, plus an honest miner (the real ``MinerService`` app under uvicorn with a
cheap fixed-time generator):

==================  ===========================================================  ===========
stub                what it sends                                                status
==================  ===========================================================  ===========
gzip_bomb           ``Content-Encoding: gzip``, 2.1 MB inflating to 2 GiB zeros   encoded
oversize_declared   ``Content-Length`` 4x the cap                                oversize
oversize_chunked    chunked, no length, 6x the cap                               oversize
huge_header         a 32 MiB header line (h11 refuses past 100 KiB)              malformed
trickle             a 200 head, then one body byte every 100 ms                  late
trickle_head        the status line itself, one byte every 100 ms                late
hang                accepts, reads the request, never answers                    late
honest              the real miner app, 0.8 s of "generation"                    ok
==================  ===========================================================  ===========

Each hostile answer is dropped at the cap or the deadline: refused on its header (nothing of
the body read), cut at the cap (bytes counted), or ``late`` after a few trickled bytes; the
honest one is ``ok`` (timed at its last byte: the hostile ones in the same step do not make
it late) and decodes. The step costs one deadline, not the sum: the three stubs that hold
their connection until the deadline are all connected at once (the stubs count it). These
tests count bytes and connections; they assert no durations.

Memory: the client runs in this test process and its RSS is sampled with psutil every 5 ms
during the step. The cap is lowered to ``max_response_bytes=8 MiB`` (production: the codec's
64 MiB payload cap + 64 KiB) so that "grows by less than twice the cap" (16 MiB) is a
measurement that means something on a 24 GB box; one stub at a time streams up to the cap.
The stubs share the process, so they stream from one small reused buffer and build the
bomb lazily (``zlib`` full-flush blocks repeat: 1 MiB of zeros -> 1037 identical bytes).

Then the real ``Validator.step`` on a hand chain (a fake at the chain edge) with a tiny
scorer: the honest miner's average rises, every hostile one scores 0; and when every
miner is unreachable (closed ports), the step is a ``NetworkUnavailable`` fault and
nobody's average changes.
"""

from __future__ import annotations

import asyncio
import gc
import random
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from text3d.miner.caller_policy import CallerPolicy
from text3d.miner.queue import GenerationQueue
from text3d.miner.app import MinerService, create_app
from text3d.validator.client import MinerClient, Target
from text3d.validator.prompts import PromptSampler
from text3d.settings import ValidatorSettings
from text3d.validator.state import ValidatorState
from text3d.validator.outcomes import judge_answer
from text3d.validator.engine import Validator
from text3d.protocol.limits import DEFAULT_LIMITS
from text3d.protocol.mesh_codec import MeshFormat
from text3d.protocol.wire import TextTo3DRequest
from text3d.reward.reporting.evidence import RewardReport
from tests.loopback import ServedApp, hand_metagraph, make_wallet, tiny_mesh_payload
from text3d.ops.net import free_port

MIB = 1 << 20
CAP = 8 * MIB  # the validator's answer cap in these tests (see the module docstring)
TIMEOUT_S = 2.0  # the step's deadline
HONEST_GENERATION_S = 0.8

pytestmark = pytest.mark.integration


HUGE_HEADER = 32 * MIB  # one unknown header line


# -- the gzip bomb, built lazily -------------------------------------------------------------


class GzipBomb:
    """2 GiB of zeros as a valid gzip stream of ~2.1 MB, produced block by block.

    With ``Z_FULL_FLUSH`` after each MiB the deflate blocks are byte-aligned and independent,
    so every MiB after the first compresses to the same bytes; the stream is the first
    block, that block repeated, a final empty block and the gzip trailer (CRC-32, size).
    """

    def __init__(self, mib: int = 2048) -> None:
        zeros = bytes(MIB)
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip wrapper
        self.first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
        self.block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
        crc = 0
        for _ in range(mib):
            crc = zlib.crc32(zeros, crc)
        self.tail = b"\x03\x00" + struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF)  # final empty block
        self.mib = mib
        self.inflated = mib * MIB

    def __len__(self) -> int:
        return len(self.first) + (self.mib - 1) * len(self.block) + len(self.tail)

    def parts(self):
        yield self.first
        for _ in range(self.mib - 1):
            yield self.block
        yield self.tail


# -- hostile stub miners: raw sockets on one background event loop ---------------------------

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-Text3d-Format: draco\r\n"
CHUNK = bytes(64 * 1024)


async def _send(writer: asyncio.StreamWriter, data: bytes, sent: list[int]) -> None:
    writer.write(data)
    await writer.drain()
    sent[0] += len(data)


async def gzip_bomb(writer, sent, bomb: GzipBomb):
    await _send(writer, OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb), sent)
    for part in bomb.parts():
        await _send(writer, part, sent)


async def oversize_declared(writer, sent, bomb):
    total = 4 * CAP
    await _send(writer, OK_HEAD + b"Content-Length: %d\r\n\r\n" % total, sent)
    for _ in range(total // len(CHUNK)):
        await _send(writer, CHUNK, sent)


async def oversize_chunked(writer, sent, bomb):
    await _send(writer, OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", sent)
    for _ in range(6 * CAP // len(CHUNK)):
        await _send(writer, b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n", sent)
    await _send(writer, b"0\r\n\r\n", sent)


async def oversize_close_delimited(writer, sent, bomb):
    await _send(writer, OK_HEAD + b"Connection: close\r\n\r\n", sent)  # no length: the body ends at close
    for _ in range(6 * CAP // len(CHUNK)):
        await _send(writer, CHUNK, sent)


async def huge_header(writer, sent, bomb):
    await _send(writer, OK_HEAD + b"X-Unknown-Field: ", sent)
    padding = b"a" * len(CHUNK)
    for _ in range(HUGE_HEADER // len(padding)):
        await _send(writer, padding, sent)
    await _send(writer, b"\r\nContent-Length: 5\r\n\r\nhello", sent)


async def trickle(writer, sent, bomb):
    await _send(writer, OK_HEAD + b"Content-Length: 100000\r\n\r\n", sent)
    for _ in range(100000):
        await _send(writer, b"\x00", sent)
        await asyncio.sleep(0.1)


async def trickle_head(writer, sent, bomb):
    for byte in OK_HEAD + b"Content-Length: 10\r\n\r\n0123456789":
        await _send(writer, bytes([byte]), sent)
        await asyncio.sleep(0.1)


async def hang(writer, sent, bomb):
    await asyncio.sleep(3600)


BEHAVIOURS = {f.__name__: f for f in (
    gzip_bomb, oversize_declared, oversize_chunked, oversize_close_delimited, huge_header, trickle, trickle_head, hang,
)}  # fmt: skip


class HostileMiners:
    """One listening socket per behaviour, all served by one event loop in a background thread."""

    def __init__(self, bomb: GzipBomb, names) -> None:
        self.bomb = bomb
        self.names = list(names)
        self.ports: dict[str, int] = {}
        self.sent: dict[str, list[int]] = {name: [0] for name in self.names}
        self.request_heads: dict[str, bytes] = {}  # the last request head each stub received
        self.open: set[str] = set()  # stubs with a connection open right now
        self.overlaps: list[frozenset[str]] = []  # ``open`` each time a connection opened
        self.loop = asyncio.new_event_loop()
        self._servers = []
        self._thread = threading.Thread(target=self.loop.run_forever, name="hostile-miners", daemon=True)

    async def _handle(self, name, reader, writer):
        self.open.add(name)
        self.overlaps.append(frozenset(self.open))
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.request_heads[name] = head
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            await BEHAVIOURS[name](writer, self.sent[name], self.bomb)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # the client hung up on us: that is the point
        finally:
            self.open.discard(name)
            writer.close()

    async def _start(self):
        for name in self.names:
            server = await asyncio.start_server(
                lambda r, w, name=name: self._handle(name, r, w), "127.0.0.1", 0
            )  # fmt: skip
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]

    def __enter__(self) -> "HostileMiners":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        async def stop():
            for server in self._servers:
                server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


# -- the honest miner: the real app, a fixed-time generator -----------------------------------


def honest_service(hotkey: str, metagraph, payload: bytes) -> MinerService:
    def work(prompts, seeds):
        time.sleep(HONEST_GENERATION_S)
        return [(payload, MeshFormat.DRACO) for _ in prompts]

    queue = GenerationQueue(work, ThreadPoolExecutor(max_workers=1), max_batch_size=4, window_s=0.01, max_queue=32,
                            max_in_flight_per_caller=4)
    import bittensor as bt

    return MinerService(hotkey=hotkey, policy=CallerPolicy(0.0, True), queue=queue,
                        nonce_store=bt.http_auth.InMemoryNonceStore(), max_timeout_s=30.0, deadline_margin_s=0.1,
                        metagraph=metagraph)


class RssSampler:
    """Peak RSS of this process while the block runs (psutil every 5 ms in a thread)."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> "RssSampler":
        gc.collect()
        self.before = self.process.memory_info().rss
        self.peak = self.before
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.before


# -- fixtures --------------------------------------------------------------------------------

HOSTILE = ["gzip_bomb", "oversize_declared", "oversize_chunked", "huge_header", "trickle", "trickle_head", "hang"]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("wallets")
    validator = make_wallet(root, "validator")
    honest = make_wallet(root, "honest")
    hostile_hotkeys = {name: make_wallet(root, name).hotkey.ss58_address for name in HOSTILE}
    payload = tiny_mesh_payload()
    bomb = GzipBomb()
    assert 2 * MIB < len(bomb) < 2.5 * MIB and len(bomb) < CAP  # its declared length alone passes the cap
    allowed = hand_metagraph([(validator.hotkey.ss58_address, 100.0, True)])
    with HostileMiners(bomb, BEHAVIOURS) as hostile, ServedApp(create_app(
        honest_service(honest.hotkey.ss58_address, allowed, payload)
    )) as served:  # fmt: skip
        yield {
            "validator": validator, "honest": honest.hotkey.ss58_address, "honest_port": served.port,
            "hostile": hostile, "hostile_hotkeys": hostile_hotkeys, "bomb": bomb, "payload": payload,
        }


def request(seed: int = 1) -> TextTo3DRequest:
    return TextTo3DRequest(prompt="a red chair", seed=seed, timeout_s=TIMEOUT_S)


# -- one query_many: every hostile answer and an honest one ----------------------------------


def test_hostile_answers_are_dropped_at_the_cap_or_deadline_and_the_honest_one_scores(net):
    hostile = net["hostile"]
    names = HOSTILE + ["honest"]
    targets = [Target(uid, net["hostile_hotkeys"][name], "127.0.0.1", hostile.ports[name])
               for uid, name in enumerate(HOSTILE)]  # fmt: skip
    targets.append(Target(len(HOSTILE), net["honest"], "127.0.0.1", net["honest_port"]))

    async def step():
        client = MinerClient(net["validator"], max_response_bytes=CAP, max_concurrency=16)
        try:
            warm = await client.query(targets[-1], request(0), TIMEOUT_S)  # imports, first connection
            assert warm.status == "ok", warm.detail
            hostile.overlaps.clear()
            with RssSampler() as rss:
                answers = await asyncio.wait_for(
                    client.query_many(targets, [request(i + 1) for i in range(len(targets))], TIMEOUT_S),
                    TIMEOUT_S + 5,  # without the client's own deadline a trickle would hold us for hours
                )
                judged = [judge_answer(a, t.hotkey, 1, DEFAULT_LIMITS) for a, t in zip(answers, targets)]
            return answers, judged, rss
        finally:
            await client.aclose()

    answers, judged, rss = asyncio.run(step())
    by_name = dict(zip(names, answers))
    report = {n: (a.status, a.http_status, round(a.elapsed_s or -1, 2), a.bytes_received, a.detail[:60])
              for n, a in by_name.items()}  # fmt: skip

    print(f"\nRSS growth {rss.growth / MIB:.1f} MiB (cap {CAP // MIB} MiB)")
    for name, row in report.items():
        print(f"  {name:18s} {row}")
    bomb = by_name["gzip_bomb"]
    assert b"\r\naccept-encoding: identity\r\n" in hostile.request_heads["gzip_bomb"].lower()  # asked for none
    assert bomb.status == "encoded", report
    assert bomb.http_status == 200 and bomb.bytes_received == 0 and bomb.body == b""  # refused on its header

    declared = by_name["oversize_declared"]
    assert declared.status == "oversize" and declared.bytes_received == 0, report  # refused on the header

    chunked = by_name["oversize_chunked"]
    assert chunked.status == "oversize" and chunked.body == b"", report
    assert CAP < chunked.bytes_received <= CAP + 256 * 1024, report  # dropped at the cap, not at 6x
    assert hostile_sent(net, "oversize_chunked") < 6 * CAP

    header = by_name["huge_header"]
    assert header.status == "malformed" and header.http_status is None, report
    assert hostile_sent(net, "huge_header") < HUGE_HEADER  # it stopped reading: h11 refuses past 100 KiB

    for name in ("trickle", "trickle_head", "hang"):
        answer = by_name[name]
        assert answer.status == "late" and answer.body == b"", report
    # one byte every 100 ms: cut at the 2 s deadline after a few of its 100,000 bytes
    assert by_name["trickle"].http_status == 200 and 0 < by_name["trickle"].bytes_received < 40, report
    assert by_name["trickle_head"].http_status is None and by_name["hang"].http_status is None, report

    honest = by_name["honest"]
    assert honest.status == "ok", report  # timed at its last byte: not late beside the hostile ones
    outcome, mesh = judged[-1]
    assert outcome.status == "ok" and mesh is not None and len(mesh.faces) > 0
    assert honest.body == net["payload"]
    assert all(mesh is None for _, mesh in judged[:-1])

    # the step costs one deadline, not the sum: the stubs that hold on until the deadline were all connected at once
    holders = {"trickle", "trickle_head", "hang"}
    assert any(holders <= opened for opened in hostile.overlaps), hostile.overlaps
    assert rss.growth < 2 * CAP, f"RSS grew by {rss.growth / MIB:.1f} MiB (cap {CAP / MIB:.0f} MiB): {report}"


def hostile_sent(net, name: str) -> int:
    return net["hostile"].sent[name][0]


@pytest.mark.parametrize("name, status", [("oversize_close_delimited", "oversize"), ("gzip_bomb", "encoded")])
def test_each_alone(net, name, status):
    """A body delimited only by the connection closing is capped like a chunked one."""
    target = Target(0, net["hostile_hotkeys"].get(name, net["honest"]), "127.0.0.1", net["hostile"].ports[name])

    async def one():
        client = MinerClient(net["validator"], max_response_bytes=CAP)
        try:
            return await asyncio.wait_for(client.query(target, request(), TIMEOUT_S), TIMEOUT_S + 5)
        finally:
            await client.aclose()

    answer = asyncio.run(one())
    assert answer.status == status, answer  # dropped at the cap or on its header, not at the deadline ("late")
    assert answer.body == b""
    assert answer.bytes_received <= CAP + 256 * 1024


# -- the real Validator.step on a hand chain ------------------------------------------------


class HandChain:
    """The chain edge: a fixed metagraph, a block, recorded weights."""

    def __init__(self, metagraph) -> None:
        self.graph = metagraph
        self.weights: list = []

    def metagraph(self):
        return self.graph

    def block(self) -> int:
        return 1000 + len(self.weights) * 100

    def weights_rate_limit(self) -> int:
        return 1

    def set_weights(self, wallet, uids, weights, version_key):
        self.weights.append((list(uids), list(weights), version_key))
        return True, "ok"


class TinyScorer:
    """A reward model in a few lines: 0.8 for any decoded mesh with faces (real RewardReports)."""

    def __init__(self) -> None:
        self.scored = 0

    def rig_for(self, step_seed=None, rig=None):
        return rig  # no secret rig: this stub draws nothing

    def score_batch(self, meshes, prompts, references=None, **options):
        self.scored += len(meshes)
        return [RewardReport(score=0.8 if len(mesh.faces) else 0.0, prompt=prompt, metric="cosine", aggregation="mean")
                for mesh, prompt in zip(meshes, prompts)]  # fmt: skip


def make_validator(net, tmp_path, rows, ports, scorer) -> tuple[Validator, ValidatorState, MinerClient]:
    graph = hand_metagraph(rows, ports=ports)
    config = ValidatorSettings(sample_size=64, timeout_s=TIMEOUT_S, alpha=0.5, step_interval_s=0.0, canary_every_steps=0,
                               state_path=tmp_path / "state.json")  # fmt: skip
    state = ValidatorState()
    rng = random.Random(1)
    client = MinerClient(net["validator"], max_response_bytes=CAP, max_concurrency=16)
    validator = Validator(config, wallet=net["validator"], chain=HandChain(graph), client=client,
                          reward_model=scorer, state=state, sampler=PromptSampler(["a red chair"], rng), rng=rng)
    return validator, state, client


def test_validator_step_scores_the_honest_miner_and_zeroes_the_hostile(net, tmp_path):
    me = net["validator"].hotkey.ss58_address
    rows = [(me, 100.0, True)] + [(net["hostile_hotkeys"][n], 0.0, False) for n in HOSTILE]
    rows.append((net["honest"], 0.0, False))
    ports = [free_port()] + [net["hostile"].ports[n] for n in HOSTILE] + [net["honest_port"]]
    scorer = TinyScorer()

    async def run():
        validator, state, client = make_validator(net, tmp_path, rows, ports, scorer)
        for uid in range(1, len(rows)):
            state.averages[uid] = 0.5
        try:
            result = await asyncio.wait_for(validator.step(), TIMEOUT_S + 10)
        finally:
            await client.aclose()
        return result, state

    result, state = asyncio.run(run())
    assert result.updated and result.fault is None
    statuses = {o.hotkey: o.status for o in result.outcomes}
    honest_uid = len(rows) - 1
    assert statuses[net["honest"]] == "ok"
    assert state.averages[honest_uid] == pytest.approx(0.5 * 0.5 + 0.5 * 0.8)  # rose from 0.5 to 0.65
    expected = {"gzip_bomb": "encoded", "oversize_declared": "oversize", "oversize_chunked": "oversize",
                "huge_header": "malformed", "trickle": "late", "trickle_head": "late", "hang": "late"}  # fmt: skip
    for uid, name in enumerate(HOSTILE, start=1):
        assert statuses[net["hostile_hotkeys"][name]] == expected[name], result.to_json()["miners"]
        assert state.averages[uid] == pytest.approx(0.25)  # scored 0: halved from 0.5
    assert scorer.scored == 1  # only the honest mesh reached the reward model
    assert 0 not in {o.uid for o in result.outcomes}  # never queries itself


def test_when_every_miner_is_unreachable_nobody_changes(net, tmp_path):
    me = net["validator"].hotkey.ss58_address
    rows = [(me, 100.0, True)] + [(net["hostile_hotkeys"][n], 0.0, False) for n in HOSTILE[:4]]
    ports = [free_port() for _ in rows]
    scorer = TinyScorer()

    async def run():
        validator, state, client = make_validator(net, tmp_path, rows, ports, scorer)
        state.averages.update({1: 0.9, 2: 0.1, 3: 0.5, 4: 0.0})
        before = dict(state.averages)
        try:
            result = await asyncio.wait_for(validator.step(), TIMEOUT_S + 10)
        finally:
            await client.aclose()
        return result, before, state

    result, before, state = asyncio.run(run())
    assert not result.updated
    assert result.fault and result.fault.startswith("NetworkUnavailable")
    assert [o.status for o in result.outcomes] == ["no_response"] * 4
    assert state.averages == before
    assert scorer.scored == 0
