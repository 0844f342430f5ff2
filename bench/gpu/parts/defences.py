"""What the defences cost per asset: OCR on every view, the copycat fingerprint, the flatness check, the render budget.

Each is the function ``RewardModel`` calls, on the step's stand-in meshes and their renders under
the step's secret rig: ``ocr_views`` with the protocol's rapidocr engine (onnxruntime's CUDA
provider when this onnxruntime has one: ``ocr.providers`` says which ran), ``fingerprint`` (geometry
+ views), ``thickness``/``flatness_factor``/``silhouette_fractions``, ``estimate_overdraw``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

from bench.gpu.figures import DeviceClock, Figures
from bench.gpu.gl import is_software_renderer
from bench.gpu.meshes import step_meshes
from bench.gpu.models import ocr_engine
from bench.gpu.profile import Profile
from bench.gpu.sizes import STEP_SEED, mesh_grid, reward_config

__all__ = ["run", "OCR_ASSETS"]

OCR_ASSETS = 4  # assets whose every view goes through OCR (per-view cost; a step is 16 x 8 views)


def run(profile: Profile, work: Path) -> Figures:
    from text3d.reward.defences.budget import estimate_overdraw
    from text3d.reward.defences.fingerprint import fingerprint
    from text3d.reward.defences.flatness import flatness_factor, silhouette_fractions, thickness
    from text3d.reward.defences.ocr import ocr_views
    from text3d.reward.render.camera import draw_secret_rig
    from text3d.reward.render.moderngl_backend import ModernGLRenderer

    figures = Figures()
    config = reward_config(profile)
    meshes = step_meshes(work, profile.step_assets, mesh_grid(profile), profile.device)
    rig = draw_secret_rig(config.rig, STEP_SEED)
    n_views, px = config.n_views, config.resolution_px
    renderer = ModernGLRenderer.create_headless()
    figures.info["gl_renderer"] = renderer.gl_renderer
    views = [renderer.render(mesh, n_views, px, rig) for mesh in meshes]
    renderer.release()
    clock = DeviceClock("cpu")  # these run on the CPU (OCR on onnxruntime's provider, which synchronises itself)
    pairs = list(zip(meshes, views))

    engine, info = ocr_engine()
    providers = engine.providers()
    figures.info["ocr"] = {**info, "providers": providers}
    on_cpu = providers[:1] == ["CPUExecutionProvider"]
    flat_views = [image for asset in views[:OCR_ASSETS] for image in asset]
    images = itertools.cycle(flat_views)
    timings = clock.run(lambda: ocr_views(engine, [next(images)], max_chars=config.ocr_max_chars,
                                          min_confidence=config.ocr_min_confidence),
                        max(profile.repeats, len(flat_views)), profile.warmup)
    figures.timed("ocr.s_per_view", timings, note=f"rapidocr (PP-OCRv4) on {providers[0]}, one {px} px view")
    figures.measured("ocr.provider", providers[0], "name",
                     note="onnxruntime's CPU build: no CUDA provider" if on_cpu else "onnxruntime's CUDA provider")
    figures.derived("ocr.s_per_asset", figures.value("ocr.s_per_view") * n_views, "s", ["ocr.s_per_view"],
                    f"x {n_views} views (ocr_views reads them one by one)")

    rig_key = hashlib.sha256(json.dumps(rig.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    cycle = itertools.cycle(pairs)
    runs = max(profile.repeats, len(pairs))
    figures.timed("fingerprint.s_per_asset", clock.run(lambda: fingerprint(*next(cycle), rig_key), runs,
                                                       profile.warmup), note="geometry + view fingerprint")

    def flatness() -> None:
        mesh, images_ = next(cycle)
        flatness_factor(thickness(mesh), config.min_thickness)
        silhouette_fractions(images_, rig.background_rgb)

    figures.timed("flatness.s_per_asset", clock.run(flatness, runs, profile.warmup),
                  note="surface thickness + silhouettes of the views")
    figures.timed("budget.s_per_asset", clock.run(
        lambda: estimate_overdraw(next(cycle)[0], rig, n_views, px, config.max_overdraw, config.max_edge_overdraw),
        runs, profile.warmup),
        note="overdraw estimate before rendering")
    figures.info["software_render"] = is_software_renderer(renderer.gl_renderer)
    return figures
