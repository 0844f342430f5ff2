"""The ONE scoring protocol: every number that decides a score, pinned and versioned.

Validators that must agree score with exactly this value. It is a frozen pydantic model
(``PROTOCOL``) whose canonical JSON has a stable SHA-256 ``digest()``; its ``version`` is
the subnet's ``text3d.protocol.version.SPEC_VERSION``, so a change of any scoring number ships
as a new release. ``text3d.reward.config.RewardConfig`` takes every default from here (the one
place), and ``RewardConfig.to_protocol()`` rebuilds the protocol a validator actually
scores with, to be checked with ``check_protocol`` before the first step::

    candidate = reward_config.to_protocol(caption=CaptionSpec(instruction=..., max_tokens=...))
    check_protocol(candidate, network, has_captioner=captioner is not None)   # ConfigError or None

Sections:

* ``rig``      -- 8 views at 512 px: a ring of ``n_views - n_secret_views`` evenly spaced
  azimuths turned by a secret offset, each at its own secret elevation, plus
  ``n_secret_views`` views from below or above at secret azimuths (``text3d.reward.render.camera.
  draw_secret_rig``); field of view, camera distance, background, lighting.
* ``models``   -- CLIP (open_clip name + pretrained tag, its hub repository) and the
  caption text model (all-mpnet-base-v2) with revisions.
* ``caption``  -- the instruction sent with each view, ``max_tokens``, temperature, seed.
* ``clip``     -- the contrastive CLIP component (``text3d.reward.clip.contrastive_clip``):
  temperature, margin, how many distractor prompts, the junk texts and the fixed pool
  distractors are drawn from when the validator passes none.
* ``weights``, ``metric``, ``aggregation``, ``similarity_range`` -- how components combine.
* ``defences`` -- OCR, flatness, fingerprint and overdraw thresholds.

Operational settings that change no score (batch sizes, deadlines, devices) are not part
of the protocol.
"""

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from text3d.protocol.errors import ConfigError
from text3d.protocol.version import SPEC_VERSION

__all__ = [
    "CameraSpec",
    "RigSpec",
    "ModelSpec",
    "CaptionSpec",
    "ClipSpec",
    "DefenceSpec",
    "RewardWeights",
    "ScoringProtocol",
    "PROTOCOL",
    "PINNED_NETWORKS",
    "PINNED_FIELD",
    "check_protocol",
]

PINNED_NETWORKS = ("finney", "test")
"""Networks on which a validator must score with exactly ``PROTOCOL`` and a captioner."""

PINNED_FIELD = {"pinned": True}
"""``json_schema_extra`` of a config field whose value this protocol fixes on ``PINNED_NETWORKS``
(``RewardConfig``, ``CaptionerConfig``): the field's flag says so in its help."""

_FROZEN = ConfigDict(extra="forbid", frozen=True)

Range = tuple[float, float]


def _ordered(name: str, value: Range, low: float, high: float) -> None:
    a, b = value
    if not low <= a <= b <= high:
        raise ValueError(f"{name} must be (a, b) with {low} <= a <= b <= {high}, got {value}")


