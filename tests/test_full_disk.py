"""A full disk never stops the validator, and never costs it what it had saved.

Rules pinned here, on a real 2 MB tmpfs holding the state file and the reports (a loop
file system when tmpfs cannot be mounted; skipped, saying so, only when neither can):
- before the state is saved, old reports are pruned to make room: evidence is
  expendable, the moving averages are not;
- the reports folder is capped by the free space as well as by ``reports_max_mb``;
- while the disk is full every step still scores and folds the scores into the
  averages; the failed save is logged and retried at the next step; the file on disk
  stays the last state that was saved (valid, never half-written), and no temporary
  file is left behind;
- once space returns the next step saves everything, and a restart resumes from it;
- temporary files of a save killed before its rename are removed at start.

The chain and the miners' answers are faked (the edges) and the RewardModel is a stand-in
returning real ``RewardReport`` objects with two 64 px views each (the scoring is not
under test), so the reports hold real PNGs and HTML.
"""

import asyncio
import errno
import logging
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from text3d.chain.base import Metagraph, NeuronInfo
from text3d.validator.client import MinerAnswer
from text3d.validator.prompts import PromptSampler
from text3d.validator.reports import StepReports
from text3d.settings import ValidatorSettings
from text3d.validator.state import ValidatorState
from text3d.validator.engine import Validator
from text3d.protocol.mesh_codec import MeshFormat
from text3d.protocol.wire import TextTo3DResponse
from text3d.reward.reporting.evidence import RewardReport
from tests.loopback import tiny_mesh_payload

OWN = "validator-hotkey"
MINERS = ["miner-a", "miner-b"]
PAYLOAD = tiny_mesh_payload(MeshFormat.DRACO)
HEADERS = {k.lower(): v for k, v in TextTo3DResponse(payload=PAYLOAD, format="draco", generation_time_s=0.1).headers().items()}


class Wallet:
    class hotkey:  # noqa: N801 -- bittensor.Wallet.hotkey.ss58_address
        ss58_address = OWN


class Chain:
    netuid = 1

    def __init__(self) -> None:
        self.hotkeys = [OWN, *MINERS]

    def metagraph(self) -> Metagraph:
        return Metagraph(netuid=1, block=100, neurons=tuple(
            NeuronInfo(uid=uid, hotkey=h, coldkey=f"c{uid}", stake=100.0 if h == OWN else 0.0,
                       validator_permit=h == OWN, axon_ip="127.0.0.1", axon_port=9000 + uid, last_update=0)
            for uid, h in enumerate(self.hotkeys)))

    def block(self) -> int:
        return 100

    def weights_rate_limit(self) -> int:
        return 1000  # weights are not under test: once is enough

    def set_weights(self, wallet, uids, weights, version_key):
        return True, "ok"


class Client:
    async def query_many(self, targets, requests, timeout_s):
        return [MinerAnswer(t.uid, "ok", http_status=200, elapsed_s=0.1, headers=dict(HEADERS), body=PAYLOAD,
                            bytes_received=len(PAYLOAD)) for t in targets]


