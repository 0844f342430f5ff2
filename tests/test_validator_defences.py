"""The validator's incentive defences, wired into a step (issue 10's validator side).

Attacks, each of which paid on the previous main:
- three hotkeys answering one mesh (same bytes; re-encoded as PLY; as GLB with permuted
  vertices) were each paid a third: now the earliest complete answer earns, the copies 0
  with the reason in the report;
- one mesh returned for different prompts was scored every time: now the repeat scores 0;
- a captioner answering fluent nonsense halved every average: now the canary fails and
  nobody's average changes.
Also pinned: the step records its seed and secret rig (so a score can be reproduced), each
step's prompt comes from the composed source, and finney/test refuse a changed scoring
protocol or a validator without a captioner before touching a wallet.

The chain and the network are faked at their edges (``tests.test_validator_unit``); the
scorer is a stand-in that attaches the REAL ``text3d.reward.defences.fingerprint`` of each decoded mesh,
so the copycat judgement is the production one.
"""

import asyncio
import random
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from text3d.validator.client import MinerAnswer
from text3d.validator.prompts import ComposedPrompts, MixedPrompts, PromptSampler
from text3d.validator.state import ValidatorState
from text3d.validator.engine import Validator
from text3d.protocol.errors import EXIT_CONFIG
from text3d.protocol.mesh_codec import MeshFormat, encode_mesh
from text3d.protocol.wire import TextTo3DResponse
from text3d.reward.defences.canary import CanaryExpectations
from text3d.reward.errors import CaptionerUnavailable
from text3d.reward.defences.fingerprint import fingerprint
from text3d.reward.reporting.evidence import RewardReport
from tests.test_validator_unit import OWN_HOTKEY, REPO, FakeChain, FakeWallet, ValidatorSettings


def coloured(mesh: trimesh.Trimesh, rgb=(180, 90, 40)) -> trimesh.Trimesh:
    mesh.visual.vertex_colors = np.tile(np.array([*rgb, 255], dtype=np.uint8), (len(mesh.vertices), 1))
    return mesh


def permuted(mesh: trimesh.Trimesh, seed: int = 0) -> trimesh.Trimesh:
    order = np.random.default_rng(seed).permutation(len(mesh.vertices))
    inverse = np.argsort(order)
    colours = np.asarray(mesh.visual.vertex_colors)[order]
    return trimesh.Trimesh(mesh.vertices[order], inverse[mesh.faces], vertex_colors=colours, process=False)


CHAIR = coloured(trimesh.creation.annulus(r_min=0.3, r_max=0.8, height=0.5, sections=48))
TORUS = coloured(trimesh.creation.torus(major_radius=0.7, minor_radius=0.2), (60, 120, 200))
BOX = coloured(trimesh.creation.box(extents=(1.0, 0.6, 0.4)), (200, 200, 60))
CYLINDER = coloured(trimesh.creation.cylinder(radius=0.3, height=1.2, sections=32), (90, 160, 90))


def answer(uid: int, mesh: trimesh.Trimesh, fmt: MeshFormat, elapsed_s: float) -> MinerAnswer:
    payload = encode_mesh(mesh, fmt)
    headers = {k.lower(): v for k, v in TextTo3DResponse(payload=payload, format=fmt, generation_time_s=0.1).headers().items()}
    return MinerAnswer(uid, "ok", http_status=200, elapsed_s=elapsed_s, headers=headers, body=payload,
                       bytes_received=len(payload))


class ScriptedClient:
    """The network edge: per step, hotkey -> (mesh, format, elapsed_s)."""

    def __init__(self, script):
        self.script = script
        self.step = 0

    async def query_many(self, targets, requests, timeout_s):
        plan = self.script[min(self.step, len(self.script) - 1)]
        self.step += 1
        return [answer(t.uid, *plan[t.hotkey]) for t in targets]


class FingerprintingScorer:
    """Scores every mesh 0.8 and attaches its real fingerprint; ``canary`` decides the canary."""

    def __init__(self, canary_ok=True):
        self.canary_ok = canary_ok
        self.options = []

    def score_batch(self, meshes, prompts, references=None, **options):
        self.options.append(options)
        return [RewardReport(score=0.8, prompt=p, metric="cosine", aggregation="mean").attach_fingerprint(fingerprint(m))
                for m, p in zip(meshes, prompts)]

    def score(self, mesh, prompt, **options):
        if not self.canary_ok:
            raise CaptionerUnavailable("the captioner answered nonsense")
        raise AssertionError("only the failing canary is scripted here")

    def rig_for(self, step_seed=None, rig=None):
        from text3d.reward.render.camera import canonical_rig, draw_secret_rig
        from text3d.reward.scoring_protocol import PROTOCOL

        if rig is not None:
            return rig
        return canonical_rig(PROTOCOL.rig) if step_seed is None else draw_secret_rig(PROTOCOL, step_seed)


