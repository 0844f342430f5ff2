"""``RewardConfig``: every weight, threshold and model name the scoring core uses.

Nothing in ``reward.model`` hard-codes a number that changes a score: validators that
must agree share one config, and a changed config is visible in every report.
"""

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Metric", "Aggregation", "RewardWeights", "RewardConfig", "resolve_device", "METRICS", "AGGREGATIONS"]

Metric = Literal["cosine", "jaccard", "euclidean", "dot"]
Aggregation = Literal["sum", "mean", "median", "none"]
METRICS: tuple[str, ...] = get_args(Metric)
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)

DEFAULT_REJECT_TEXTS = (
    "an empty white image",
    "a blurry shapeless blob",
    "random noise",
    "a flat grey plane",
)

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


class RewardWeights(BaseModel):
    """Relative weight of each score component; renormalised over the components present."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: float = Field(0.5, ge=0.0)
    caption: float = Field(0.35, ge=0.0)
    reference: float = Field(0.15, ge=0.0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> "RewardWeights":
        if self.clip + self.caption + self.reference <= 0.0:
            raise ValueError("at least one reward weight must be positive")
        return self


class RewardConfig(BaseModel):
    """The scoring core's section of the config: models, rig size, metric, weights, gates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_model: str = "ViT-L-14"
    clip_pretrained: str = "datacomp_xl_s13b_b90k"
    text_model: str = "sentence-transformers/all-mpnet-base-v2"

    n_views: int = Field(8, ge=1, le=64)
    resolution_px: int = Field(512, ge=32, le=2048)

    metric: Metric = "cosine"
    aggregation: Aggregation = "mean"
    similarity_range: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(DEFAULT_SIMILARITY_RANGE))

    reject_texts: tuple[str, ...] = DEFAULT_REJECT_TEXTS
    # CLIP's softmax over [prompt] + reject_texts uses logits = scale * cosine. 100 is
    # CLIP's trained logit scale (temperature 0.01).
    clip_logit_scale: float = Field(100.0, gt=0.0)
    # A view counts zero when max(reject cosine) >= prompt cosine - margin.
    clip_reject_margin: float = 0.0

    weights: RewardWeights = RewardWeights()

    clip_batch_size: int = Field(64, ge=1)
    text_batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _ranges_cover_metrics(self) -> "RewardConfig":
        for metric in METRICS:
            low, high = self.similarity_range.get(metric, (None, None))
            if low is None or not high > low:
                raise ValueError(f"similarity_range[{metric!r}] must be (low, high) with high > low")
        if not self.reject_texts:
            raise ValueError("reject_texts must list at least one negative text")
        return self


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; anything else passes through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
