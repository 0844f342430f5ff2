"""What CLIP costs a validator: one view, one asset's views, a whole step's views, and the step's texts.

The production ``ClipScorer`` (fp32, ``RewardConfig.clip_batch_size``) on ViT-L-14 with random
weights; the images are view-sized (the protocol's 512 px, resized to CLIP's 224 by the model's own
transform, which is part of the cost). The step's texts are what ``RewardModel`` encodes for one
step: the prompt, the distractors drawn for it and the junk texts (a step has one prompt).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.gpu.figures import DeviceClock, Figures
from bench.gpu.models import clip_scorer
from bench.gpu.profile import Profile
from bench.gpu.sizes import STEP_SEED, reward_config

__all__ = ["run", "noise_views"]


def noise_views(n: int, px: int, seed: int = 0) -> list[Image.Image]:
    """``n`` distinct RGB images of ``px`` x ``px`` (content does not change CLIP's cost)."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (px, px, 3), dtype=np.uint8)) for _ in range(n)]


def run(profile: Profile, work: Path) -> Figures:
    from bench.gpu.meshes import STEP_PROMPT
    from text3d.reward.clip import draw_distractors

    figures = Figures()
    clock = DeviceClock(profile.device)
    config = reward_config(profile)
    started = time.perf_counter()
    scorer, info = clip_scorer(profile)
    clock.sync()
    figures.measured("clip.build_s", time.perf_counter() - started, "s", note="random init on the device")
    figures.info.update(info)
    n_views, px = config.n_views, config.resolution_px
    step_views = profile.step_assets * n_views
    views = noise_views(step_views, px)
    figures.info.update({"view_px": px, "views_per_asset": n_views, "step_assets": profile.step_assets})

    clock.reset()
    figures.timed("clip.one_view_s", clock.run(lambda: scorer.encode_images(views[:1]), profile.repeats,
                                               profile.warmup), note="a batch of one view")
    figures.timed("clip.asset_s", clock.run(lambda: scorer.encode_images(views[:n_views]), profile.repeats,
                                            profile.warmup), note=f"one asset: {n_views} views at {px} px")
    timings = clock.run(lambda: scorer.encode_images(views), profile.repeats, profile.warmup)
    figures.timed("clip.step_images_s", timings,
                  note=f"a step: {profile.step_assets} assets x {n_views} views in one call")
    figures.timed("clip.step_s_per_view", timings, per=step_views)

    distractors = draw_distractors(STEP_PROMPT, STEP_SEED, config.distractor_pool, config.n_distractors)
    texts = list(dict.fromkeys([STEP_PROMPT, *distractors, *config.reject_texts]))

    def encode_texts() -> None:
        scorer.clear_cache()  # a new step's prompt and distractors are not cached
        scorer.encode_texts(texts)

    figures.timed("clip.step_texts_s", clock.run(encode_texts, profile.repeats, profile.warmup),
                  note=f"{len(texts)} texts: the prompt, {len(distractors)} distractors, the junk texts")
    peak = clock.peak_mib()
    if peak is not None:
        figures.measured("clip.peak_gpu_mib", peak, "MiB", note="step batch of views and texts")
    step_total = figures.value("clip.step_images_s") + figures.value("clip.step_texts_s")
    figures.derived("clip.step_s_per_asset", step_total / profile.step_assets, "s",
                    ["clip.step_images_s", "clip.step_texts_s"], f"(views + texts) / {profile.step_assets} assets")
    return figures