def make(tmp_path, hotkeys, script, *, scorer=None, canary_every=0, sampler=None, state=None):
    chain = FakeChain(hotkeys)
    config = ValidatorSettings(sample_size=16, alpha=0.5, state_path=tmp_path / "state.json", step_interval_s=0,
                               canary_every_steps=canary_every)
    rng = random.Random(7)
    validator = Validator(config, wallet=FakeWallet(), chain=chain, client=ScriptedClient(script),
                          reward_model=scorer or FingerprintingScorer(), state=state or ValidatorState(),
                          sampler=sampler or PromptSampler(["a red chair", "a blue mug", "a green lamp"], rng), rng=rng,
                          canary=CanaryExpectations.for_models("tiny"))
    return validator, chain


def run_step(validator):
    return asyncio.run(validator.step())


def by_hotkey(result):
    return {o.hotkey: o for o in result.outcomes}


def test_copies_of_one_object_earn_once_for_the_earliest_answer(tmp_path):
    hotkeys = [OWN_HOTKEY, "copy-ply", "original", "copy-glb-permuted", "honest-other"]
    script = [{
        "original": (CHAIR, MeshFormat.DRACO, 1.0),
        "copy-ply": (CHAIR, MeshFormat.PLY, 1.4),  # same object re-encoded, later
        "copy-glb-permuted": (permuted(CHAIR), MeshFormat.GLB, 2.0),
        "honest-other": (TORUS, MeshFormat.DRACO, 3.0),
    }]
    validator, _ = make(tmp_path, hotkeys, script)
    outcomes = by_hotkey(run_step(validator))
    assert outcomes["original"].status == "ok" and outcomes["original"].score == pytest.approx(0.8)
    assert outcomes["honest-other"].status == "ok" and outcomes["honest-other"].score == pytest.approx(0.8)
    for copy in ("copy-ply", "copy-glb-permuted"):
        assert outcomes[copy].status == "duplicate", outcomes[copy]
        assert outcomes[copy].score == 0.0
        assert f"uid {outcomes['original'].uid}" in outcomes[copy].detail
    averages = validator.state.averages
    assert averages[outcomes["original"].uid] == pytest.approx(0.4)
    assert averages[outcomes["copy-ply"].uid] == 0.0 and averages[outcomes["copy-glb-permuted"].uid] == 0.0


def test_the_step_judges_copies_by_the_copycat_thresholds_of_its_own_scoring_settings(tmp_path):
    """The fingerprint_* flags enter the scoring protocol's digest; the validator built by
    ``text3d validator`` (``open_state``) judges duplicates and repeats by them too. Before, the
    step always used the pinned protocol's rule, so a devnet validator with other thresholds
    reported a digest it did not apply. Pinned networks refuse other thresholds at start-up
    (``check_scoring_protocol``), so there the two are the same rule."""
    from text3d.settings import load_settings
    from text3d.validator.main import open_state

    hotkeys = [OWN_HOTKEY, "chair", "torus"]
    script = [{"chair": (CHAIR, MeshFormat.DRACO, 1.0), "torus": (TORUS, MeshFormat.DRACO, 2.0)}]
    anything_goes = ["--reward.fingerprint_max_distance", "1000", "--reward.fingerprint_max_smooth_distance", "1000",
                     "--reward.fingerprint_max_aspect_change", "1000"]
    for name, flags, torus_status in (("pinned", [], "ok"), ("loose", anything_goes, "duplicate")):
        settings = load_settings("validator", ["--models", "tiny", *flags])
        config = settings.validator.model_copy(update={"state_path": tmp_path / f"{name}.json"})
        state = open_state(settings, config)
        assert state.answers.rule.geometry_max == settings.reward.fingerprint_max_distance
        assert state.answers.rule.smooth_max == settings.reward.fingerprint_max_smooth_distance
        validator, _ = make(tmp_path, hotkeys, script, state=state)
        assert by_hotkey(run_step(validator))["torus"].status == torus_status, name


