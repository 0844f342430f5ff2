"""``ClipScorer``: CLIP image and text embeddings (open-clip-torch), text embeddings cached.

Default checkpoint: ``ViT-L-14`` / ``datacomp_xl_s13b_b90k`` (hub repo
``laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K``, ~1.7 GB fp32). It is the strongest
plain ViT-L/14 in open_clip's public list (79.2 % ImageNet zero-shot against 75.5 %
for OpenAI's ViT-L/14 and 66.6 % for ViT-B-32 laion2b), uses the standard CLIP
tokenizer and 224 px input, and fits a validator GPU beside LLaVA. ``ViT-B-32`` /
``laion2b_s34b_b79k`` (600 MB) is the CPU-friendly choice; pass it explicitly.

Contracts: embeddings are float32 CPU tensors, one row per input, unit L2 norm.
Prompt and reject texts recur every step, so ``encode_texts`` keeps an in-memory
cache per scorer (one scorer = one model); ``texts_encoded`` / ``images_encoded``
count the inputs that actually went through the model.

The CLIP component (``contrastive_clip``, pure numpy) -- contrastive, R-precision style,
with a smooth margin. For view v with image embedding x_v, the prompt p and the
contrast set D = K distractor prompts drawn from (prompt, step seed) plus the junk texts
(all embeddings unit vectors, s = cosine)::

    s_p      = cos(x_v, p)          s_d = cos(x_v, d)  for d in D
    clip_v   = (1 / |D|) * sum_{d in D} sigmoid((s_p - s_d - margin) / temperature)
    clip     = mean_v clip_v        (the protocol's aggregation)

clip_v is a soft R-precision: the share of contrast texts the view prefers its prompt
over, each counted smoothly. A view that leads a contrast text by ``margin`` earns half
of that text's share, by ``margin + 2 * temperature`` 0.88, by ``margin + 4 * temperature``
0.98; a tie earns sigmoid(-margin / temperature) (0.18 with the defaults margin 0.03,
temperature 0.02). No step anywhere: moving a similarity by e moves clip_v by at most
e / (4 * temperature), so near-ties no longer flip a view between 0 and 0.5 on GPUs
that round differently, and a view must beat real prompts, not only four junk texts, to
score high -- the component separates good from great, not just garbage from the rest.

``draw_distractors(prompt, step_seed, pool, k)`` is the deterministic draw the
RewardModel uses when the validator passes no distractors of its own.
"""

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from text3d.common.device import resolve_device
from text3d.reward.errors import ModelUnavailable

__all__ = [
    "ClipScorer",
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_CLIP_PRETRAINED",
    "cosine_matrix",
    "contrastive_clip",
    "draw_distractors",
]