def _mount(target: Path, size: str = "2m") -> str:
    """Mount a small file system at ``target``: tmpfs, else a loop ext4 image. Returns how, or skips."""
    target.mkdir(parents=True, exist_ok=True)
    tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True)
    if tmpfs.returncode == 0:
        return "tmpfs"
    image = target.parent / "disk.img"
    steps = [["truncate", "-s", "4M", str(image)], ["mkfs.ext4", "-q", "-F", str(image)],
             ["mount", "-o", "loop", str(image), str(target)]]
    for step in steps:
        if shutil.which(step[0]) is None or subprocess.run(step, capture_output=True).returncode != 0:
            pytest.skip(f"cannot mount a small file system here (tmpfs: {tmpfs.stderr.decode().strip()}; "
                        f"loop image: `{' '.join(step[:2])}` failed): the full-disk test needs root")
    return "loop"


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    _mount(mount_point)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write a ballast file until the file system says it is full."""
    ballast = disk / f"ballast{len(list(disk.glob('ballast*')))}"
    chunk = b"\0" * 4096
    with open(ballast, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    assert shutil.disk_usage(disk).free < 8192
    return ballast


class StubRewardModel:
    """Scores each mesh 0.6 or 0.9 (by prompt), with two noisy 64 px views: a few KB of PNG per miner."""

    def __init__(self, view_px: int = 64) -> None:
        self.rng = np.random.default_rng(0)
        self.view_px = view_px

    def rig_for(self, step_seed=None, rig=None):
        return rig  # no secret rig: this stub draws nothing

    def score_batch(self, meshes, prompts, references=None, **options):
        reports = []
        for prompt in prompts:
            px = self.view_px
            views = [Image.fromarray(self.rng.integers(0, 255, (px, px, 3), dtype=np.uint8)) for _ in range(2)]
            reports.append(RewardReport(score=0.6 if "chair" in prompt else 0.9, prompt=prompt, metric="cosine",
                                        aggregation="mean").attach_images(views))
        return reports


@pytest.fixture
def reward_model():
    return StubRewardModel()


def make_validator(disk: Path, reward_model, state: ValidatorState | None = None) -> Validator:
    config = ValidatorSettings(sample_size=8, alpha=0.5, canary_every_steps=0, state_path=disk / "state" / "validator_state.json",
                               step_interval_s=0)
    rng = random.Random(0)
    return Validator(config, wallet=Wallet(), chain=Chain(), client=Client(), reward_model=reward_model,
                     state=state or ValidatorState(), sampler=PromptSampler(["a red chair", "a blue mug"], rng),
                     rng=rng, reports=StepReports(disk / "reports", 50.0, min_free_mb=0.0))


def saved(disk: Path) -> ValidatorState:
    return ValidatorState.load(disk / "state" / "validator_state.json")


def temp_files(disk: Path) -> list[Path]:
    return sorted((disk / "state").glob(".*.tmp"))


def test_a_full_disk_never_stops_scoring_and_loses_nothing_saved(small_disk, reward_model, caplog):
    caplog.set_level(logging.INFO, logger="text3d")
    validator = make_validator(small_disk, reward_model)

    for _ in range(2):  # a healthy start: saved state, two report folders
        result = asyncio.run(validator.step())
        assert result.updated and all(o.status == "ok" for o in result.outcomes), result
    assert saved(small_disk).step == 2
    assert len(StepReports(small_disk / "reports", 50.0).step_folders()) == 2

    # The disk fills up (another process, a log): old reports make room for the state.
    fill(small_disk)
    result = asyncio.run(validator.step())
    assert result.updated
    assert saved(small_disk).step == 3, "pruning old reports should have made room for the state"
    assert small_disk / "reports" / "step_000001" not in StepReports(small_disk / "reports", 50.0).step_folders()

    # Full again, with nothing left to prune: scoring goes on, saving fails, nothing saved is lost.
    ballasts = [fill(small_disk)]
    for reports in StepReports(small_disk / "reports", 50.0).step_folders():
        shutil.rmtree(reports)
    ballasts.append(fill(small_disk))
    before = saved(small_disk)
    averages_seen = []
    for _ in range(3):
        result = asyncio.run(validator.step())
        assert result.updated and all(o.status == "ok" and o.report is not None for o in result.outcomes), result
        averages_seen.append(dict(validator.state.averages))
        on_disk = saved(small_disk)  # always a readable state, the last one saved
        assert on_disk.step == before.step and on_disk.averages == before.averages
        assert temp_files(small_disk) == []
    assert validator.state.step == before.step + 3  # ... while the validator kept counting and scoring
    assert all(set(seen) >= {1, 2} for seen in averages_seen)  # every miner's score was folded in
    failures = [r for r in caplog.records if "could not save the state" in r.getMessage()]
    assert len(failures) == 3 and all("retried at the next step" in r.getMessage() for r in failures)

    # Space returns: the next step saves everything, and a restart resumes from it.
    for ballast in ballasts:
        ballast.unlink()
    result = asyncio.run(validator.step())
    assert result.updated
    resumed = saved(small_disk)
    assert resumed.step == validator.state.step == before.step + 4
    assert resumed.averages == pytest.approx(validator.state.averages)
    assert any("state saved again after 3 failed saves" in r.getMessage() for r in caplog.records)
    assert (small_disk / "reports" / f"step_{resumed.step:06d}" / "step.json").is_file()


def test_reports_are_capped_by_free_space_as_well_as_size(small_disk):
    validator = make_validator(small_disk, StubRewardModel(view_px=128))  # ~0.2 MB of PNG a step
    reports = StepReports(small_disk / "reports", 500.0, min_free_mb=100.0)  # a cap far above the 2 MB disk
    validator.reports = reports
    keep_free = min(reports.min_free_bytes, shutil.disk_usage(small_disk).total // 10)
    for _ in range(15):
        result = asyncio.run(validator.step())
        assert result.updated
        assert shutil.disk_usage(small_disk).free >= keep_free - reports.last_step_bytes()
    assert 1 <= len(reports.step_folders()) < 15  # old steps went to make room, the newest stayed
    assert reports.step_folders()[-1].name == "step_000015"
    assert saved(small_disk).step == 15  # and the state never lacked room


def test_temporary_files_of_a_killed_save_are_removed_at_start(tmp_path):
    path = tmp_path / "validator_state.json"
    state = ValidatorState(averages={3: 0.25}, hotkeys={3: "h"}, step=7)
    state.save(path)
    leftovers = [tmp_path / f".{path.name}.k1ll3d.tmp", tmp_path / f".{path.name}.x9.tmp"]
    for leftover in leftovers:
        leftover.write_text('{"format_version": 1, "step": 8, "averag')  # a save cut short by SIGKILL
    unrelated = tmp_path / ".other.json.a.tmp"
    unrelated.write_text("not ours")
    loaded = ValidatorState.load(path)
    assert loaded.step == 7 and loaded.averages == {3: 0.25}
    assert not any(p.exists() for p in leftovers) and unrelated.exists()


