"""The whole per-asset validation without captions, for one step of 16 miners, at the production protocol.

What a validator's step does with 16 answers once their bytes are in (``text3d.validator.step``):
``decode`` (each Draco payload through ``text3d.protocol.mesh_codec.decode_mesh`` under the wire
limits), ``score`` (``RewardModel.score_batch`` under the step's secret rig with the step's
distractors: render budget, render, flatness, fingerprint, one CLIP batch for all views and texts,
OCR on every view) and ``copies`` (``cluster_copies`` over the fingerprints). The canary (a known
mesh scored once per step) is timed apart. Seconds per asset = step / 16, compared with 404-GEN's
published 0.35 s per asset on one GPU. The reports' own ``timings_s`` give the split.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.gpu.figures import DeviceClock, Figures
from bench.gpu.gl import is_software_renderer
from bench.gpu.meshes import STEP_PROMPT, step_meshes
from bench.gpu.models import clip_scorer, ocr_engine
from bench.gpu.profile import Profile
from bench.gpu.sizes import STEP_SEED, mesh_grid, reward_config

__all__ = ["run", "TARGET_S_PER_ASSET"]

TARGET_S_PER_ASSET = 0.35  # 404-GEN's published validation time per asset on one GPU (DESIGN.md)


def run(profile: Profile, work: Path) -> Figures:
    from text3d.protocol.mesh_codec import decode_mesh, encode_mesh
    from text3d.reward.defences.canary import CanaryExpectations, check_canary
    from text3d.reward.defences.fingerprint import cluster_copies
    from text3d.reward.model import RewardModel
    from text3d.reward.render.moderngl_backend import ModernGLRenderer

    figures = Figures()
    config = reward_config(profile)
    n = profile.step_assets
    meshes = step_meshes(work, n, mesh_grid(profile), profile.device)
    payloads = [encode_mesh(mesh) for mesh in meshes]  # what the miners send (Draco)
    figures.info["payload_bytes_median"] = int(statistics.median(len(p) for p in payloads))
    clip, clip_info = clip_scorer(profile)
    ocr, ocr_info = ocr_engine()
    renderer = ModernGLRenderer.create_headless()
    software = is_software_renderer(renderer.gl_renderer)
    reward = RewardModel(clip, None, None, config=config, renderer=renderer, ocr=ocr, fingerprints=True)
    rig = reward.rig_for(STEP_SEED)
    distractors = reward.distractors_for(STEP_PROMPT, STEP_SEED)
    figures.info.update({"clip": clip_info, "ocr": {**ocr_info, "providers": ocr.providers()},
                         "gl_renderer": renderer.gl_renderer, "software_render": software, "assets": n,
                         "views": config.n_views, "view_px": config.resolution_px,
                         "protocol_digest": reward.protocol_digest()})
    clock = DeviceClock(profile.device)
    phases: dict[str, list[float]] = {"decode": [], "score": [], "copies": []}
    reports_box: list = []

    def step() -> None:
        t0 = time.perf_counter()
        decoded = [decode_mesh(payload) for payload in payloads]
        t1 = time.perf_counter()
        reports = reward.score_batch(decoded, [STEP_PROMPT] * n, rig=rig, step_seed=STEP_SEED,
                                     distractors=[distractors] * n)
        clock.sync()
        t2 = time.perf_counter()
        cluster_copies([report.fingerprint for report in reports])
        t3 = time.perf_counter()
        for name, seconds in (("decode", t1 - t0), ("score", t2 - t1), ("copies", t3 - t2)):
            phases[name].append(seconds)
        reports_box[:] = reports

    clock.reset()
    timings = clock.run(step, profile.repeats, profile.warmup)
    for name in phases:
        del phases[name][: profile.warmup]
    invalid = [r.invalid_reason for r in reports_box if not r.is_valid]
    if invalid:
        raise RuntimeError(f"{len(invalid)} of {n} stand-in assets were scored invalid: {invalid[0]}")
    tag = f"; SOFTWARE rendering ({renderer.gl_renderer}): not a GPU figure" if software else ""
    figures.timed("validation.step_s", timings, software=software,
                  note=f"{n} assets: decode + score_batch ({config.n_views} views at {config.resolution_px} px, "
                       f"CLIP, OCR, fingerprints, flatness, budget) + copies{tag}")
    per_asset = figures.timed("validation.s_per_asset", timings, per=n, software=software, note=f"step / {n}")
    for name, values in phases.items():
        figures.measured(f"validation.{name}_s_per_asset", statistics.median(values) / n, "s", software=software)
    split: dict[str, float] = {}
    for key in sorted({k for r in reports_box for k in r.timings_s}):
        split[key] = statistics.median(r.timings_s[key] for r in reports_box if key in r.timings_s)
        figures.measured(f"validation.score.{key}_s_per_asset", split[key], "s", software=software,
                         note="the report's own timings_s (last step)")
    peak = clock.peak_mib()
    if peak is not None:
        figures.measured("validation.peak_gpu_mib", peak, "MiB")
    figures.derived("validation.vs_target", per_asset / TARGET_S_PER_ASSET, "x", ["validation.s_per_asset"],
                    f"/ {TARGET_S_PER_ASSET} s per asset (404-GEN's published figure); below 1 is faster",
                    software=software)

    expectations = CanaryExpectations(min_clip=None, check_captions=False)  # random CLIP: renderer checks only
    canary = {}

    def run_canary() -> None:
        canary["result"] = check_canary(reward, step_seed=STEP_SEED, rig=rig, expectations=expectations)

    figures.timed("validation.canary_s", clock.run(run_canary, profile.repeats, profile.warmup), software=software,
                  note="the known mesh scored once per step (renderer checks)")
    figures.info["canary"] = canary["result"].reason
    figures.derived("validation.step_with_canary_s_per_asset",
                    (figures.value("validation.step_s") + figures.value("validation.canary_s")) / n, "s",
                    ["validation.step_s", "validation.canary_s"], f"(step + canary) / {n}", software=software)
    renderer.release()
    return figures
