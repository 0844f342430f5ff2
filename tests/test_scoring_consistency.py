"""Validators agree: two processes that score the same mesh with the same step seed get
bit-identical scores (same secret rig, same distractors, same pixels, same embeddings).

Fails before this change only in the sense that there was no step seed to agree on: the
rig was fixed for everyone. Different step seeds give different rigs, hence (slightly)
different scores: the spread is reported, not hidden.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from text3d.reward.clip import ClipScorer
from text3d.reward.config import RewardConfig
from text3d.reward.model import RewardModel
from tests.meshes import coloured_sphere

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import json, sys
from text3d.reward.clip import ClipScorer
from text3d.reward.config import RewardConfig
from text3d.reward.model import RewardModel
from text3d.reward.tiny_clip import ensure_tiny_clip
from tests.meshes import coloured_sphere
name, weights = ensure_tiny_clip()
model = RewardModel(ClipScorer.from_pretrained(name, weights, device="cpu"), None,
                    config=RewardConfig(resolution_px=64))
report = model.score(coloured_sphere(3000, seed=2), "a colourful blob", step_seed=int(sys.argv[1]))
print(json.dumps({"score": report.score.hex(), "rig": report.rig, "distractors": report.distractors,
                  "sims": [v.clip_similarity.hex() for v in report.views]}))
"""


def _here(tiny_clip, seed: int) -> dict:
    clip = ClipScorer(tiny_clip.model, tiny_clip.preprocess, tiny_clip.tokenizer, model_name=tiny_clip.model_name,
                      pretrained=tiny_clip.pretrained, device="cpu")
    report = RewardModel(clip, None, config=RewardConfig(resolution_px=64)).score(
        coloured_sphere(3000, seed=2), "a colourful blob", step_seed=seed)
    return {"score": report.score.hex(), "rig": report.rig, "distractors": report.distractors,
            "sims": [v.clip_similarity.hex() for v in report.views]}


def test_two_processes_with_the_same_step_seed_agree_bit_for_bit(tiny_clip):
    env = {**os.environ, "PYTHONHASHSEED": "12345", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, "2024"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    other = json.loads(done.stdout.strip().splitlines()[-1])
    assert other == _here(tiny_clip, 2024)
    assert _here(tiny_clip, 2025)["rig"] != other["rig"]