def test_the_same_object_for_different_prompts_scores_zero_after_the_first(tmp_path):
    hotkeys = [OWN_HOTKEY, "lazy", "honest"]
    script = [
        {"lazy": (BOX, MeshFormat.DRACO, 1.0), "honest": (CHAIR, MeshFormat.DRACO, 1.0)},
        {"lazy": (BOX, MeshFormat.PLY, 1.0), "honest": (TORUS, MeshFormat.DRACO, 1.0)},
        {"lazy": (permuted(BOX, 3), MeshFormat.GLB, 1.0), "honest": (CYLINDER, MeshFormat.DRACO, 1.0)},
    ]
    sampler = PromptSampler(["a red chair", "a blue mug", "a green lamp", "a wooden boat"], random.Random(1))
    validator, _ = make(tmp_path, hotkeys, script, sampler=sampler)
    prompts, statuses = [], []
    for _ in range(3):
        result = run_step(validator)
        prompts.append(result.task.prompt)
        statuses.append((by_hotkey(result)["lazy"].status, by_hotkey(result)["honest"].status))
    assert len(set(prompts)) > 1, prompts
    first = statuses[0]
    assert first == ("ok", "ok")
    for (lazy, honest), prompt in zip(statuses[1:], prompts[1:]):
        if prompt != prompts[0]:
            assert lazy == "repeat", statuses  # the box again, for another prompt
    assert all(honest == "ok" for _, honest in statuses)  # a new object for every prompt earns every time


def test_a_step_packed_with_deformed_variants_of_one_generation_pays_one_answer(tmp_path):
    """Issue 17's packing attack: 12 hotkeys answer stretched and tilted variants of one
    blob (mutually different-looking, in three wire formats); before, every one was paid."""
    from tests.copycat_corpus import blob_seeds, packing_variants

    blob, honest_a, honest_b = blob_seeds([0, 5, 9], faces=8000)
    variants = packing_variants(blob, 12)
    formats = [MeshFormat.DRACO, MeshFormat.PLY, MeshFormat.GLB]
    hotkeys = [OWN_HOTKEY] + [f"packed-{i}" for i in range(12)] + ["honest-a", "honest-b"]
    plan = {f"packed-{i}": (v, formats[i % 3], 2.0 + 0.1 * ((i * 7) % 12)) for i, v in enumerate(variants)}
    plan |= {"honest-a": (honest_a, MeshFormat.DRACO, 1.5), "honest-b": (honest_b, MeshFormat.DRACO, 4.0)}
    validator, _ = make(tmp_path, hotkeys, [plan])
    outcomes = by_hotkey(run_step(validator))
    packed = {h: o for h, o in outcomes.items() if h.startswith("packed-")}
    earliest = min(packed.values(), key=lambda o: o.response_s)
    assert [o.hotkey for o in packed.values() if o.status == "ok"] == [earliest.hotkey]
    assert all(o.status == "duplicate" and f"uid {earliest.uid}" in o.detail for o in packed.values()
               if o is not earliest)
    assert outcomes["honest-a"].status == "ok" and outcomes["honest-b"].status == "ok"


def test_copies_wearing_decoys_beside_or_far_off_earn_once(tmp_path):
    """A copycat hangs a small chip beside each copy of one blob, or far off (0.01-3 % of the
    area, 2 to 1,000 sizes away, some crumpled, some with a stretch and a turn), and sends them
    as PLY and GLB: under spec 0.1.6 the decoy moved each copy's fingerprint frame so far that
    no pair reached the verdict, and every hotkey was paid. Now the earliest earns."""
    from tests.copycat_corpus import add_decoy, blob_seeds, stretch, turn

    blob, honest_a, honest_b = blob_seeds([0, 5, 9], faces=8000)
    decoys = [(2.0, 0.03, False), (3.0, 0.01, True), (10.0, 0.001, False), (1000.0, 0.0001, False),
              (2.5, 0.02, True), (50.0, 0.005, False)]
    copies = []
    for i, (distance, share, crumpled) in enumerate(decoys):
        copy = add_decoy(blob, distance, share, np.random.default_rng(i), crumpled)
        copies.append(turn(stretch(copy, (1.1, 1.0, 0.9)), 40.0 * i) if i % 2 else copy)
    assert_the_earliest_copy_earns(tmp_path, "decoyed", copies, honest_a, honest_b)


