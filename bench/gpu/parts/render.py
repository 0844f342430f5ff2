"""What rendering costs: the canonical moderngl renderer on EGL, one asset's views under the step's secret rig.

Records ``GL_RENDERER``: on a CPU fallback (llvmpipe: a container without the driver's graphics
capability, or no NVIDIA EGL vendor file) the times are marked ``software``, never GPU figures.
Each counted run renders the next of the step's stand-in meshes (``bench.gpu.meshes``), so the
median is over different Shap-E-like meshes, not one mesh cached in the driver.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np

from bench.gpu.figures import DeviceClock, Figures
from bench.gpu.gl import is_software_renderer
from bench.gpu.meshes import step_meshes
from bench.gpu.profile import Profile
from bench.gpu.sizes import STEP_SEED, mesh_grid, reward_config

__all__ = ["run"]


def run(profile: Profile, work: Path) -> Figures:
    from text3d.reward.render.camera import draw_secret_rig
    from text3d.reward.render.moderngl_backend import ModernGLRenderer

    figures = Figures()
    config = reward_config(profile)
    meshes = step_meshes(work, profile.step_assets, mesh_grid(profile), profile.device)
    figures.info["faces_median"] = int(np.median([len(m.faces) for m in meshes]))
    started = time.perf_counter()
    renderer = ModernGLRenderer.create_headless()
    figures.measured("render.context_s", time.perf_counter() - started, "s", note="EGL context + shaders")
    gl = renderer.gl_renderer
    software = is_software_renderer(gl)
    figures.measured("render.gl_renderer", gl, "name", software=software)
    figures.info.update({"gl_renderer": gl, "software": software, "msaa_samples": renderer.msaa_samples})
    rig = draw_secret_rig(config.rig, STEP_SEED)
    n_views, px = config.n_views, config.resolution_px
    cycle = itertools.cycle(meshes)
    clock = DeviceClock("cpu")  # GL calls return when the pixels are read back: nothing to synchronise
    runs = max(profile.repeats, len(meshes))
    timings = clock.run(lambda: renderer.render(next(cycle), n_views, px, rig), runs, profile.warmup)
    note = f"{n_views} views at {px} px of one ~{figures.info['faces_median']}-face mesh, read back"
    if software:
        note += f"; SOFTWARE rendering ({gl}): not a GPU figure"
    figures.timed("render.asset_s", timings, software=software, note=note)
    figures.derived("render.s_per_view", figures.value("render.asset_s") / n_views, "s", ["render.asset_s"],
                    f"/ {n_views} views", software=software)
    renderer.release()
    return figures
