"""RewardModel end to end on real parts: tiny CLIP, genuine mpnet, the moderngl renderer.

Rules pinned here: the score is in [0, 1] and explained by its report; batching gives
the same scores as one-by-one scoring while sharing CLIP and mpnet batches; an invalid
mesh scores 0 with its reason and does not stop the batch; a failing captioner is the
validator's fault and propagates instead of becoming a zero.
"""

import itertools
import json
from html.parser import HTMLParser

import numpy as np
import pytest
import trimesh

from text3d.reward.caption import StaticCaptioner
from text3d.reward.clip import ClipScorer
from text3d.reward.config import AGGREGATIONS, METRICS, RewardConfig
from text3d.reward.errors import CaptionerUnavailable
from text3d.reward.model import RewardModel
from text3d.reward.reporting.evidence import CLIP_ONLY_NOTE, RewardReport
from text3d.reward.reporting.html import write_html_report
from text3d.reward.text import TextEmbedder
from tests.meshes import coloured_sphere, red_cube

CONFIG = RewardConfig(n_views=4, resolution_px=64)


def build(tiny_clip, mpnet, captioner=StaticCaptioner(), **kwargs) -> RewardModel:
    clip = ClipScorer(tiny_clip.model, tiny_clip.preprocess, tiny_clip.tokenizer, model_name=tiny_clip.model_name,
                      pretrained=tiny_clip.pretrained, device="cpu")
    text = TextEmbedder(mpnet.model, model_id=mpnet.model_id)
    kwargs.setdefault("config", CONFIG)
    return RewardModel(clip, text, captioner, **kwargs)


def zero_extent_mesh() -> trimesh.Trimesh:
    return trimesh.Trimesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), process=False)


class FailingCaptioner:
    name = "down"

    def caption(self, images, prompt):
        raise CaptionerUnavailable("captioning server at http://127.0.0.1:9 is not answering")


def test_end_to_end_report_explains_the_score(tiny_clip, mpnet):
    model = build(tiny_clip, mpnet)
    report = model.score(red_cube(), "a red cube", references=["a cube painted red", "a red box"])
    assert 0.0 <= report.score <= 1.0 and report.is_valid
    assert set(report.components) == {"clip", "caption", "reference"}
    assert sum(report.weights.values()) == pytest.approx(1.0)
    assert report.score == pytest.approx(sum(report.weights[k] * report.components[k] for k in report.components))
    assert report.captioner == "static" and CLIP_ONLY_NOTE not in report.notes
    assert len(report.views) == 4 and len(report.images) == 4
    assert report.images[0].size == (64, 64)
    for view in report.views:
        assert view.caption == "a 3D model of a red cube"
        assert view.best_reject in CONFIG.reject_texts
        assert view.clip_score == pytest.approx(view.clip_probability)  # no cliff: junk texts are contrast texts
        assert len(view.reference_similarities) == 2
        assert view.caption_similarity > 0.6  # genuine mpnet: the caption paraphrases the prompt


def test_caption_that_matches_the_prompt_scores_higher(tiny_clip, mpnet):
    mesh = red_cube()
    good = build(tiny_clip, mpnet, StaticCaptioner("a red cube"))
    bad = build(tiny_clip, mpnet, StaticCaptioner("a bowl of noodles"))
    good_report, bad_report = good.score(mesh, "a red cube"), bad.score(mesh, "a red cube")
    assert good_report.components["caption"] > bad_report.components["caption"]
    assert good_report.score > bad_report.score


def test_captions_off_is_clip_only_and_says_so(tiny_clip, mpnet):
    model = RewardModel(build(tiny_clip, mpnet).clip, None, None, config=CONFIG)
    report = model.score(coloured_sphere(2000), "a colourful blob", references=["ignored without captions"])
    assert report.captioner is None and report.notes == [CLIP_ONLY_NOTE]
    assert report.weights == {"clip": 1.0} and report.score == report.components["clip"]
    assert all(v.caption is None and v.caption_similarity is None for v in report.views)
    assert report.models["text"] == "none"


