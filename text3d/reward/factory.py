"""``build_reward_model``: the one place that decides which models a RewardModel is made of.

The score CLI, the validator, the demo and the benchmarks all call this, so a model
set means the same thing everywhere:

* ``real``: the production CLIP named in ``RewardConfig`` (default ViT-L-14 /
  datacomp_xl_s13b_b90k, from the Hugging Face hub) + all-mpnet-base-v2.
* ``tiny``: the tiny random-weight CLIP from ``ensure_tiny_clip()`` + the GENUINE
  all-mpnet-base-v2 from the local Hugging Face cache (``scripts/fetch_mpnet.sh``):
  offline, fast, and caption similarities still mean something.

Missing weights raise ``ModelUnavailable`` with a sentence that says how to get them.
"""

from pathlib import Path
from typing import Any, Literal

from text3d.reward.caption import Captioner
from text3d.reward.clip import ClipScorer
from text3d.reward.config import RewardConfig
from text3d.common.device import resolve_device
from text3d.reward.errors import ModelUnavailable
from text3d.reward.model import Renderer, RewardModel
from text3d.reward.text import TextEmbedder
from text3d.reward.tiny_clip import ensure_tiny_clip

__all__ = ["build_reward_model", "clip_hub_repo", "ModelSet"]

ModelSet = Literal["real", "tiny"]


def build_reward_model(
    models: ModelSet = "real",
    captioner: Captioner | None = None,
    *,
    device: str = "auto",
    config: RewardConfig | None = None,
    in_memory: bool = True,
    cache_dir: Path | None = None,
    renderer: Renderer | None = None,
    text: TextEmbedder | None = None,
    ocr: Any = None,
) -> RewardModel:
    """Load the model set and wrap it in a ``RewardModel``.

    ``text`` lets a caller that already holds a loaded ``TextEmbedder`` (438 MB) share it.
    ``ocr`` (e.g. ``text3d.reward.defences.ocr.RapidOcrEngine()``) turns the typographic guard on.
    Without a captioner the text model is not loaded (CLIP-only scoring does not use it).
    """
    if models not in ("real", "tiny"):
        raise ValueError(f"unknown model set {models!r}; choose 'real' or 'tiny'")
    config = config or RewardConfig()
    device = resolve_device(device)
    if models == "tiny":
        name, weights = ensure_tiny_clip()
        try:
            clip = ClipScorer.from_pretrained(name, weights, device=device, batch_size=config.clip_batch_size)
        except ModelUnavailable as exc:  # --models tiny is already set: never suggest it
            raise ModelUnavailable(f"the tiny test CLIP {weights} could not be loaded ({_cause(exc)}); delete "
                                   f"{Path(weights).parent} and run again to rebuild it") from exc
        config = config.model_copy(update={"clip_model": name, "clip_pretrained": str(weights)})
    else:
        try:
            clip = ClipScorer.from_pretrained(config.clip_model, config.clip_pretrained, device=device,
                                              batch_size=config.clip_batch_size)
        except ModelUnavailable as exc:
            repo = clip_hub_repo(config.clip_model, config.clip_pretrained)
            fetch = f"`hf download {repo}`" if repo else "a download with internet access (HF_HUB_OFFLINE unset)"
            raise ModelUnavailable(
                f"CLIP weights {config.clip_model}/{config.clip_pretrained} are not available ({_cause(exc)}); "
                f"get them once with {fetch}, or score offline with the test models (--models tiny)"
            ) from exc
    if text is None and captioner is not None:  # CLIP-only scoring never touches mpnet: skip 438 MB
        text = TextEmbedder.from_pretrained(config.text_model, device=device, batch_size=config.text_batch_size)
    return RewardModel(clip, text, captioner, config=config, in_memory=in_memory, cache_dir=cache_dir,
                       renderer=renderer, ocr=ocr)


def clip_hub_repo(model_name: str, pretrained: str) -> str | None:
    """The Hugging Face repo open_clip downloads ``model_name``/``pretrained`` from (None if not on the hub)."""
    try:
        import open_clip

        hub = open_clip.get_pretrained_cfg(model_name, pretrained).get("hf_hub", "")
    except Exception:
        return None
    return hub.rstrip("/") or None


def _cause(exc: BaseException) -> str:
    """The innermost exception's type: what actually failed under a ``ModelUnavailable``."""
    inner = exc.__cause__ or exc
    return type(inner).__name__
