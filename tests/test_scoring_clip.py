"""The CLIP component is contrastive (R-precision style, against distractor prompts and
the junk texts), smooth (no cliff) and pinned to hand-computed numbers.

Formula (text3d.reward.clip): clip_v = mean_d sigmoid((s_p - s_d - margin) / temperature).
Before this change the component was a softmax at scale 100 against 4 junk texts that
zeroed a view at a tie: these tests fail there (no ``contrastive_clip``, and a tie gave 0).
"""

import math

import numpy as np
import pytest

from text3d.reward.clip import contrastive_clip, draw_distractors
from text3d.reward.config import RewardConfig
from text3d.reward.formula import AssetInputs, asset_score
from text3d.reward.model import RewardModel
from text3d.reward.scoring_protocol import PROTOCOL
from tests.scoring_fakes import FixedClip, FixedText, ListCaptioner, solid


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_golden_per_view_values():
    # s_p = 0.5 against contrast cosines 0.4, 0.2, 0.1 with margin 0.05, temperature 0.1:
    # sigmoid(0.5) = 0.6224593312, sigmoid(2.5) = 0.9241418200, sigmoid(3.5) = 0.9706877692
    value = contrastive_clip(np.array([0.5]), np.array([[0.4, 0.2, 0.1]]), temperature=0.1, margin=0.05)
    assert value[0] == pytest.approx((0.6224593312 + 0.9241418200 + 0.9706877692) / 3, abs=1e-9)
    assert value[0] == pytest.approx(0.8390963068, abs=1e-9)
    # a tie earns sigmoid(-margin / temperature), not 0: no cliff
    tie = contrastive_clip(np.array([0.3]), np.array([[0.3]]), temperature=0.02, margin=0.03)
    assert tie[0] == pytest.approx(sigmoid(-1.5), abs=1e-12) == pytest.approx(0.1824255238, abs=1e-9)


def test_smooth_everywhere_and_bounded_slope():
    s = np.linspace(-0.2, 0.4, 6001)
    values = contrastive_clip(s, np.full((len(s), 3), 0.1), temperature=0.02, margin=0.03)
    slope = np.abs(np.diff(values)) / np.diff(s)
    assert slope.max() <= 1.0 / (4 * 0.02) + 1e-6  # |d clip / d s_p| <= 1 / (4 T): no jump anywhere
    assert np.all(np.diff(values) >= 0)


def test_separates_good_from_great_where_the_old_softmax_saturated():
    """Leads of 0.06 and 0.15 over the contrast texts: the old softmax at scale 100 against
    junk gave both >= 0.99; the contrastive value tells them apart."""
    def old(lead):  # the seed's formula: softmax(100 * [s_p, s_junk x 4])[0]
        logits = 100 * np.array([0.3, *(0.3 - lead,) * 4])
        return float(np.exp(logits[0]) / np.exp(logits).sum())
    assert old(0.06) > 0.99 and old(0.15) > 0.99
    good, great = (contrastive_clip(np.array([0.3]), np.full((1, 19), 0.3 - lead), temperature=0.02, margin=0.03)[0]
                   for lead in (0.06, 0.15))
    assert good == pytest.approx(sigmoid(1.5)) and great == pytest.approx(sigmoid(6.0))
    assert great - good > 0.17


def test_distractors_are_deterministic_from_prompt_and_step_seed():
    pool = PROTOCOL.clip.distractor_pool
    a = draw_distractors("a wooden chair", 11, pool, 15)
    assert a == draw_distractors("a wooden chair", 11, pool, 15)
    assert a != draw_distractors("a wooden chair", 12, pool, 15)
    assert len(set(a)) == 15 and "a wooden chair" not in a
    assert "A Wooden Chair" not in draw_distractors("A Wooden Chair", 11, pool, 39)


GOLDEN_TEXTS = {"a red chair": [1, 0, 0, 0, 0], "d1": [0, 1, 0, 0, 0], "d2": [0, 0, 1, 0, 0],
                "junk": [0, 0, 0, 1, 0]}
VIEW_A, VIEW_B = (255, 0, 0), (0, 255, 0)
GOLDEN_IMAGES = {VIEW_A: [0.5, 0.4, 0.2, 0.1, math.sqrt(0.54)], VIEW_B: [0.3, 0.35, 0.1, 0.0, math.sqrt(0.7775)]}
CONFIG = RewardConfig(reject_texts=("junk",), clip_temperature=0.1, clip_margin=0.05)


def test_golden_score_at_the_model_edge():
    """Fixed embeddings in place of CLIP and mpnet; every number below is by hand.

    CLIP  view A: mean(sig(0.5), sig(2.5), sig(3.5))  = 0.8390963068
          view B: mean(sig(-1.0), sig(1.5), sig(2.5)) = mean(0.2689414214, 0.8175744762, 0.9241418200)
                                                      = 0.6702192392
          component = 0.7546577730
    caption  view A 'a chair painted red' at cosine 0.6 -> (0.6 - 0.1) / 0.7 = 0.7142857143
             view B 'a sign with the words red chair' -> flagged (mentions text): 0
             component = 0.3571428571
    score = (0.5 * 0.7546577730 + 0.35 * 0.3571428571) / 0.85 = 0.5909751606
    """
    text = FixedText({"a red chair": [1, 0], "a chair painted red": [0.6, 0.8],
                      "a sign with the words red chair": [0.95, math.sqrt(1 - 0.95**2)]})
    model = RewardModel(FixedClip(GOLDEN_IMAGES, GOLDEN_TEXTS), text,
                        ListCaptioner(["a chair painted red", "a sign with the words red chair"]), config=CONFIG,
                        fingerprints=False)
    report = model.score_views_batch([[solid(VIEW_A), solid(VIEW_B)]], ["a red chair"], distractors=[["d1", "d2"]])[0]
    assert report.views[0].clip_score == pytest.approx(0.8390963068, abs=1e-6)
    assert report.views[1].clip_score == pytest.approx(0.6702192392, abs=1e-6)
    assert report.components["clip"] == pytest.approx(0.7546577730, abs=1e-6)
    assert report.views[0].caption_score == pytest.approx(0.7142857143, abs=1e-6)
    assert report.views[1].caption_score == 0.0 and "mentions text" in report.views[1].caption_flag
    assert report.components["caption"] == pytest.approx(0.3571428571, abs=1e-6)
    assert report.score == pytest.approx(0.5909751606, abs=1e-6)
    assert report.distractors == ["d1", "d2"] and report.views[0].best_distractor == "d1"


def test_formula_flatness_and_ocr_guards_by_hand():
    inputs = AssetInputs(s_prompt=np.array([0.5, 0.5]), s_contrast=np.array([[0.4], [0.4]]),
                         caption_to_prompt=np.array([0.8, 0.8]), ocr_rejected=np.array([False, True]), flatness=0.5)
    result = asset_score(inputs, weights={"clip": 1.0, "caption": 1.0, "reference": 0.0}, temperature=0.1,
                         margin=0.05, similarity_range=(0.1, 0.8), aggregation="mean")
    # clip views: sig(0.5) = 0.6224593312 and 0 (OCR); caption views: 1.0 and 0 (OCR)
    assert result.components["clip"] == pytest.approx(0.6224593312 / 2, abs=1e-9)
    assert result.components["caption"] == pytest.approx(0.5)
    assert result.score == pytest.approx(0.5 * (0.3112296656 + 0.5) / 2, abs=1e-9)