def test_captioner_failure_propagates(tiny_clip, mpnet):
    model = build(tiny_clip, mpnet, FailingCaptioner())
    with pytest.raises(CaptionerUnavailable):
        model.score_batch([red_cube(), coloured_sphere(2000)], ["a red cube", "a blob"])


def test_invalid_asset_scores_zero_with_reason_and_the_rest_are_scored(tiny_clip, mpnet):
    model = build(tiny_clip, mpnet)
    reports = model.score_batch([red_cube(), zero_extent_mesh(), coloured_sphere(2000)], ["a red cube", "junk", "a blob"])
    assert reports[1].score == 0.0 and not reports[1].is_valid
    assert "extent" in reports[1].invalid_reason and reports[1].views == []
    assert reports[0].is_valid and reports[2].is_valid and reports[0].score > 0.0


def test_batch_equals_individual_and_shares_model_batches(tiny_clip, mpnet):
    meshes = [red_cube(), coloured_sphere(2000, seed=1), coloured_sphere(3000, seed=2)]
    prompts = ["a red cube", "a round blob", "a round blob"]
    refs = [["a cube"], [], ["a ball", "a sphere"]]
    solo = build(tiny_clip, mpnet)
    singles = [solo.score(m, p, r) for m, p, r in zip(meshes, prompts, refs)]

    batched = build(tiny_clip, mpnet)
    calls = {"image": 0, "text": 0}
    encode_image, encode = batched.clip.model.encode_image, batched.text.model.encode

    def count_image(*a, **k):
        calls["image"] += 1
        return encode_image(*a, **k)

    def count_text(*a, **k):
        calls["text"] += 1
        return encode(*a, **k)

    batched.clip.model.encode_image, batched.text.model.encode = count_image, count_text
    try:
        reports = batched.score_batch(meshes, prompts, refs)
    finally:
        del batched.clip.model.encode_image, batched.text.model.encode
    assert calls["image"] == 1  # all 12 views in one CLIP batch
    assert calls["text"] == 2  # prompts + references in one mpnet batch, all captions in another
    for single, report in zip(singles, reports):
        assert report.score == pytest.approx(single.score, abs=1e-4)
        assert report.components == pytest.approx(single.components, abs=1e-4)


def test_prompt_embeddings_cached_in_memory_and_on_disk(tiny_clip, mpnet, tmp_path):
    model = build(tiny_clip, mpnet, cache_dir=tmp_path)
    model.score(red_cube(), "a red cube", ["a cube"])
    encoded = model.text.texts_encoded  # prompt + reference + 1 unique caption
    assert encoded == 3 and len(list(tmp_path.rglob("*.npy"))) == 2
    model.score(red_cube(), "a red cube", ["a cube"])
    assert model.text.texts_encoded == encoded + 1  # only the caption again
    clip_texts = model.clip.texts_encoded
    model.score(red_cube(), "a red cube", ["a cube"])
    assert model.clip.texts_encoded == clip_texts  # prompt and reject texts are cached too
    other = build(tiny_clip, mpnet, cache_dir=tmp_path)
    other.score(red_cube(), "a red cube", ["a cube"])
    assert other.text.texts_encoded == 1  # prompt and reference came from disk


@pytest.mark.parametrize("metric,how", list(itertools.product(METRICS, AGGREGATIONS)))
def test_every_metric_and_aggregation_scores(tiny_clip, mpnet, metric, how, _views):
    model = build(tiny_clip, mpnet, StaticCaptioner("a red box seen from the side"), metric=metric, aggregation=how)
    report = model.score_views_batch([_views], ["a red cube"], [["a red box", "a cube"]])[0]
    assert 0.0 <= report.score <= 1.0
    assert report.metric == metric and report.aggregation == how
    if how == "none":
        assert len(report.aggregates["caption_similarity"]) == 4
        assert len(report.aggregates["reference_similarity"]) == 8
    else:
        assert isinstance(report.aggregates["caption_similarity"], float)


@pytest.fixture(scope="module")
def _views():
    from text3d.reward.render.views import get_renderer

    return get_renderer("moderngl").render(red_cube(), 4, 64)