def assert_the_earliest_copy_earns(tmp_path, prefix: str, copies: list, honest_a, honest_b) -> None:
    """One step: hotkeys ``{prefix}-0``, ``{prefix}-1``, ... answer ``copies`` in that order of
    arrival (PLY and GLB in turn), two honest hotkeys answer in Draco, one before them and one
    after. Only ``{prefix}-0`` earns, every other copy is its duplicate, and both honest answers earn."""
    formats = [MeshFormat.PLY, MeshFormat.GLB]
    hotkeys = [OWN_HOTKEY] + [f"{prefix}-{i}" for i in range(len(copies))] + ["honest-a", "honest-b"]
    plan = {f"{prefix}-{i}": (c, formats[i % 2], 2.0 + 0.2 * i) for i, c in enumerate(copies)}
    plan |= {"honest-a": (honest_a, MeshFormat.DRACO, 1.5), "honest-b": (honest_b, MeshFormat.DRACO, 4.0)}
    validator, _ = make(tmp_path, hotkeys, [plan])
    outcomes = by_hotkey(run_step(validator))
    sent = {h: o for h, o in outcomes.items() if h.startswith(f"{prefix}-")}
    first = f"{prefix}-0"
    assert [h for h, o in sent.items() if o.status == "ok"] == [first], {h: o.status for h, o in outcomes.items()}
    assert all(o.status == "duplicate" and f"uid {sent[first].uid}" in o.detail for h, o in sent.items() if h != first)
    assert outcomes["honest-a"].status == "ok" and outcomes["honest-b"].status == "ok"


def test_copies_with_a_second_object_beside_them_earn_once(tmp_path):
    """A copycat sets a second object beside each copy of one blob, a grey ball of 12-45 % of the
    area (too large for the body trim: a scene's second object stays in the body), some joined
    to the blob by a bar, some stretched and turned; the plain copy arrives later. Under spec
    0.1.8 each copy's body was another object and every hotkey was paid; under 0.1.9 the two
    with a ball of 40 % and 45 % (more than a core of three quarters can leave out) were a second
    group, and paid. Now each answer's core parts are judged too (part against body, part against
    part), from cores of three quarters and of 55 % of the area: the earliest earns."""
    from tests.copycat_corpus import add_object, blob_seeds, stretch, turn

    blob, honest_a, honest_b = blob_seeds([0, 5, 9], faces=8000)
    objects = [(1.5, 0.15, False), (2.0, 0.2, True), (3.0, 0.12, False), (1.5, 0.2, True), (2.0, 0.4, False),
               (3.0, 0.45, True)]
    copies = []
    for i, (distance, share, bridged) in enumerate(objects):
        copy = add_object(blob, distance, share, np.random.default_rng(30 + i), bridged)
        copies.append(turn(stretch(copy, (0.9, 1.0, 1.15)), 70.0 * i) if i % 2 else copy)
    copies.append(turn(blob, 25.0))  # the object alone, after the scenes
    assert_the_earliest_copy_earns(tmp_path, "scene", copies, honest_a, honest_b)


def test_a_deformed_object_for_another_prompt_is_a_repeat_even_after_a_restart_and_many_steps(tmp_path):
    """The repeat memory is per miner (its last answers, not the validator's last N steps) and
    saved with the state: stretched, tilted and recoloured, the miner's old answer for a new
    prompt scores 0 -- after a restart and 100 steps in which it was not asked (before: the
    memory lived only in the process, for 32 steps, and saw through no deformation)."""
    from tests.copycat_corpus import box_chair, recolour, stretch, turn

    chair = box_chair()
    disguised = recolour(turn(stretch(chair, (1.2, 1.0, 0.85)), 8.0, (1, 0, 0)), np.random.default_rng(4))
    hotkeys = [OWN_HOTKEY, "lazy", "honest"]
    first, _ = make(tmp_path, hotkeys, [{"lazy": (chair, MeshFormat.DRACO, 1.0), "honest": (TORUS, MeshFormat.DRACO, 1.0)}],
                    sampler=PromptSampler(["a red chair"], random.Random(1)))
    assert {o.status for o in run_step(first).outcomes} == {"ok"}
    assert len(ValidatorState.load(tmp_path / "state.json").answers.answers("lazy")) == 1
    state = ValidatorState.load(tmp_path / "state.json")
    state.step += 100  # a hundred steps in which "lazy" was not sampled
    again, _ = make(tmp_path, hotkeys, [{"lazy": (disguised, MeshFormat.GLB, 1.0),
                                         "honest": (CYLINDER, MeshFormat.DRACO, 1.0)}],
                    sampler=PromptSampler(["a golden crown"], random.Random(2)))
    again.state = state
    outcomes = by_hotkey(run_step(again))
    assert outcomes["lazy"].status == "repeat" and outcomes["lazy"].score == 0.0
    assert "step 1" in outcomes["lazy"].detail
    assert outcomes["honest"].status == "ok"


