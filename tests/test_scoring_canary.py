"""The canary tells the validator its own pipeline is broken: a known mesh (a table
built by code) and prompt with expectations on the renders and the captions.

Attack pinned (fails before this change: there was no canary, and a captioner that
answered fluent nonsense with HTTP 200 halved every miner's average): through the real
OpenAI-compatible client, a scripted server answering nonsense -> the canary fails,
naming the captioner; a renderer that draws nothing -> it fails, naming the renderer.
"""

import numpy as np
from PIL import Image

from tests.loopback import chat_completion, closed_port_url
from text3d.reward.defences.canary import CANARY_PROMPT, CanaryExpectations, canary_mesh, check_canary
from text3d.reward.caption import CaptionerConfig, OpenAICaptioner, StaticCaptioner
from text3d.reward.clip import ClipScorer
from text3d.reward.config import RewardConfig
from text3d.reward.model import RewardModel
from text3d.reward.text import TextEmbedder

TINY = CanaryExpectations(min_clip=None)  # the tiny random CLIP has no meaning to check
CONFIG = RewardConfig(n_views=8, resolution_px=96)


def _model(tiny_clip, mpnet, captioner, **kwargs):
    clip = ClipScorer(tiny_clip.model, tiny_clip.preprocess, tiny_clip.tokenizer, model_name=tiny_clip.model_name,
                      pretrained=tiny_clip.pretrained, device="cpu")
    return RewardModel(clip, TextEmbedder(mpnet.model, model_id=mpnet.model_id), captioner, config=CONFIG, **kwargs)


def test_canary_mesh_is_built_by_code_and_deterministic():
    a, b = canary_mesh(), canary_mesh()
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)
    assert len(a.faces) == 60 and a.visual.vertex_colors.shape == (len(a.vertices), 4)


def test_a_working_pipeline_passes(tiny_clip, mpnet):
    result = check_canary(_model(tiny_clip, mpnet, StaticCaptioner("a brown wooden table with four legs")),
                          step_seed=11, expectations=TINY)
    assert result.ok, result.reason
    assert result.report.prompt == CANARY_PROMPT and len(result.report.rig["view_azimuths_deg"]) == 8


NONSENSE = "Certainly! The quarterly report shows that the committee approved the new budget on Tuesday."


def test_a_captioner_answering_fluent_nonsense_with_200_fails_the_canary(tiny_clip, mpnet, scripted_http):
    server = scripted_http(lambda n, path, body: chat_completion(NONSENSE))
    captioner = OpenAICaptioner(CaptionerConfig(base_url=server.url, timeout_s=5.0, retries=0))
    try:
        result = check_canary(_model(tiny_clip, mpnet, captioner), step_seed=11, expectations=TINY)
    finally:
        captioner.close()
    assert not result.ok and result.reason.startswith("captioner: its captions of the canary are off-topic")
    assert result.report.views[0].caption.startswith("Certainly!")


def test_a_renderer_that_draws_nothing_fails_the_canary(tiny_clip, mpnet):
    class Blank:
        def render(self, mesh, n_views=8, resolution=512, rig=None):
            return [Image.new("RGB", (resolution, resolution), (255, 255, 255)) for _ in range(n_views)]

    model = _model(tiny_clip, mpnet, StaticCaptioner("a wooden table"), renderer=Blank())
    result = check_canary(model, step_seed=11, expectations=TINY)
    assert not result.ok and result.reason.startswith("renderer:")


def test_a_failing_captioner_is_a_failed_canary_not_an_exception(tiny_clip, mpnet):
    captioner = OpenAICaptioner(CaptionerConfig(base_url=closed_port_url(), timeout_s=0.5, retries=0))
    try:
        result = check_canary(_model(tiny_clip, mpnet, captioner), expectations=TINY)
    finally:
        captioner.close()
    assert not result.ok and result.reason.startswith("scoring the canary failed")


def test_clip_expectation_applies_with_real_models(tiny_clip, mpnet):
    """With the production CLIP the canary must beat its distractors; the tiny random CLIP
    does not, which is what a validator with wrong CLIP weights would see."""
    result = check_canary(_model(tiny_clip, mpnet, StaticCaptioner("a wooden table")), step_seed=11,
                          expectations=CanaryExpectations(min_clip=0.99))
    assert not result.ok and result.reason.startswith("CLIP:")
