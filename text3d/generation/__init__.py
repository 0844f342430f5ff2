"""Text-to-3D generation: prompts -> coloured ``trimesh.Trimesh`` meshes (Shap-E by default).

Knows nothing of bittensor or scoring. ``text3d.generation.interface`` is the contract every
generator meets (``Generator``, ``TwoStageGenerator``) and loads any backend by import
path (``GeneratorSpec``). Heavy modules (torch, diffusers) load on first use of
``ShapEGenerator`` / ``ensure_tiny_pipeline``, so ``GenerationConfig`` is cheap.

    interface.py        ``Generator``, ``TwoStageGenerator``, ``GeneratorSpec`` (any backend by import path)
    config.py           ``GenerationConfig``: Shap-E's settings, checked
    shap_e.py           ``ShapEGenerator``: diffusers' ``ShapEPipeline``, sample then decode
    mesh.py             decoder output -> a ``trimesh.Trimesh`` in the project's frame
    tiny.py             a random-weight Shap-E pipeline for tests and offline demos
    production_size.py  ``openai/shap-e``'s architecture with random weights: the real cost (benches, GPU bundle)
    clip_tokenizer.py   a genuine CLIP tokenizer built offline from open_clip's vocabulary
    marching_cubes.py   the mesh decoder's lookup tables, computed (random init leaves them zero)
    primitives.py       a procedural backend: shape and colour words pick a coloured primitive
    errors.py           generation's part of the one error tree (``text3d.protocol.errors``)
"""

from typing import Any

from text3d.generation.config import GenerationConfig
from text3d.generation.errors import EmptyMeshError, GenerationError, ModelNotAvailableError
from text3d.generation.interface import Generator, GeneratorSpec, TwoStageGenerator

__all__ = [
    "Generator",
    "TwoStageGenerator",
    "GeneratorSpec",
    "GenerationConfig",
    "ShapEGenerator",
    "ensure_tiny_pipeline",
    "GenerationError",
    "ModelNotAvailableError",
    "EmptyMeshError",
]


def __getattr__(name: str) -> Any:
    if name == "ShapEGenerator":
        from text3d.generation.shap_e import ShapEGenerator

        return ShapEGenerator
    if name == "ensure_tiny_pipeline":
        from text3d.generation.tiny import ensure_tiny_pipeline

        return ensure_tiny_pipeline
    raise AttributeError(f"module 'generation' has no attribute {name!r}")
