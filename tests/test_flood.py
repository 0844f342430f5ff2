"""A low-stake validator floods a miner; a higher-stake validator is still served.

The real miner app (``MinerService`` + the stake-ordered ``GenerationQueue``) under real
uvicorn, real wallets, and the real validator client (``MinerClient``) for both callers.
Only the generator is cheap: 0.2 s per batch (``time.sleep``), then a pre-encoded tiny mesh
per prompt. The queue is instrumented (its ``submit`` wrapped), never replaced.

The flood: 400 concurrent signed requests from one registered, permitted, low-stake
validator, each asking for a 60 s deadline (the protocol's maximum); the miner caps
deadlines at ``max_timeout_s`` (8 s). Once the flood fills what it can of the queue, a
validator with more stake asks once; the flood keeps the queue full while it lasts, and a
full queue (24 one-prompt batches) takes 4.8 s to drain. Pinned:

- the higher-stake request is answered: 200 with a mesh that decodes, generated in one of
  the first two batches after it reached the queue although >= 4 flood requests were
  queued ahead of it (first-come order would serve them first);
- the queue never held more than ``max_queue`` requests (``queue.peak_queued``);
- the flood mostly got 429 (per-caller cap) or 503 (queue full / evicted / cannot finish
  in time), each with a ``Retry-After``; on a very busy box a few flood requests may sit
  past the 10 s freshness window before the miner reads them and get 401 (stale);
- the 60 s deadlines reached the queue capped at ``max_timeout_s`` (that no admitted request
  is kept past its deadline is pinned on a fake clock in ``tests/test_miner.py``).

Run twice: with ``max_in_flight_per_caller`` above what the queue holds, the queue cap is
what binds (503s, and ``peak_queued`` would pass ``max_queue`` without it); below it, the
per-caller cap binds (429s).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from text3d.miner.caller_policy import CallerPolicy
from text3d.miner.queue import GenerationQueue
from text3d.miner.app import MinerService, create_app
from text3d.validator.client import MinerClient, Target
from text3d.miner.nonce_store import SqliteNonceStore
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh
from text3d.protocol.wire import MAX_TIMEOUT_S, TextTo3DRequest, TextTo3DResponse
from tests.counting import until
from tests.loopback import ServedApp, hand_metagraph, make_wallet, tiny_mesh_payload

pytestmark = pytest.mark.integration

FLOOD = 400
BATCH_S = 0.2
MAX_QUEUE = 24
MAX_BATCH = 1  # one prompt a batch: a full queue takes MAX_QUEUE x BATCH_S = 4.8 s to drain
MAX_TIMEOUT_CAP_S = 8.0  # the miner's --miner.max_timeout_s (the flood asks for 60 s)


@pytest.mark.parametrize(
    "max_in_flight, binding",
    [
        (48, 503),  # more than the queue holds: the queue cap binds (full queue -> 503)
        (20, 429),  # fewer than the queue holds: the per-caller cap binds (429)
    ],
)
def test_low_stake_flood_cannot_starve_a_higher_stake_validator(tmp_path, max_in_flight, binding):
    root = tmp_path / "wallets"
    flooder, staked, miner = (make_wallet(root, name) for name in ("flooder", "staked", "miner"))
    metagraph = hand_metagraph([
        (flooder.hotkey.ss58_address, 2.0, True),  # registered, permit, low stake
        (staked.hotkey.ss58_address, 500.0, True),
        (miner.hotkey.ss58_address, 0.0, False),
    ])  # fmt: skip
    payload = tiny_mesh_payload()
    batches: list[tuple[float, list[str]]] = []  # (start, prompts) of every generated batch

    def work(prompts, seeds):
        batches.append((time.monotonic(), list(prompts)))
        time.sleep(BATCH_S)
        return [(payload, MeshFormat.DRACO) for _ in prompts]

    queue = GenerationQueue(work, ThreadPoolExecutor(max_workers=1), max_batch_size=MAX_BATCH, window_s=0.02,
                            max_queue=MAX_QUEUE, max_in_flight_per_caller=max_in_flight)  # fmt: skip
    service = MinerService(
        hotkey=miner.hotkey.ss58_address, policy=CallerPolicy(min_validator_stake=1.0), queue=queue,
        nonce_store=SqliteNonceStore(tmp_path / "nonces.sqlite"), max_timeout_s=MAX_TIMEOUT_CAP_S,
        deadline_margin_s=0.1, metagraph=metagraph,
    )  # fmt: skip
    granted: list[float] = []  # seconds each request reaching the queue was given, as the queue saw it
    reached: dict[str, float] = {}  # when the staked request reached the queue, and how many were queued
    waited: list[float] = []  # seconds from reaching the queue to its answer (or its drop)
    submit = queue.submit

    async def recording_submit(prompt, seed, deadline, *, caller, stake):
        now = time.monotonic()
        granted.append(deadline - now)
        if caller == staked.hotkey.ss58_address:
            reached.update(at=now, ahead=queue.queued)
        try:
            return await submit(prompt, seed, deadline, caller=caller, stake=stake)
        finally:
            waited.append(time.monotonic() - now)

    queue.submit = recording_submit  # the real queue, instrumented

    with ServedApp(create_app(service)) as served:
        target = Target(2, miner.hotkey.ss58_address, "127.0.0.1", served.port)

        async def scenario():
            flood_client = MinerClient(flooder, max_concurrency=FLOOD, max_connections=FLOOD)
            staked_client = MinerClient(staked)
            try:
                huge = [TextTo3DRequest(prompt="spam", seed=i, timeout_s=MAX_TIMEOUT_S) for i in range(FLOOD)]
                flood = [asyncio.ensure_future(flood_client.query(target, r, MAX_TIMEOUT_S)) for r in huge]
                full = min(MAX_QUEUE, max_in_flight - MAX_BATCH)  # what the flood can hold queued
                # the flood has filled what it can; it keeps it full while it lasts
                await until(lambda: queue.queued >= full, what=f"the flood filling {full} places of the queue")
                answer = await staked_client.query(  # it waits behind the flood's backlog to be read
                    target, TextTo3DRequest(prompt="a red chair", seed=1, timeout_s=10.0), 10.0
                )  # fmt: skip
                return answer, await asyncio.gather(*flood)
            finally:
                await flood_client.aclose()
                await staked_client.aclose()

        answer, flood = asyncio.run(scenario())

    assert answer.status == "ok", answer.detail
    assert answer.http_status == 200
    mesh = decode_mesh(TextTo3DResponse.from_http(answer.headers, answer.body).payload)
    assert len(mesh.faces) > 0
    # served ahead of the queued flood: in one of the first two batches started after it reached the
    # queue, where first-come order would have put it behind every flood request queued then
    assert reached["ahead"] >= 4, reached
    after = [prompts for start, prompts in batches if start >= reached["at"]]
    assert any("a red chair" in prompts for prompts in after[:2]), (reached, after[:4])

    assert queue.peak_queued <= MAX_QUEUE
    assert max(len(prompts) for _, prompts in batches) <= MAX_BATCH
    # the 60 s deadlines were capped at max_timeout_s before they reached the queue
    assert granted and max(granted) <= MAX_TIMEOUT_CAP_S

    codes: dict[object, int] = {}
    for a in flood:
        codes[a.http_status] = codes.get(a.http_status, 0) + 1
    overloaded = [a for a in flood if a.http_status in (429, 503)]
    # on a box this busy a flood request may also sit past the 10 s freshness window before the
    # miner reads it: 401 (stale) is a refusal too, just not an overload one
    assert len(overloaded) + codes.get(401, 0) >= 0.9 * FLOOD, codes
    assert len(overloaded) >= 0.5 * FLOOD, codes
    # the cap that binds in this configuration binds often; on a loaded machine more requests meet the
    # deadline refusal (503) first (seen: 69 of 400 at 429 with a load average of 10 on 2 cores)
    assert codes.get(binding, 0) >= 0.1 * FLOOD, codes
    assert all(a.status == "refused" for a in overloaded)
    assert all(a.headers.get("retry-after", "").isdigit() and int(a.headers["retry-after"]) >= 1 for a in overloaded)
    assert set(codes) <= {200, 401, 429, 503}, codes  # no 5xx crashes, no transport failures
    # that nothing admitted is kept past its deadline is pinned on a fake clock in tests/test_miner.py
    print(f"\nflood: {codes}, peak queued {queue.peak_queued}/{MAX_QUEUE}, batches {len(batches)}, "
          f"staked answered with {reached['ahead']} flood requests queued ahead, longest wait {max(waited):.2f}s")
