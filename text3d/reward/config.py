"""``RewardConfig``: every weight, threshold and model name the scoring core uses.

Nothing in ``text3d.reward.model`` hard-codes a number that changes a score: every default here
comes from the pinned ``text3d.reward.scoring_protocol.PROTOCOL`` (the one place the numbers are
written), validators that must agree share one config, and ``to_protocol()`` turns a
config back into the protocol it scores with, for ``check_protocol`` and the reports.

The rig is three flat fields (``n_views``, ``resolution_px``, ``n_secret_views``: one flag
each) and the nested ``camera`` (a ``CameraSpec``: angles, field of view, lighting);
``rig`` puts them together as the protocol's ``RigSpec``.
"""

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from text3d.reward.scoring_protocol import (
    PINNED_FIELD,
    PROTOCOL,
    CameraSpec,
    CaptionSpec,
    ClipSpec,
    DefenceSpec,
    ModelSpec,
    RewardWeights,
    RigSpec,
    ScoringProtocol,
)

__all__ = ["Metric", "Aggregation", "RewardWeights", "RewardConfig", "METRICS", "AGGREGATIONS", "off_protocol"]

Metric = Literal["cosine", "jaccard", "euclidean", "dot"]
Aggregation = Literal["sum", "mean", "median", "none"]
METRICS: tuple[str, ...] = get_args(Metric)
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)

DEFAULT_REJECT_TEXTS = PROTOCOL.clip.reject_texts
DEFAULT_SIMILARITY_RANGE = dict(PROTOCOL.similarity_range)

_P, _C, _D = PROTOCOL, PROTOCOL.clip, PROTOCOL.defences