class CameraSpec(BaseModel):
    """Where the cameras may be and how the scene is lit. Angles in degrees; +Y up;
    azimuth 0 looks from +Z."""

    model_config = _FROZEN

    canonical_elevation_deg: float = 20.0  # the public rig, used when no step seed is given
    elevation_range_deg: Range = (5.0, 35.0)  # each ring view draws its own elevation from here
    azimuth_offset_range_deg: Range = (0.0, 360.0)  # the ring is turned by one draw from here
    secret_elevation_bands_deg: tuple[Range, ...] = ((-50.0, -25.0), (50.0, 70.0))  # below, above
    fov_deg: float = 40.0
    distance: float = 3.0
    background_rgb: tuple[int, int, int] = (255, 255, 255)
    fallback_rgb: tuple[int, int, int] = (170, 170, 170)
    light_dir_camera: tuple[float, float, float] = (-0.35, 0.55, 1.0)
    ambient: float = 0.35
    diffuse: float = 0.65

    @model_validator(mode="after")
    def _check(self) -> "CameraSpec":
        _ordered("elevation_range_deg", self.elevation_range_deg, -80.0, 80.0)
        _ordered("azimuth_offset_range_deg", self.azimuth_offset_range_deg, -360.0, 360.0)
        if not -80.0 <= self.canonical_elevation_deg <= 80.0:
            raise ValueError("canonical_elevation_deg must be in [-80, 80]")
        if not self.secret_elevation_bands_deg:
            raise ValueError("secret_elevation_bands_deg needs at least one band")
        for band in self.secret_elevation_bands_deg:
            _ordered("secret_elevation_bands_deg", band, -80.0, 80.0)
        return self


class RigSpec(BaseModel):
    """The rig: how many views at what size, how many of them from below/above, the cameras."""

    model_config = _FROZEN

    n_views: int = Field(8, ge=1, le=64)
    resolution_px: int = Field(512, ge=32, le=2048)
    n_secret_views: int = Field(2, ge=0)  # views from below/above at a secret azimuth
    camera: CameraSpec = CameraSpec()

    @model_validator(mode="after")
    def _check(self) -> "RigSpec":
        if self.n_secret_views >= self.n_views:
            raise ValueError("n_secret_views must leave at least one ring view")
        return self

    @property
    def n_ring_views(self) -> int:
        return self.n_views - self.n_secret_views


class ModelSpec(BaseModel):
    """Model identities. ``*_revision`` pins the exact weights where the hub offers one."""

    model_config = _FROZEN

    clip_model: str = "ViT-L-14"
    clip_pretrained: str = "datacomp_xl_s13b_b90k"
    # open_clip_torch==3.3.0 resolves the tag above to this hub repository (open_clip/pretrained.py)
    clip_hf_hub: str | None = "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K"
    clip_revision: str | None = None  # the open_clip pin fixes the file; no hub commit is pinned yet
    text_model: str = "sentence-transformers/all-mpnet-base-v2"
    # the commit of the genuine weights scripts/fetch_mpnet.sh installs (HF cache snapshot name)
    text_revision: str | None = "0494cc34261c7abf27fcadc74050cbc4fd9b74a0"


