"""A caption that reads text off the asset or quotes the prompt earns caption component 0.

Attack pinned (fails before this change: the caption component was the rescaled mpnet
similarity alone): with the GENUINE all-mpnet-base-v2, the caption "the words 'a red
wooden chair' written on a sign" scores 0.92 against the prompt "a red wooden chair",
above a LLaVA-style honest description (0.81). With the guard it scores 0 and ranks
below every honest caption.
"""

import pytest

from text3d.reward.caption import StaticCaptioner
from text3d.reward.defences.caption_guard import caption_flag
from text3d.reward.clip import ClipScorer
from text3d.reward.config import RewardConfig
from text3d.reward.model import RewardModel
from text3d.reward.text import TextEmbedder
from tests.scoring_fakes import solid

PROMPT = "a red wooden chair"
QUOTE = "the words 'a red wooden chair' written on a sign"
HONEST = "a red wooden chair with four legs"
LLAVA_HONEST = "The image shows a 3D model of a red chair with a backrest and four legs."


@pytest.mark.parametrize("caption, flagged", [
    (QUOTE, True),
    ('a sign that says "a red wooden chair"', True),
    ("a white board with the text a red wooden chair", True),
    ("a box with the words red wooden chair printed on it", True),
    ("a chair with a \u201cred wooden\u201d finish", True),  # curly quotes around prompt words
    ("a box with letters on it", True),
    ("a label on a bottle", True),
    (HONEST, False),
    (LLAVA_HONEST, False),
    ("a nice design with a signal lamp", False),  # "design" and "signal" are not "sign"
    ("the dog's bowl and the cat's toy", False),  # apostrophes are not quotes
    ("a 'comfortable' armchair", False),  # a quoted word that is not the prompt's
])
def test_flags(caption, flagged):
    assert (caption_flag(caption, PROMPT) is not None) is flagged


def test_a_prompt_about_a_sign_may_be_captioned_as_one():
    assert caption_flag("a wooden sign on a post", "a wooden sign") is None
    assert caption_flag("a wooden sign with letters", "a wooden sign") is not None


def _model(tiny_clip, mpnet, caption: str) -> RewardModel:
    clip = ClipScorer(tiny_clip.model, tiny_clip.preprocess, tiny_clip.tokenizer, model_name=tiny_clip.model_name,
                      pretrained=tiny_clip.pretrained, device="cpu")
    text = TextEmbedder(mpnet.model, model_id=mpnet.model_id)
    return RewardModel(clip, text, StaticCaptioner(caption), config=RewardConfig(n_views=2, resolution_px=64),
                       fingerprints=False)


def test_quoting_caption_ranks_below_honest_captions_with_genuine_mpnet(tiny_clip, mpnet):
    views = [[solid((200, 40, 40), 64), solid((190, 50, 40), 64)]]

    def caption_component(caption: str):
        report = _model(tiny_clip, mpnet, caption).score_views_batch(views, [PROMPT])[0]
        return report.components["caption"], report.views[0].caption_similarity

    quote, quote_raw = caption_component(QUOTE)
    honest, _ = caption_component(HONEST)
    llava, llava_raw = caption_component(LLAVA_HONEST)
    assert quote_raw > llava_raw  # the attack: mpnet alone prefers the quoted prompt (0.74 vs 0.67)
    assert quote == 0.0
    assert honest > 0.9 and llava > 0.7
    assert quote < llava < honest