class RewardConfig(BaseModel):
    """The scoring core's section of the config: models, rig, metric, weights, gates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_model: str = Field(_P.models.clip_model, description="CLIP model (an open_clip name).",
                            json_schema_extra=PINNED_FIELD)
    clip_pretrained: str = Field(_P.models.clip_pretrained, description="CLIP weights (an open_clip pretrained tag).",
                                 json_schema_extra=PINNED_FIELD)
    text_model: str = Field(_P.models.text_model, description="Sentence-embedding model for captions (a Hugging Face id).",
                            json_schema_extra=PINNED_FIELD)

    n_views: int = Field(_P.rig.n_views, ge=1, le=64, description="Views rendered of each mesh.",
                         json_schema_extra=PINNED_FIELD)
    resolution_px: int = Field(_P.rig.resolution_px, ge=32, le=2048, description="Side of each view in pixels.",
                               json_schema_extra=PINNED_FIELD)
    n_secret_views: int = Field(_P.rig.n_secret_views, ge=0, json_schema_extra=PINNED_FIELD,
                                description="Views from below or above at a secret angle (fewer than the views).")
    camera: CameraSpec = _P.rig.camera

    metric: Metric = Field(_P.metric, description="How a caption is compared with the prompt.",
                           json_schema_extra=PINNED_FIELD)
    aggregation: Aggregation = Field(_P.aggregation, description="How the views' values combine into one.",
                                     json_schema_extra=PINNED_FIELD)
    similarity_range: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(DEFAULT_SIMILARITY_RANGE))

    # contrastive CLIP (text3d.reward.clip.contrastive_clip)
    reject_texts: tuple[str, ...] = _C.reject_texts
    distractor_pool: tuple[str, ...] = _C.distractor_pool
    n_distractors: int = Field(_C.n_distractors, ge=1, le=256, json_schema_extra=PINNED_FIELD,
                               description="Other prompts each view must match less well than its own.")
    clip_temperature: float = Field(_C.temperature, gt=0.0, json_schema_extra=PINNED_FIELD,
                                    description="Width of the CLIP score's smooth step, in cosine units.")
    clip_margin: float = Field(_C.margin, ge=0.0, json_schema_extra=PINNED_FIELD,
                               description="Cosine lead over the best distractor that earns half the CLIP score.")

    weights: RewardWeights = _P.weights

    # defences (text3d.reward.defences.ocr, text3d.reward.defences.flatness, text3d.reward.defences.fingerprint, text3d.reward.defences.budget)
    ocr_max_chars: int = Field(_D.ocr_max_chars, ge=0, json_schema_extra=PINNED_FIELD,
                               description="A view showing more legible characters than this scores 0.")
    ocr_min_confidence: float = Field(_D.ocr_min_confidence, ge=0.0, le=1.0, json_schema_extra=PINNED_FIELD,
                                      description="Text read with less confidence than this is not legible.")
    min_thickness: float = Field(_D.min_thickness, ge=0.0, le=1.0, json_schema_extra=PINNED_FIELD,
                                 description="A mesh thinner than this, relative to its size, loses score in proportion.")
    fingerprint_max_distance: float = Field(_D.fingerprint_max_distance, gt=0.0, json_schema_extra=PINNED_FIELD,
                                            description="Shape distance under which two answers may be one object "
                                                        "by shape alone (the smoothed distance decides).")
    fingerprint_max_smooth_distance: float = Field(
        _D.fingerprint_max_smooth_distance, gt=0.0, json_schema_extra=PINNED_FIELD,
        description="Shape distance, once offsets are averaged over neighbours, under which two answers are one object.")
    fingerprint_view_max_distance: float = Field(_D.fingerprint_view_max_distance, gt=0.0,
                                                 json_schema_extra=PINNED_FIELD,
                                                 description="Small-render distance under which two answers are one object.")
    fingerprint_colour_max_distance: float = Field(
        _D.fingerprint_colour_max_distance, gt=0.0, json_schema_extra=PINNED_FIELD,
        description="Shape distance forgiven, at full colour agreement, between two answers that are one object.")
    fingerprint_min_colour_agreement: float = Field(
        _D.fingerprint_min_colour_agreement, ge=-1.0, le=1.0, json_schema_extra=PINNED_FIELD,
        description="Colour agreement from which more shape distance is forgiven (a correlation of aligned colours).")
    fingerprint_relief_ratio: float = Field(
        _D.fingerprint_relief_ratio, ge=0.0, json_schema_extra=PINNED_FIELD,
        description="Share of the smaller relief (shape beyond an ellipsoid) forgiven as shape distance.")
    fingerprint_relief_max_distance: float = Field(
        _D.fingerprint_relief_max_distance, gt=0.0, json_schema_extra=PINNED_FIELD,
        description="The most shape distance the relief or detail share may forgive.")
    fingerprint_detail_ratio: float = Field(
        _D.fingerprint_detail_ratio, ge=0.0, json_schema_extra=PINNED_FIELD,
        description="Multiple of the smaller fine detail (offset from local quadric fits) forgiven as bent shape distance.")
    fingerprint_colour_histogram_max: float = Field(
        _D.fingerprint_colour_histogram_max, ge=0.0, le=1.0, json_schema_extra=PINNED_FIELD,
        description="Colour-histogram distance under which colour evidence counts at all.")
    fingerprint_min_pattern_agreement: float = Field(
        _D.fingerprint_min_pattern_agreement, ge=0.0, le=1.0, json_schema_extra=PINNED_FIELD,
        description="Second canonical colour correlation, once re-aligned by colour, from which two answers "
                    "with patterns of two or more colours are one object.")
    fingerprint_pattern_max_distance: float = Field(
        _D.fingerprint_pattern_max_distance, gt=0.0, json_schema_extra=PINNED_FIELD,
        description="Shape distance forgiven, once re-aligned by colour, between two such answers.")
    fingerprint_max_aspect_change: float = Field(
        _D.fingerprint_max_aspect_change, ge=1.0, json_schema_extra=PINNED_FIELD,
        description="Two answers whose proportions differ by more than this factor are never one object.")
    fingerprint_body_reach: float = Field(
        _D.fingerprint_body_reach, gt=0.0, json_schema_extra=PINNED_FIELD,
        description="An answer's fingerprint keeps the surface within this many of its principal spreads of its "
                    "centre: a decoy placed farther off does not make a copy another object.")
    max_overdraw: float = Field(_D.max_overdraw, gt=0.0, json_schema_extra=PINNED_FIELD,
                                description="A mesh costing more than this many screens of drawing is refused unrendered.")
    max_edge_overdraw: float = Field(_D.max_edge_overdraw, gt=0.0, json_schema_extra=PINNED_FIELD,
                                     description="A mesh whose triangles' edges run more pixels than this per image "
                                                 "pixel is refused unrendered (thin slivers).")

    # operational: change no score, so not part of the protocol
    caption_deadline_s: float = Field(300.0, gt=0.0, description="Seconds for all the captions of one batch.")
    render_timeout_s: float = Field(60.0, gt=0.0,
                                    description="Hard limit on drawing one asset; past it the asset is invalid.")
    clip_batch_size: int = Field(64, ge=1, description="Images per CLIP batch.")
    text_batch_size: int = Field(64, ge=1, description="Texts per sentence-embedding batch.")

    @model_validator(mode="before")
    @classmethod
    def _tiny_rigs(cls, data: Any) -> Any:
        """A rig of n views keeps at least one ring view unless n_secret_views is set explicitly."""
        if isinstance(data, dict) and "n_views" in data and "n_secret_views" not in data:
            try:
                n = int(data["n_views"])  # flags and environment variables arrive as strings
            except (TypeError, ValueError):
                return data  # the field's own validation says what is wrong
            if n <= PROTOCOL.rig.n_secret_views:
                data = {**data, "n_secret_views": max(0, n - 1)}
        return data

    @model_validator(mode="after")
    def _ranges_cover_metrics(self) -> "RewardConfig":
        for metric in METRICS:
            low, high = self.similarity_range.get(metric, (None, None))
            if low is None or not high > low:
                raise ValueError(f"similarity_range[{metric!r}] must be (low, high) with high > low")
        if not self.reject_texts:
            raise ValueError("reject_texts must list at least one negative text")
        if len(set(self.distractor_pool)) < self.n_distractors + 1:
            raise ValueError("distractor_pool must hold more distinct prompts than n_distractors")
        if self.n_secret_views >= self.n_views:
            raise ValueError("n_secret_views must leave at least one ring view (n_secret_views < n_views)")
        return self

    @property
    def rig(self) -> RigSpec:
        """The protocol's ``RigSpec`` of this config."""
        return RigSpec(n_views=self.n_views, resolution_px=self.resolution_px, n_secret_views=self.n_secret_views,
                       camera=self.camera)

    @classmethod
    def from_protocol(cls, protocol: ScoringProtocol = PROTOCOL, **operational: Any) -> "RewardConfig":
        """The config that scores with ``protocol``; ``operational`` sets batch sizes and deadlines."""
        c, d, m = protocol.clip, protocol.defences, protocol.models
        return cls(
            clip_model=m.clip_model, clip_pretrained=m.clip_pretrained, text_model=m.text_model,
            n_views=protocol.rig.n_views, resolution_px=protocol.rig.resolution_px,
            n_secret_views=protocol.rig.n_secret_views, camera=protocol.rig.camera,
            metric=protocol.metric, aggregation=protocol.aggregation, similarity_range=dict(protocol.similarity_range),
            reject_texts=c.reject_texts, distractor_pool=c.distractor_pool, n_distractors=c.n_distractors,
            clip_temperature=c.temperature, clip_margin=c.margin, weights=protocol.weights,
            ocr_max_chars=d.ocr_max_chars, ocr_min_confidence=d.ocr_min_confidence, min_thickness=d.min_thickness,
            fingerprint_max_distance=d.fingerprint_max_distance,
            fingerprint_max_smooth_distance=d.fingerprint_max_smooth_distance,
            fingerprint_view_max_distance=d.fingerprint_view_max_distance, max_overdraw=d.max_overdraw,
            max_edge_overdraw=d.max_edge_overdraw,
            fingerprint_colour_max_distance=d.fingerprint_colour_max_distance,
            fingerprint_min_colour_agreement=d.fingerprint_min_colour_agreement,
            fingerprint_relief_ratio=d.fingerprint_relief_ratio,
            fingerprint_relief_max_distance=d.fingerprint_relief_max_distance,
            fingerprint_detail_ratio=d.fingerprint_detail_ratio,
            fingerprint_colour_histogram_max=d.fingerprint_colour_histogram_max,
            fingerprint_min_pattern_agreement=d.fingerprint_min_pattern_agreement,
            fingerprint_pattern_max_distance=d.fingerprint_pattern_max_distance,
            fingerprint_max_aspect_change=d.fingerprint_max_aspect_change,
            **operational,
        )

    def to_protocol(self, caption: CaptionSpec | None = None, *, base: ScoringProtocol = PROTOCOL) -> ScoringProtocol:
        """The protocol this config scores with; ``caption`` is the captioner's side (default: ``base``'s).

        Model revisions are kept from ``base`` when the model ids are ``base``'s, else unknown (None).
        """
        same_clip = (self.clip_model, self.clip_pretrained) == (base.models.clip_model, base.models.clip_pretrained)
        same_text = self.text_model == base.models.text_model
        models = ModelSpec(
            clip_model=self.clip_model, clip_pretrained=self.clip_pretrained,
            clip_hf_hub=base.models.clip_hf_hub if same_clip else None,
            clip_revision=base.models.clip_revision if same_clip else None,
            text_model=self.text_model, text_revision=base.models.text_revision if same_text else None,
        )
        return ScoringProtocol(
            version=base.version, rig=self.rig, models=models, caption=caption or base.caption,
            clip=ClipSpec(temperature=self.clip_temperature, margin=self.clip_margin, n_distractors=self.n_distractors,
                          reject_texts=self.reject_texts, distractor_pool=self.distractor_pool),
            weights=self.weights, metric=self.metric, aggregation=self.aggregation,
            similarity_range=dict(self.similarity_range),
            defences=DefenceSpec(
                ocr_max_chars=self.ocr_max_chars, ocr_min_confidence=self.ocr_min_confidence,
                ocr_engine=base.defences.ocr_engine, min_thickness=self.min_thickness,
                fingerprint_max_distance=self.fingerprint_max_distance,
                fingerprint_max_smooth_distance=self.fingerprint_max_smooth_distance,
                fingerprint_view_max_distance=self.fingerprint_view_max_distance, max_overdraw=self.max_overdraw,
                max_edge_overdraw=self.max_edge_overdraw,
                fingerprint_colour_max_distance=self.fingerprint_colour_max_distance,
                fingerprint_min_colour_agreement=self.fingerprint_min_colour_agreement,
                fingerprint_relief_ratio=self.fingerprint_relief_ratio,
                fingerprint_relief_max_distance=self.fingerprint_relief_max_distance,
                fingerprint_detail_ratio=self.fingerprint_detail_ratio,
                fingerprint_colour_histogram_max=self.fingerprint_colour_histogram_max,
                fingerprint_min_pattern_agreement=self.fingerprint_min_pattern_agreement,
                fingerprint_pattern_max_distance=self.fingerprint_pattern_max_distance,
                fingerprint_max_aspect_change=self.fingerprint_max_aspect_change,
                fingerprint_body_reach=self.fingerprint_body_reach,
            ),
        )



