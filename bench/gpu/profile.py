"""The sizes a run measures at: the production protocol on a GPU, the same code path tiny in ``--smoke``.

Stdlib only (the orchestrator builds one before anything is installed and hands it to each worker
as JSON). ``gpu()`` is the production protocol: ``None`` fields take their value, in the worker,
from the one place the project writes it (``text3d.reward.scoring_protocol.PROTOCOL``: 8 views at
512 px, 64 caption tokens; ``text3d.generation.config.GenerationConfig``: Shap-E's reference 64
Karras steps, guidance 15, grid 128, fp16 on CUDA); a step is 16 miners. ``smoke()`` keeps every
stage and shrinks every size so that a 2-core CPU runs the lot in well under a minute of work per part.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["Profile"]


@dataclass(frozen=True)
class Profile:
    name: str
    shap_e_model: str  # "production-size" (random weights) or "tiny"
    shap_e_steps: int | None  # None: GenerationConfig's (Shap-E's reference 64 Karras steps)
    guidance_scale: float | None  # None: GenerationConfig's (15)
    shap_e_batches: tuple[int, ...]
    grid_size: int | None  # None: GenerationConfig's (128)
    clip_model: str  # "ViT-L-14" (random weights) or "tiny"
    step_assets: int  # miners answering one step
    n_views: int | None  # None: the protocol's (PROTOCOL.rig.n_views), read where pydantic is importable
    view_px: int | None  # None: PROTOCOL.rig.resolution_px
    mesh_grid: int | None  # the grid the step's stand-in meshes are decoded at (tiny Shap-E); None: 128
    llava_shape: str  # "7b" or "tiny"
    caption_max_tokens: int | None  # None: PROTOCOL.caption.max_tokens
    caption_views: int
    repeats: int
    warmup: int
    device: str  # "cuda" or "cpu"

    @classmethod
    def gpu(cls) -> "Profile":
        return cls(name="gpu", shap_e_model="production-size", shap_e_steps=None, guidance_scale=None,
                   shap_e_batches=(1, 4), grid_size=None, clip_model="ViT-L-14", step_assets=16, n_views=None,
                   view_px=None, mesh_grid=None, llava_shape="7b", caption_max_tokens=None, caption_views=8,
                   repeats=3, warmup=1, device="cuda")

    @classmethod
    def smoke(cls) -> "Profile":
        return cls(name="smoke", shap_e_model="tiny", shap_e_steps=2, guidance_scale=15.0, shap_e_batches=(1, 2),
                   grid_size=16, clip_model="tiny", step_assets=2, n_views=2, view_px=64, mesh_grid=16,
                   llava_shape="tiny", caption_max_tokens=4, caption_views=1, repeats=1, warmup=1, device="cpu")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Profile":
        data = json.loads(text)
        data["shap_e_batches"] = tuple(data["shap_e_batches"])
        return cls(**data)
