"""Validators agree: every input that changes a score is a function of the prompt, the step
seed and the pinned protocol -- never of a validator's own prompt settings.

Before: the step's contrast prompts came from the validator's prompt source
(``--validator.prompts`` shipped, composed or mixed, or an LLM), so two validators with
different prompt settings scored the same mesh, prompt and step seed differently. Now the
scorer draws them from the pinned protocol's distractor pool (``text3d.reward.clip.
draw_distractors``). Two validator PROCESSES, each built from its own flags by the
production composition root, run one step on the same mesh and prompt with the same step
seed: the scores are bit-identical and the contrast prompts the same, from the protocol's
pool.
"""

import json
import subprocess
import sys

import pytest

from tests.meshes import coloured_sphere
from text3d.reward.clip import draw_distractors
from text3d.reward.scoring_protocol import PROTOCOL

pytestmark = pytest.mark.integration

PROMPT = "a red wooden chair"


def _step(tmp_path, name, *flags):
    out = tmp_path / f"{name}.json"
    subprocess.run([sys.executable, "-m", "tests.score_one_step", str(out), str(tmp_path / "mesh.ply"), PROMPT,
                    *flags], check=True, timeout=300)
    return json.loads(out.read_text())


def test_two_validators_with_different_prompt_settings_score_bit_identically(tmp_path):
    coloured_sphere(4000, seed=3).export(tmp_path / "mesh.ply")
    shipped = _step(tmp_path, "shipped", "--validator.prompts", "shipped")
    composed_llm = _step(tmp_path, "llm", "--validator.prompts", "composed",
                         "--validator.prompts_llm_url", "http://127.0.0.1:9")  # an LLM source (down: its fallback)
    assert (shipped["source"], composed_llm["source"]) == ("ShippedPrompts", "LLMPrompts")
    assert shipped["fault"] is None and composed_llm["fault"] is None
    assert shipped["step_seed"] == composed_llm["step_seed"]
    assert [o["status"] for o in shipped["outcomes"]] == ["ok", "duplicate"]  # one mesh, two hotkeys
    assert shipped["outcomes"] == composed_llm["outcomes"]  # scores bit for bit, contrast prompts
    expected = draw_distractors(PROMPT, shipped["step_seed"], PROTOCOL.clip.distractor_pool, PROTOCOL.clip.n_distractors)
    assert shipped["outcomes"][0]["distractors"] == expected