_PROTOCOL_FLAGS = {  # protocol field -> what a user changed to move it
    "rig.n_views": "views", "rig.resolution_px": "resolution", "rig.n_secret_views": "secret views",
    "defences.min_thickness": "flatness factor", "metric": "metric", "aggregation": "aggregation",
    "clip.distractor_pool": "contrast prompts", "clip.n_distractors": "contrast prompts",
    "clip.reject_texts": "junk texts", "clip.temperature": "CLIP temperature", "clip.margin": "CLIP margin",
    "weights.clip": "weights", "weights.caption": "weights", "weights.reference": "weights",
}


def off_protocol(config: RewardConfig, base: ScoringProtocol = PROTOCOL) -> list[str]:
    """What ``config`` scores differently from the pinned protocol, in words a user of
    ``text3d score`` recognises (``["views 2 (protocol 8)", "flatness factor off"]``).

    Model identities and the captioner's side are left out (the tiny-model banner and the
    captioner line say those); an empty list means these scores are a validator's.
    """
    ours, pinned = config.to_protocol(base=base), base
    out: list[str] = []
    differences = ours.differences(pinned)
    for path in differences:
        if path.startswith(("models.", "caption.", "similarity_range")):
            continue
        if path == "rig.n_secret_views" and "rig.n_views" in differences:
            continue  # follows the number of views
        label = _PROTOCOL_FLAGS.get(path, path)
        if path == "defences.min_thickness" and config.min_thickness == 0.0:
            text = "flatness factor off"
        elif path in ("rig.n_views", "rig.resolution_px", "metric", "aggregation"):
            key = path.split(".")[-1]
            text = f"{label} {getattr(config, key)} (protocol {_get(pinned, path)})"
        else:
            text = f"{label} changed"
        if text not in out:
            out.append(text)
    return out


def _get(protocol: ScoringProtocol, path: str) -> Any:
    value: Any = protocol
    for part in path.split("."):
        value = getattr(value, part)
    return value
