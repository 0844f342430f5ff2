"""The validator's organic work: which miners are asked, how long the others are waited for, how
copies and the winner are decided, what is uploaded, and whether averages move.

Rules pinned here:
- selection: k serving miners, never ourselves; the first always one of the top ``top_n`` by
  moving average (any serving miner while none has scored); the rest drawn from the others;
- seeds: a caller's seed gives each miner its own, reproducible seed; none gives fresh seeds;
- once one miner answered, the others get ``first_answer_grace_s`` more, then count as late
  (real signed requests to loopback miners, through ``step.query_miners``);
- copies: answers that are one object earn once, for the earliest (``cluster_copies``);
- the winner is the best valid answer, ties to the earlier; the framed result round-trips
  through the gateway's parser with the mesh in the asked format, a GLB preview and the views;
- organic scores leave every average alone unless ``count_toward_weights``.
"""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest
import trimesh
from fastapi import FastAPI
from fastapi.responses import Response
from PIL import Image

from tests.loopback import ServedApp, hand_metagraph, make_wallet, tiny_mesh, tiny_mesh_payload
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh
from text3d.protocol.organic import OrganicJob, parse_result
from text3d.protocol.wire import MAX_SEED, ROUTE, TextTo3DResponse
from text3d.reward.defences.fingerprint import fingerprint
from text3d.reward.reporting.evidence import RewardReport, ViewReport
from text3d.validator import step as phases
from text3d.validator.client import MinerClient
from text3d.validator.organic import (
    OrganicConfig, OrganicWorker, collapse_copies, organic_seeds, pick_winner, result_body, select_organic_miners,
)
from text3d.validator.outcomes import MinerOutcome
from text3d.validator.prompts import Task

OWN = "5OwnValidatorHotkey"


def metagraph(n: int = 9, not_serving=()):
    rows = [(OWN if uid == 0 else f"5Miner{uid}", 0.0, uid == 0) for uid in range(n)]
    ports = [0 if uid in not_serving else 9000 + uid for uid in range(n)]
    return hand_metagraph(rows, ports=ports)


def test_the_first_miner_is_always_a_top_miner_and_the_rest_are_drawn_from_the_others():
    graph = metagraph(not_serving=(8,))
    averages = {3: 0.9, 5: 0.8, 2: 0.1, 8: 0.95}  # uid 8 is best but not serving
    rng = random.Random(1)
    firsts, others = set(), set()
    for _ in range(300):
        uids = select_organic_miners(graph, OWN, averages, k=4, top_n=2, rng=rng)
        assert len(uids) == len(set(uids)) == 4 and 0 not in uids and 8 not in uids
        firsts.add(uids[0])
        others.update(uids[1:])
    assert firsts == {3, 5}
    assert others == {1, 2, 3, 4, 5, 6, 7}  # every other serving miner gets its chance


def test_before_anyone_scored_every_serving_miner_can_be_first_and_few_miners_are_all_asked():
    rng = random.Random(2)
    firsts = {select_organic_miners(metagraph(), OWN, {}, 4, 2, rng)[0] for _ in range(300)}
    assert firsts == set(range(1, 9))
    assert sorted(select_organic_miners(metagraph(n=3), OWN, {1: 0.5}, 4, 2, rng)) == [1, 2]
    assert select_organic_miners(metagraph(n=1), OWN, {}, 4, 2, rng) == []


def test_a_callers_seed_gives_each_miner_its_own_reproducible_seed():
    hotkeys = ["5MinerA", "5MinerB", "5MinerC"]
    seeds = organic_seeds(42, hotkeys, random.Random(0))
    assert seeds == organic_seeds(42, hotkeys, random.Random(99))  # the rng plays no part
    assert len(set(seeds)) == 3 and all(0 <= s <= MAX_SEED for s in seeds)
    assert organic_seeds(43, hotkeys, random.Random(0)) != seeds
    fresh = organic_seeds(None, hotkeys, random.Random(0))
    assert fresh != organic_seeds(None, hotkeys, random.Random(1))


def _miner_app(delay_s: float) -> FastAPI:
    app = FastAPI()
    payload = tiny_mesh_payload(MeshFormat.DRACO)

    @app.post(ROUTE)
    async def answer() -> Response:
        await asyncio.sleep(delay_s)
        response = TextTo3DResponse(payload=payload, format=MeshFormat.DRACO, generation_time_s=delay_s)
        return Response(response.payload, headers=response.headers())

    return app


def test_other_miners_get_the_grace_after_the_first_valid_answer_then_count_as_late(tmp_path):
    wallet = make_wallet(tmp_path, "validator")
    with ServedApp(_miner_app(0.0)) as fast, ServedApp(_miner_app(2.5)) as slow:
        rows = [(wallet.hotkey.ss58_address, 1.0, True), ("5Fast", 0.0, False), ("5Slow", 0.0, False)]
        graph = hand_metagraph(rows, ports=[1, fast.port, slow.port])

        async def ask(grace_s):
            client = MinerClient(wallet)
            try:
                return await phases.query_miners(client, graph, [1, 2], Task("a red chair", 1), [1, 2], 20.0,
                                                 first_answer_grace_s=grace_s)
            finally:
                await client.aclose()

        cut = asyncio.run(ask(0.2))
        assert [a.status for a in cut] == ["ok", "late"]
        assert "within 0.2s of the first valid one" in cut[1].detail
        waited = asyncio.run(ask(None))  # synthetic steps: everyone gets the whole timeout
        assert [a.status for a in waited] == ["ok", "ok"]