class CaptionSpec(BaseModel):
    """What the captioner is asked; ``text3d.reward.caption_client.CaptionerConfig`` defaults to it."""

    model_config = _FROZEN

    instruction: str = "Describe this 3D model"
    max_tokens: int = Field(64, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int | None = 0
    include_prompt: bool = False  # the prompt would leak the answer into the caption


DEFAULT_REJECT_TEXTS = (
    "an empty white image",
    "a blurry shapeless blob",
    "random noise",
    "a flat grey plane",
)

# Ordinary objects the validator draws distractors from when it passes none of its own
# (the validator passes prompts from its prompt source; see text3d.validator.prompts).
DEFAULT_DISTRACTOR_POOL = (
    "a wooden chair", "a red sports car", "a ceramic coffee mug", "a green cactus in a pot",
    "a golden crown", "a blue umbrella", "a stone castle tower", "a yellow rubber duck",
    "a leather boot", "a brass trumpet", "a white teapot", "a pine tree", "a black cat",
    "an old steam locomotive", "a pink donut with sprinkles", "a silver laptop",
    "a glass bottle", "a toy robot", "a wooden rowing boat", "a red apple",
    "a grand piano", "a bicycle", "a table lamp", "a backpack", "a sunflower",
    "a fire hydrant", "a snowman", "an armchair", "a treasure chest", "a dragon",
    "a hot air balloon", "a mushroom", "a guitar", "a rocket", "a horse",
    "a sailing ship", "a cupcake", "a penguin", "a skull", "a vase of flowers",
)


class ClipSpec(BaseModel):
    """The contrastive CLIP component; the formula is in ``text3d.reward.clip``."""

    model_config = _FROZEN

    temperature: float = Field(0.02, gt=0.0)  # cosine units per logit: the width of the smooth step
    margin: float = Field(0.03, ge=0.0)  # cosine lead over a distractor that earns one half
    n_distractors: int = Field(15, ge=1, le=256)  # distractor prompts per (prompt, step seed)
    reject_texts: tuple[str, ...] = DEFAULT_REJECT_TEXTS
    distractor_pool: tuple[str, ...] = DEFAULT_DISTRACTOR_POOL

    @model_validator(mode="after")
    def _check(self) -> "ClipSpec":
        if not self.reject_texts:
            raise ValueError("reject_texts must list at least one junk text")
        if len(set(self.distractor_pool)) < self.n_distractors + 1:
            raise ValueError("distractor_pool must hold more distinct prompts than n_distractors")
        return self


class DefenceSpec(BaseModel):
    """Thresholds of the typographic, flat-shape, copycat and budget defences."""

    model_config = _FROZEN

    ocr_max_chars: int = Field(5, ge=0)  # a view with more legible characters than this scores 0
    ocr_min_confidence: float = Field(0.6, ge=0.0, le=1.0)  # OCR lines below it are not legible
    ocr_engine: str = "rapidocr-onnxruntime==1.4.4"
    min_thickness: float = Field(0.03, ge=0.0, le=1.0)  # text3d.reward.defences.flatness: factor = min(1, t / this)
    # text3d.reward.defences.fingerprint: two answers are one object when the chamfer distance after
    # affine alignment (whitened units) is at most fingerprint_max_distance and, once every offset is
    # averaged over its neighbours (noise cancels, a bump does not), at most
    # fingerprint_max_smooth_distance; or fingerprint_relief_ratio
    # of the smaller relief (shape beyond an ellipsoid), or fingerprint_detail_ratio of the smaller fine
    # detail (offset from local quadric fits), once bent, capped at fingerprint_relief_max_distance; or,
    # when their colour histograms differ by at most fingerprint_colour_histogram_max and their aligned
    # colour patterns agree at least fingerprint_min_colour_agreement, at most fingerprint_colour_max_distance
    # apart; or, with the same histograms and patterns of two or more independent colours on both, when
    # re-aligned by colour their second canonical colour correlation is at least
    # fingerprint_min_pattern_agreement, at most fingerprint_pattern_max_distance apart
    fingerprint_max_distance: float = Field(0.025, gt=0.0)
    fingerprint_max_smooth_distance: float = Field(0.005, gt=0.0)
    fingerprint_relief_ratio: float = Field(0.1, ge=0.0)
    fingerprint_relief_max_distance: float = Field(0.07, gt=0.0)
    fingerprint_detail_ratio: float = Field(1.55, ge=0.0)
    fingerprint_colour_max_distance: float = Field(0.08, gt=0.0)
    fingerprint_min_colour_agreement: float = Field(0.95, ge=-1.0, le=1.0)  # correlation of aligned colours
    fingerprint_colour_histogram_max: float = Field(0.15, ge=0.0, le=1.0)  # total variation of RGB histograms
    fingerprint_min_pattern_agreement: float = Field(0.8, ge=0.0, le=1.0)
    fingerprint_pattern_max_distance: float = Field(0.14, gt=0.0)
    # ... and never when their proportions (principal spreads over their geometric mean) differ by more
    # than this factor on some axis (a stretch of +-25 % per axis changes them by 1.4 at most)
    fingerprint_max_aspect_change: float = Field(1.6, ge=1.0)
    fingerprint_view_max_distance: float = Field(0.02, gt=0.0)  # per-pixel RMS at 32 px, same rig
    # an answer's body, what its fingerprint describes: the surface within this many of its own principal
    # spreads of its centre (text3d.reward.defences.shape_cloud); a decoy placed farther off is not the object
    fingerprint_body_reach: float = Field(3.5, gt=0.0)
    max_overdraw: float = Field(8.0, gt=0.0)  # text3d.reward.defences.budget: projected area / viewport, worst view
    max_edge_overdraw: float = Field(256.0, gt=0.0)  # ... and projected edge length in pixels / image pixels


class RewardWeights(BaseModel):
    """Relative weight of each score component; renormalised over the components present."""

    model_config = _FROZEN

    clip: float = Field(0.5, ge=0.0)
    caption: float = Field(0.35, ge=0.0)
    reference: float = Field(0.15, ge=0.0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> "RewardWeights":
        if self.clip + self.caption + self.reference <= 0.0:
            raise ValueError("at least one reward weight must be positive")
        return self


# Raw similarity that maps to 0 and to 1, per metric (clipped outside). Chosen from
# all-mpnet-base-v2 on captions: unrelated sentences sit near cosine 0.0-0.15, a caption
# that paraphrases the prompt 0.6-0.9. euclidean is 1/(1+d) on unit vectors, so the
# same cosines map to about 0.43 and 0.61. jaccard is the word-set overlap.
DEFAULT_SIMILARITY_RANGE: dict[str, tuple[float, float]] = {
    "cosine": (0.1, 0.8),
    "dot": (0.1, 0.8),
    "euclidean": (0.43, 0.62),
    "jaccard": (0.0, 0.6),
}


class ScoringProtocol(BaseModel):
    """Everything that decides a score. ``digest()`` names it in reports and at start-up."""

    model_config = _FROZEN

    version: int = SPEC_VERSION
    rig: RigSpec = RigSpec()
    models: ModelSpec = ModelSpec()
    caption: CaptionSpec = CaptionSpec()
    clip: ClipSpec = ClipSpec()
    weights: RewardWeights = RewardWeights()
    metric: Literal["cosine", "jaccard", "euclidean", "dot"] = "cosine"
    aggregation: Literal["sum", "mean", "median", "none"] = "mean"
    similarity_range: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(DEFAULT_SIMILARITY_RANGE))
    defences: DefenceSpec = DefenceSpec()

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace, floats as Python writes them: the same bytes everywhere."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def digest(self) -> str:
        """SHA-256 hex of ``canonical_json()``."""
        return hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()

    def differences(self, other: "ScoringProtocol") -> list[str]:
        """Dotted paths whose values differ, e.g. ``["rig.n_views", "caption.max_tokens"]``."""
        return sorted(_diff(self.model_dump(mode="json"), other.model_dump(mode="json"), ""))


def _diff(a: object, b: object, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        return out
    return [] if a == b else [path or "<root>"]


PROTOCOL = ScoringProtocol()
"""The pinned protocol of this release."""


def check_protocol(
    candidate: ScoringProtocol, network: str, *, has_captioner: bool = True, pinned: ScoringProtocol = PROTOCOL
) -> None:
    """Refuse to score on a pinned network with anything but the pinned protocol.

    On ``finney`` and ``test`` the candidate must equal ``pinned`` exactly (same digest) and
    a captioner must be configured; devnet and local networks may change anything. Returns
    None or raises ``ConfigError`` naming the differing settings.
    """
    if network not in PINNED_NETWORKS:
        return
    if not has_captioner:
        raise ConfigError(
            f"a validator on {network} must caption its views: configure a captioner (an OpenAI-compatible "
            "LLaVA server) instead of scoring CLIP only"
        )
    if candidate.digest() != pinned.digest():
        changed = ", ".join(candidate.differences(pinned)) or "the canonical JSON"
        raise ConfigError(
            f"the scoring protocol differs from the pinned protocol {pinned.digest()[:12]} of spec_version "
            f"{pinned.version} in {changed}; validators on {network} must score with the defaults (change "
            "them only on devnet or local)"
        )