def test_a_failing_canary_voids_the_step(tmp_path):
    hotkeys = [OWN_HOTKEY, "good"]
    script = [{"good": (CHAIR, MeshFormat.DRACO, 1.0)}]
    validator, chain = make(tmp_path, hotkeys, script, scorer=FingerprintingScorer(canary_ok=False), canary_every=1)
    result = run_step(validator)
    assert not result.updated and "canary failed" in result.fault and "nonsense" in result.fault
    assert result.canary and "nonsense" in result.canary
    assert validator.state.averages == {}  # nobody's average changed
    assert chain.weight_calls == []
    again = run_step(validator)  # a failed canary is checked again at the very next step
    assert again.canary is not None and not again.updated


def test_the_step_records_its_seed_and_rig_and_leaves_the_contrast_prompts_to_the_protocol(tmp_path):
    """The prompt source chooses the prompt only: the scorer draws the contrast prompts itself
    from the pinned protocol's pool (was: the source's own distractors went to the scorer)."""
    hotkeys = [OWN_HOTKEY, "good"]
    scorer = FingerprintingScorer()
    validator, _ = make(tmp_path, hotkeys, [{"good": (CHAIR, MeshFormat.DRACO, 1.0)}], scorer=scorer,
                        sampler=PromptSampler(MixedPrompts(), random.Random(5)))
    result = run_step(validator)
    data = result.to_json()
    assert isinstance(data["step_seed"], int) and data["rig"] is not None
    assert scorer.options[0]["step_seed"] == result.step_seed
    assert scorer.options[0].get("distractors") is None
    second = run_step(validator)
    assert second.step_seed != result.step_seed and second.rig != result.rig  # fresh secret views each step


def test_prompts_come_from_a_source_no_lookup_table_holds(tmp_path):
    validator, _ = make(tmp_path, [OWN_HOTKEY, "good"], [{"good": (CHAIR, MeshFormat.DRACO, 1.0)}],
                        sampler=PromptSampler(MixedPrompts(), random.Random(3)))
    prompts = {run_step(validator).task.prompt for _ in range(6)}
    assert len(prompts) == 6
    assert ComposedPrompts().size >= 10**6


@pytest.mark.parametrize("flags, fragment", [
    (["--subtensor.network", "test"], "must caption its views"),
    (["--subtensor.network", "test", "--captioner", "http://127.0.0.1:9", "--reward.n_views", "4"], "differs from the pinned"),
])
def test_pinned_networks_refuse_a_changed_protocol_or_no_captioner(flags, fragment):
    done = subprocess.run([sys.executable, "-m", "neurons.validator", "--netuid", "3", *flags], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert fragment in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_flat_answers_cannot_take_the_step_down(tmp_path):
    """Two miners answer with one planar mesh (every vertex at z = 0), the second turned and
    stretched in its plane. On the previous main, comparing them raised ``LinAlgError: Singular
    matrix`` (the affine fit of two flat clouds leaves one row of the map at zero, and the ICP
    inverted it) inside the step's copycat check: the whole step failed, so any miner could void
    every miner's step with two flat answers (or one, sent twice for two prompts, through its own
    repeat check). Now the step completes: the copy is a duplicate, and the honest torus earns."""
    from tests.copycat_corpus import flat_sheet, stretch, turn

    sheet = flat_sheet(0)
    hotkeys = [OWN_HOTKEY, "flat", "flat-copy", "honest"]
    script = [{"flat": (sheet, MeshFormat.PLY, 1.0),
               "flat-copy": (turn(stretch(sheet, (1.2, 0.9, 1.0)), 30.0, (0, 0, 1)), MeshFormat.GLB, 2.0),
               "honest": (TORUS, MeshFormat.DRACO, 3.0)}]
    validator, _ = make(tmp_path, hotkeys, script)
    result = run_step(validator)
    outcomes = by_hotkey(result)
    assert result.updated and result.fault is None
    assert outcomes["flat"].status == "ok" and outcomes["honest"].status == "ok"
    assert outcomes["flat-copy"].status == "duplicate" and f"uid {outcomes['flat'].uid}" in outcomes["flat-copy"].detail
