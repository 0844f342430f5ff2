"""``RewardReport``: the JSON-serialisable evidence behind one asset's score.

Every number that went into the score is here (per-view captions, CLIP similarities,
the reject text that won or lost, caption similarities, component values and the
weights actually used), so a miner or an operator can see why an asset scored what it
did. The rendered views ride along as ``report.images`` for HTML reports but are never
part of the JSON.
"""

import json
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = ["ViewReport", "RewardReport", "CLIP_ONLY_NOTE", "score_notes"]

CLIP_ONLY_NOTE = "scored without captions (CLIP only)"


class ViewReport(BaseModel):
    """One rendered view's evidence."""

    model_config = ConfigDict(extra="forbid")

    index: int
    caption: str | None = None
    clip_similarity: float  # cosine(image, prompt)
    clip_probability: float  # the view's contrastive CLIP value (text3d.reward.clip.contrastive_clip)
    best_reject: str
    best_reject_similarity: float
    rejected: bool  # a junk text matched at least as well as the prompt (evidence only: no cliff)
    clip_score: float  # clip_probability, or 0 when OCR rejected the view
    caption_similarity: float | None = None  # metric(caption, prompt), raw
    reference_similarities: list[float] = Field(default_factory=list)  # metric(caption, reference_i), raw
    best_distractor: str | None = None  # the contrast text closest to the view
    best_distractor_similarity: float | None = None
    ocr_text: str | None = None  # legible text OCR read on the view (None: OCR off)
    ocr_rejected: bool = False  # more legible characters than the protocol allows: the view counts 0
    caption_flag: str | None = None  # why the caption earns no caption score (text3d.reward.defences.caption_guard)
    caption_score: float | None = None  # the view's caption value after the guards


class RewardReport(BaseModel):
    """The score of one asset against one prompt, in [0, 1], and how it was reached.

    ``components`` are the per-component values in [0, 1] that the ``weights`` (already
    renormalised over the components present) combine into ``score``. ``aggregates``
    hold the raw metric values reduced with ``aggregation`` (for ``none``: the raw list).
    ``invalid_reason`` is set when the asset could not be scored at all (score 0).
    """

    model_config = ConfigDict(extra="forbid")

    score: float = Field(ge=0.0, le=1.0)
    prompt: str
    references: list[str] = Field(default_factory=list)
    components: dict[str, float] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    aggregates: dict[str, float | list[float]] = Field(default_factory=dict)
    metric: str
    aggregation: str
    captioner: str | None = None
    notes: list[str] = Field(default_factory=list)
    models: dict[str, str] = Field(default_factory=dict)
    invalid_reason: str | None = None
    views: list[ViewReport] = Field(default_factory=list)
    rig: dict[str, Any] | None = None  # the cameras of the views (text3d.reward.render.camera.CameraRig.to_dict)
    distractors: list[str] = Field(default_factory=list)  # the contrast prompts of the CLIP component
    defences: dict[str, Any] = Field(default_factory=dict)  # budget, flatness, OCR, caption guard evidence
    timings_s: dict[str, float] = Field(default_factory=dict)  # seconds per stage for this asset
    protocol_digest: str | None = None  # text3d.reward.scoring_protocol digest the score was computed under

    _images: list[Image.Image] = PrivateAttr(default_factory=list)
    _fingerprint: Any = PrivateAttr(default=None)

    @property
    def fingerprint(self) -> Any:
        """The asset's ``text3d.reward.defences.fingerprint.Fingerprint`` (not serialised), or None."""
        return self._fingerprint

    def attach_fingerprint(self, fingerprint: Any) -> "RewardReport":
        self._fingerprint = fingerprint
        return self

    @property
    def images(self) -> list[Image.Image]:
        """The rendered views (not serialised); empty for an invalid asset or a parsed report."""
        return self._images

    def attach_images(self, images: list[Image.Image]) -> "RewardReport":
        self._images = list(images)
        return self

    @property
    def is_valid(self) -> bool:
        return self.invalid_reason is None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def invalid(cls, prompt: str, reason: str, *, references: list[str] | None = None, metric: str = "cosine",
                aggregation: str = "mean", captioner: str | None = None,
                models: dict[str, str] | None = None) -> "RewardReport":
        """Score 0 with the reason: the asset (the miner's work) could not be scored."""
        return cls(score=0.0, prompt=prompt, references=list(references or []), metric=metric,
                   aggregation=aggregation, captioner=captioner, models=dict(models or {}),
                   invalid_reason=reason, notes=[f"invalid asset: {reason}"])


def score_notes(report: RewardReport) -> list[str]:
    """Short reasons why ``report``'s score is lower than its evidence alone would give, for
    a notes column: invalid (with the reason), flatness, OCR, the caption guard. Empty when
    nothing lowered it. (The full sentences are in ``report.notes``.)"""
    if report.invalid_reason is not None:
        return [f"invalid: {report.invalid_reason}"]
    out = []
    factor = report.defences.get("flatness_factor")
    if isinstance(factor, (int, float)) and factor < 1.0:
        out.append(f"flat x{factor:.2f}")
    n = len(report.views)
    ocr = report.defences.get("ocr_rejected_views")
    if isinstance(ocr, int) and ocr > 0:
        out.append(f"OCR text on {ocr}/{n} views")
    flags = report.defences.get("caption_flags")
    if isinstance(flags, int) and flags > 0:
        out.append(f"caption guard {flags}/{n}")
    return out
