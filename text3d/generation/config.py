"""Typed, validated settings for Shap-E generation.

Defaults are Shap-E's reference settings (guidance 15, 64 Karras steps of the
checkpoint's Heun scheduler, a 128^3 marching-cubes grid), not diffusers' pipeline
defaults (25 steps, guidance 4).
"""

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["GenerationConfig", "DEFAULT_MODEL", "TINY_MODEL"]

DEFAULT_MODEL = "openai/shap-e"
TINY_MODEL = "tiny"  # resolves to text3d.generation.tiny.ensure_tiny_pipeline()

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class GenerationConfig(BaseModel):
    """Settings for one ``ShapEGenerator``.

    Attributes:
        model: Hugging Face model id, a local folder written by ``save_pretrained``,
            or ``"tiny"`` for the random-weight offline pipeline.
        guidance_scale: classifier-free guidance weight; ``<= 1`` disables guidance.
        num_inference_steps: prior denoising steps (the scheduler's Karras sigmas).
        grid_size: marching-cubes resolution per axis; cost grows with its cube.
        query_batch_size: field points per renderer MLP call while decoding.
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda[:N]"``, ``"mps"``.
        dtype: ``"auto"`` is float16 on CUDA and float32 elsewhere.
        max_batch_size: prompts sent through the prior together.
        show_progress: progress bars; ``None`` shows them only when stderr is a terminal.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    guidance_scale: float = Field(15.0, ge=0.0, le=100.0)
    num_inference_steps: int = Field(64, ge=1, le=1000)
    grid_size: int = Field(128, ge=8, le=512)
    query_batch_size: int = Field(4096, ge=64)
    device: str = "auto"
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    max_batch_size: int = Field(4, ge=1, le=256)
    show_progress: bool | None = None

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        value = value.strip().lower()
        if not _DEVICE.match(value):
            raise ValueError(f"device must be auto, cpu, mps, cuda or cuda:N, not {value!r}")
        return value

    @field_validator("model")
    @classmethod
    def _non_empty_model(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model must be a model id, a folder or 'tiny'")
        return value.strip()
