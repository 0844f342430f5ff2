"""The step's stand-in meshes: what 16 miners might send, made by the tiny Shap-E pipeline.

Rendering, OCR, fingerprints and the whole validation are timed on real Shap-E output, not on
spheres: the tiny random-weight pipeline (``text3d.generation.tiny``) decodes smooth, closed,
vertex-coloured marching-cubes meshes through the production ``ShapEGenerator.decode_mesh``; at the
production grid (128) they have ~200k faces, more than the real Shap-E's 50-150k, so the
validation figures are on the safe side. One seed per miner, as a step draws them. Made once per
run and kept as ``.npz`` under the work folder, so every part times the same meshes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

__all__ = ["STEP_PROMPT", "step_meshes"]

STEP_PROMPT = "a red wooden chair with four legs"
_PRIOR_STEPS = 4  # the stand-ins' shapes come from the renderer's field; prior steps barely change them


def step_meshes(work: Path, n: int, grid: int, device: str) -> list[trimesh.Trimesh]:
    """``n`` meshes decoded at ``grid`` on ``device``; cached as ``work/meshes/step-n{n}-g{grid}.npz``."""
    path = work / "meshes" / f"step-n{n}-g{grid}.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for i, mesh in enumerate(_generate(n, grid, device)):
            arrays[f"v{i}"] = np.asarray(mesh.vertices, np.float32)
            arrays[f"f{i}"] = np.asarray(mesh.faces, np.int32)
            arrays[f"c{i}"] = np.asarray(mesh.visual.vertex_colors, np.uint8)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
    with np.load(path) as data:
        return [trimesh.Trimesh(data[f"v{i}"], data[f"f{i}"], vertex_colors=data[f"c{i}"], process=False)
                for i in range(n)]


def _generate(n: int, grid: int, device: str) -> list[trimesh.Trimesh]:
    from text3d.generation import GenerationConfig, ShapEGenerator

    # float32 on every device: the tiny pipeline's field offsets were measured in float32 (fp16 on CUDA
    # could leave a stand-in empty), and the meshes are inputs here, not what is timed
    config = GenerationConfig(model="tiny", device=device, dtype="float32", num_inference_steps=_PRIOR_STEPS,
                              grid_size=grid, max_batch_size=max(1, min(n, 16)), show_progress=False)
    generator = ShapEGenerator.from_pretrained(config=config)
    return generator.generate([STEP_PROMPT] * n, [1000 + i for i in range(n)])
