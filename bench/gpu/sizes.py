"""A profile's sizes as the project's own configs: the protocol's numbers come from where the project writes them.

``None`` in a ``Profile`` means "the production value": the rig and caption length of
``text3d.reward.scoring_protocol.PROTOCOL`` (through ``RewardConfig``), Shap-E's reference
settings of ``GenerationConfig``. Worker side (imports pydantic).
"""

from __future__ import annotations

from typing import Any

from bench.gpu.profile import Profile
from text3d.generation.config import GenerationConfig
from text3d.reward.config import RewardConfig
from text3d.reward.scoring_protocol import PROTOCOL

__all__ = ["reward_config", "generation_config", "caption_max_tokens", "mesh_grid", "STEP_SEED"]

STEP_SEED = 20261204  # the step seed every part draws its secret rig and distractors from


def reward_config(profile: Profile) -> RewardConfig:
    """The production ``RewardConfig``, with the profile's rig size where it sets one (smoke)."""
    updates: dict[str, Any] = {}
    if profile.n_views is not None:
        updates["n_views"] = profile.n_views
    if profile.view_px is not None:
        updates["resolution_px"] = profile.view_px
    return RewardConfig(**updates)


def generation_config(profile: Profile, **updates: Any) -> GenerationConfig:
    """``GenerationConfig`` at the profile's sizes (``None`` fields: the reference defaults)."""
    fields: dict[str, Any] = {"device": profile.device, "show_progress": False,
                              "max_batch_size": max(profile.shap_e_batches)}
    for name, value in (("num_inference_steps", profile.shap_e_steps), ("guidance_scale", profile.guidance_scale),
                        ("grid_size", profile.grid_size)):
        if value is not None:
            fields[name] = value
    fields.update(updates)
    return GenerationConfig(**fields)


def caption_max_tokens(profile: Profile) -> int:
    return profile.caption_max_tokens if profile.caption_max_tokens is not None else PROTOCOL.caption.max_tokens


def mesh_grid(profile: Profile) -> int:
    """The grid the step's stand-in meshes are decoded at (the production grid unless the profile says)."""
    return profile.mesh_grid if profile.mesh_grid is not None else GenerationConfig().grid_size