def _outcome(uid: int, mesh: trimesh.Trimesh, score: float, response_s: float) -> MinerOutcome:
    report = RewardReport(score=score, prompt="a chair", metric="cosine", aggregation="mean",
                          views=[ViewReport(index=0, caption="a red chair", clip_similarity=0.3, clip_probability=0.6,
                                            best_reject="noise", best_reject_similarity=0.1, rejected=False,
                                            clip_score=0.6, caption_similarity=0.7)])
    report.attach_fingerprint(fingerprint(mesh))
    report.attach_images([Image.fromarray(np.full((16, 16, 3), 40 * uid, dtype=np.uint8))])
    return MinerOutcome(uid=uid, hotkey=f"5Miner{uid}", status="ok", score=score, seed=uid, response_s=response_s,
                        report=report)


def test_copies_earn_once_for_the_earliest_and_the_best_valid_answer_wins():
    sphere = tiny_mesh()
    box = trimesh.creation.box()
    box.visual.vertex_colors = np.tile([20, 200, 40, 255], (len(box.vertices), 1)).astype(np.uint8)
    torus = trimesh.creation.torus(1.0, 0.3)
    torus.visual.vertex_colors = np.tile([20, 40, 200, 255], (len(torus.vertices), 1)).astype(np.uint8)
    outcomes = [_outcome(1, sphere, 0.9, 2.0), _outcome(2, sphere.copy(), 0.9, 1.0), _outcome(3, box, 0.6, 0.5),
                _outcome(4, torus, 0.6, 0.4)]
    collapse_copies(outcomes, "a chair")
    assert [o.status for o in outcomes] == ["duplicate", "ok", "ok", "ok"]  # uid 2 answered the sphere first
    assert outcomes[0].score == 0.0 and "uid 2" in outcomes[0].detail
    assert pick_winner(outcomes).uid == 2
    assert pick_winner(outcomes[2:]).uid == 4  # a tie goes to the earlier answer
    assert pick_winner([MinerOutcome(uid=5, hotkey="5M", status="late")]) is None


@pytest.mark.parametrize("fmt", ["glb", "ply", "draco"])
def test_the_uploaded_result_round_trips_through_the_gateways_parser(fmt):
    winner = _outcome(2, tiny_mesh(), 0.8, 1.0)
    loser = MinerOutcome(uid=3, hotkey="5Miner3", status="invalid", detail="not a mesh")
    job = OrganicJob(id="J" * 22, prompt="a chair", seed=None, format=fmt, lease_token="L" * 22, lease_s=60)
    result = parse_result(result_body(job, winner, tiny_mesh(), [winner, loser]), asked_format=fmt)
    assert decode_mesh(result.parts["mesh"]).faces.shape == tiny_mesh().faces.shape
    assert ("preview.glb" in result.parts) == (fmt != "glb")
    assert len(result.views) == 1 and result.views[0].startswith(b"\x89PNG")
    evidence = result.manifest.evidence
    assert evidence.winner_uid == 2 and evidence.score == pytest.approx(0.8) and evidence.miner_seed == 2
    assert [(c.uid, c.status, c.winner) for c in evidence.candidates] == [(2, "ok", True), (3, "invalid", False)]
    assert evidence.views[0].caption == "a red chair"


class _Link:
    """The gateway at the network's edge: records what the worker sends."""

    def __init__(self) -> None:
        self.uploads, self.given_up = [], []

    async def submit(self, job, body):
        self.uploads.append((job, body))
        return 200

    async def give_up(self, job, reason):
        self.given_up.append(reason)


class _Miners:
    """Every miner answers at once with the same small mesh (the miners' side of the network edge)."""

    async def query(self, target, request, timeout_s):
        from tests.test_full_disk import HEADERS, PAYLOAD
        from text3d.validator.client import MinerAnswer

        return MinerAnswer(target.uid, "ok", http_status=200, elapsed_s=0.1 * target.uid, headers=dict(HEADERS),
                           body=PAYLOAD, bytes_received=len(PAYLOAD))


@pytest.mark.parametrize("counts", [False, True])
def test_organic_scores_move_averages_only_when_asked(tmp_path, counts):
    from tests.test_full_disk import StubRewardModel, make_validator

    validator = make_validator(tmp_path, StubRewardModel())
    validator.client = _Miners()
    link = _Link()
    worker = OrganicWorker(OrganicConfig(url="http://gateway", count_toward_weights=counts, wait_s=1.0), link,
                           random.Random(0))
    job = OrganicJob(id="J" * 22, prompt="a red chair", seed=5, format="glb", lease_token="L" * 22, lease_s=60)
    asyncio.run(worker.work(validator, job))
    assert len(link.uploads) == 1 and not link.given_up
    parsed = parse_result(link.uploads[0][1], asked_format="glb")
    assert parsed.manifest.score == pytest.approx(0.6)  # the stub scores prompts with "chair" 0.6
    assert validator.state.averages == ({1: 0.3, 2: 0.3} if counts else {})