DEFAULT_CLIP_MODEL = "ViT-L-14"
DEFAULT_CLIP_PRETRAINED = "datacomp_xl_s13b_b90k"


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, D] x [M, D] unit vectors -> [N, M] cosine similarities."""
    return a @ b.T


def contrastive_clip(
    s_prompt: np.ndarray, s_contrast: np.ndarray, *, temperature: float, margin: float
) -> np.ndarray:
    """Per-view CLIP component (see the module docstring), float64 in (0, 1).

    ``s_prompt``: [V] cosine(view, prompt); ``s_contrast``: [V, K] cosine(view, contrast
    text) with K >= 1. Raises ``ValueError`` on mismatched shapes or K == 0.
    """
    s_prompt = np.asarray(s_prompt, dtype=np.float64).reshape(-1)
    s_contrast = np.asarray(s_contrast, dtype=np.float64)
    if s_contrast.ndim != 2 or s_contrast.shape[0] != s_prompt.shape[0] or s_contrast.shape[1] == 0:
        raise ValueError(f"s_contrast must be [V={s_prompt.shape[0]}, K>=1], got {s_contrast.shape}")
    z = (s_prompt[:, None] - s_contrast - margin) / temperature
    # numerically stable sigmoid: exp of a non-positive number only
    sig = np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))
    return sig.mean(axis=1)


def draw_distractors(prompt: str, step_seed: int, pool: Sequence[str], k: int) -> list[str]:
    """``k`` distinct texts of ``pool`` other than ``prompt`` (case-insensitive), drawn by a
    generator that depends only on ``(prompt, step_seed)``: the same list on every validator.
    Returns fewer when the pool is smaller. Order follows the draw."""
    from text3d.common.seeds import step_rng

    key = prompt.strip().lower()
    candidates = list(dict.fromkeys(t for t in pool if t.strip().lower() != key))
    rng = step_rng(int(step_seed), "distractors/" + key)
    picks = rng.choice(len(candidates), size=min(k, len(candidates)), replace=False) if candidates else []
    return [candidates[int(i)] for i in picks]


class ClipScorer:
    """Holds one open_clip model, its image transform and tokenizer. Cheap to construct."""

    def __init__(
        self,
        model: Any,
        preprocess: Any,
        tokenizer: Any,
        *,
        model_name: str,
        pretrained: str,
        device: str = "cpu",
        batch_size: int = 64,
    ) -> None:
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.pretrained = pretrained
        self.device = device
        self.batch_size = batch_size
        self.texts_encoded = 0
        self.images_encoded = 0
        self._text_cache: dict[str, torch.Tensor] = {}

    @property
    def name(self) -> str:
        """``model/pretrained`` tag; a file path is reduced to its name."""
        tag = Path(self.pretrained).name if ("/" in self.pretrained or "\\" in self.pretrained) else self.pretrained
        return f"{self.model_name}/{tag}"

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") else -1

    @classmethod
    def from_pretrained(
        cls,
        model_name: str = DEFAULT_CLIP_MODEL,
        pretrained: str | Path = DEFAULT_CLIP_PRETRAINED,
        *,
        device: str = "auto",
        batch_size: int = 64,
        cache_dir: str | Path | None = None,
    ) -> "ClipScorer":
        """Load a model by open_clip name and pretrained tag (hub download) or checkpoint file.

        Raises ``ModelUnavailable`` when the weights are missing (offline without a cached
        copy, a path that does not exist) or fail to load.
        """
        import open_clip

        device = resolve_device(device)
        pretrained = str(pretrained)
        if model_name not in open_clip.list_models():
            raise ModelUnavailable(f"open_clip has no model named {model_name!r}; see open_clip.list_models()")
        looks_like_path = pretrained.endswith((".pt", ".bin", ".safetensors")) or "/" in pretrained
        if looks_like_path and not Path(pretrained).is_file():
            raise ModelUnavailable(f"CLIP checkpoint {pretrained} does not exist")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=device, cache_dir=None if cache_dir is None else str(cache_dir)
            )
            tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as exc:  # hub/offline/IO/state-dict errors all mean "no usable weights"
            raise ModelUnavailable(
                f"CLIP weights {model_name}/{pretrained} could not be loaded ({type(exc).__name__}); download "
                "them once with network access (HF_HUB_OFFLINE unset) or use the tiny test model (--models tiny)"
            ) from exc
        model.eval()
        return cls(model, preprocess, tokenizer, model_name=model_name, pretrained=pretrained, device=device,
                   batch_size=batch_size)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """[N, D] float32 unit vectors, one per image, in ``batch_size`` chunks."""
        if not images:
            return torch.zeros((0, self.embed_dim), dtype=torch.float32)
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(img.convert("RGB")) for img in images[start : start + self.batch_size]])
            features = self.model.encode_image(batch.to(self.device))
            chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
        self.images_encoded += len(images)
        return torch.cat(chunks)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """[N, D] float32 unit vectors; texts seen before come from the cache, the rest go in one batch."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            features = self.model.encode_text(self.tokenizer(batch).to(self.device))
            features = torch.nn.functional.normalize(features.float(), dim=-1).cpu()
            self._text_cache.update(zip(batch, features))
            self.texts_encoded += len(batch)
        if not texts:
            return torch.zeros((0, self.embed_dim), dtype=torch.float32)
        return torch.stack([self._text_cache[t] for t in texts])

    def similarity(self, images: Sequence[Image.Image], texts: Sequence[str]) -> torch.Tensor:
        """[N images, M texts] cosine similarities."""
        return cosine_matrix(self.encode_images(images), self.encode_texts(texts))

    def clear_cache(self) -> None:
        self._text_cache.clear()
