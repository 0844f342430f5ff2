"""OCR zeroes views with legible text: the typographic attack (the prompt's words
painted on a face of a box) is read and rejected; a plain render passes.

Attack pinned (fails before this change: there was no OCR; the view scored like any
other). Engine choice, measured here on the same renders: rapidocr-onnxruntime 1.4.4
(bundled PP-OCRv4 models) reads "A RED WOODEN CHAIR" on every view that shows the face,
Debian's tesseract 5.3 misses most of them and reads noise on plain renders.
"""

import shutil

import pytest

from text3d.reward.render.camera import CameraRig
from text3d.reward.clip import ClipScorer
from text3d.reward.config import RewardConfig
from text3d.reward.model import RewardModel
from text3d.reward.defences.ocr import OcrLine, RapidOcrEngine, TesseractEngine, legible_chars, ocr_views
from text3d.reward.render.views import get_renderer
from text3d.reward.scoring_protocol import PROTOCOL
from tests.attack_meshes import text_box
from tests.meshes import coloured_sphere

MAX_CHARS, MIN_CONF = PROTOCOL.defences.ocr_max_chars, PROTOCOL.defences.ocr_min_confidence
RES = 512  # the protocol's resolution: OCR sees what the validator scores


@pytest.fixture(scope="module")
def engine():
    return RapidOcrEngine()  # rapidocr-onnxruntime is a validator dependency: installed, never skipped


@pytest.fixture(scope="module")
def views():
    renderer = get_renderer()
    rig = CameraRig(view_azimuths_deg=(0.0, 30.0, 180.0), view_elevations_deg=(20.0, 10.0, 20.0))
    return {
        "text": renderer.render(text_box("a red wooden chair"), 3, RES, rig),
        "plain": renderer.render(coloured_sphere(20_000, seed=1), 2, RES, CameraRig()),
    }


def test_legible_chars_counts_letters_and_digits_of_confident_lines():
    lines = [OcrLine("A RED", 0.95), OcrLine("chair!", 0.9), OcrLine("zzzzzz", 0.3)]
    assert legible_chars(lines, 0.6) == (9, "A RED | chair!")


def test_the_prompt_painted_on_a_box_is_read_and_rejected(engine, views):
    front, turned, back = ocr_views(engine, views["text"], max_chars=MAX_CHARS, min_confidence=MIN_CONF)
    assert front.rejected and front.chars >= 12 and "WOODEN" in front.text.replace(" ", "")
    assert turned.rejected  # 30 degrees off the face
    assert not back.rejected and back.chars == 0  # the plain back of the same box


def test_asking_for_cuda_without_a_cuda_provider_still_reads_on_the_cpu(views):
    """The GPU bundle asks for onnxruntime's CUDA provider where it exists; where it does not (the
    CPU build of onnxruntime) the engine must still read the text, and say which provider ran."""
    import onnxruntime

    engine = RapidOcrEngine(use_cuda=True)
    providers = engine.providers()
    assert providers[0] == ("CUDAExecutionProvider" if "CUDAExecutionProvider" in
                            onnxruntime.get_available_providers() else "CPUExecutionProvider")
    front = ocr_views(engine, views["text"][:1], max_chars=MAX_CHARS, min_confidence=MIN_CONF)[0]
    assert front.rejected and "WOODEN" in front.text.replace(" ", "")
    assert RapidOcrEngine().providers() == ["CPUExecutionProvider"]


def test_a_plain_render_passes(engine, views):
    assert not any(v.rejected for v in ocr_views(engine, views["plain"], max_chars=MAX_CHARS,
                                                 min_confidence=MIN_CONF))


def test_ocr_rejected_views_count_zero_in_the_score(engine, views, tiny_clip):
    clip = ClipScorer(tiny_clip.model, tiny_clip.preprocess, tiny_clip.tokenizer, model_name=tiny_clip.model_name,
                      pretrained=tiny_clip.pretrained, device="cpu")
    model = RewardModel(clip, None, config=RewardConfig(n_views=3, resolution_px=RES), ocr=engine)
    report = model.score_views_batch([views["text"]], ["a red wooden chair"])[0]
    assert [v.ocr_rejected for v in report.views] == [True, True, False]
    assert [v.clip_score for v in report.views][:2] == [0.0, 0.0] and report.views[2].clip_score > 0
    assert report.defences["ocr_rejected_views"] == 2 and "ocr" in report.timings_s
    assert any("OCR read legible text" in n for n in report.notes)


def test_tesseract_misses_what_rapidocr_reads(engine, views):
    """The measurement behind the choice; tesseract is kept as a fallback, not for scoring
    (tesseract-ocr is in the Makefile's apt list)."""
    assert shutil.which("tesseract"), "tesseract-ocr is missing: sudo apt-get install tesseract-ocr"
    rapid = [legible_chars(engine.read(v), MIN_CONF)[0] for v in views["text"][:2]]
    tess = [legible_chars(TesseractEngine().read(v), MIN_CONF)[0] for v in views["text"][:2]]
    assert min(rapid) > MAX_CHARS
    assert min(tess) <= MAX_CHARS  # at least one text view slips through tesseract