def test_report_json_round_trip_and_html(tiny_clip, mpnet, tmp_path):
    model = build(tiny_clip, mpnet, StaticCaptioner('<b>"caption"</b> & {prompt}'))
    reports = model.score_batch([red_cube(), zero_extent_mesh()], ["<script>alert(1)</script> cube", "junk"])
    for report in reports:
        data = json.loads(report.to_json())
        assert "images" not in data and "_images" not in data
        again = RewardReport.model_validate(data)
        assert again.model_dump() == report.model_dump() and again.images == []
    index = write_html_report([("cube<1>.ply", reports[0]), ("bad.glb", reports[1])], tmp_path / "html", "step 7 & co")
    page = index.read_text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "<b>" not in page

    class Images(HTMLParser):
        srcs: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.srcs.append(dict(attrs)["src"])

    parser = Images()
    parser.feed(page)
    assert len(parser.srcs) == 4
    for src in parser.srcs:
        assert not src.startswith("/") and (index.parent / src).is_file()
    assert page.index("cube&lt;1&gt;.ply") < page.index("bad.glb")  # ranked by score


# -- observe once, judge many times (what asset libraries rely on) ---------------------------


def test_observations_judged_later_give_the_reports_of_score_batch(tiny_clip, mpnet):
    """``observe_batch`` + ``score_observations`` is ``score_batch`` split in two: the same
    scores, components and per-view numbers for every prompt, and nothing is rendered or
    captioned again when a second prompt is judged."""
    captioner = StaticCaptioner("a small red box seen from view {view}")  # prompt-free captions
    model = build(tiny_clip, mpnet, captioner=captioner)
    meshes = [red_cube(), coloured_sphere(2000), zero_extent_mesh()]
    observations = model.observe_batch(meshes)
    assert [o.is_valid for o in observations] == [True, True, False]
    calls, images = captioner.calls, model.clip.images_encoded
    for prompt in ("a red cube", "a lumpy coloured ball"):
        later = model.score_observations(observations, [prompt] * 3, [["a red box"]] * 3)
        direct = model.score_batch(meshes, [prompt] * 3, [["a red box"]] * 3)
        for a, b in zip(later, direct):
            assert a.score == pytest.approx(b.score, abs=1e-9) and a.components == pytest.approx(b.components)
            assert a.invalid_reason == b.invalid_reason and a.notes == b.notes
            assert [v.model_dump() for v in a.views] == [v.model_dump() for v in b.views]
            assert {k: v for k, v in a.defences.items()} == b.defences
    # only score_batch's: two valid assets (one caption call each, 4 views) per prompt
    assert captioner.calls == calls + 2 * 2 and model.clip.images_encoded == images + 2 * 2 * 4


def test_flatness_is_judged_from_the_stored_thickness(tiny_clip, mpnet):
    """The thickness is observed once; the factor comes from the judging config, so a library
    can switch it off (min_thickness 0) without observing again."""
    plate = trimesh.creation.box(extents=(1.0, 1.0, 0.005))
    observation = build(tiny_clip, mpnet, captioner=None).observe_batch([plate])[0]
    flat = build(tiny_clip, mpnet, captioner=None).score_observations([observation], ["a plate"])[0]
    off = build(tiny_clip, mpnet, captioner=None, config=CONFIG.model_copy(update={"min_thickness": 0.0}))
    unflattened = off.score_observations([observation], ["a plate"])[0]
    assert flat.defences["flatness_factor"] < 0.5 and any("flat" in n for n in flat.notes)
    assert unflattened.defences["flatness_factor"] == 1.0
    assert flat.score == pytest.approx(unflattened.score * flat.defences["flatness_factor"], rel=1e-6)


def test_captions_that_quote_the_prompt_cannot_be_observed_before_a_prompt(tiny_clip, mpnet):
    from text3d.reward.caption_client import CaptionerConfig, OpenAICaptioner

    captioner = OpenAICaptioner(CaptionerConfig(base_url="http://127.0.0.1:9", include_prompt=True))
    try:
        with pytest.raises(ValueError, match="include_prompt"):
            build(tiny_clip, mpnet, captioner=captioner).observe_batch([red_cube()])
    finally:
        captioner.close()
