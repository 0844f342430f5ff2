"""What a miner costs: Shap-E's prior for batches of 1 and 4 prompts, and decoding one mesh.

Production size on a GPU: ``openai/shap-e``'s architecture with random weights
(``text3d.generation.production_size``) in fp16, through the miner's own entry points
(``ShapEGenerator.sample_latents`` / ``decode_mesh``) at Shap-E's reference settings (64 Karras
steps of the checkpoint's Heun scheduler, guidance 15, grid 128). Smoke: the tiny pipeline.
Compared with the validator's deadline for the whole answer (``TextTo3DRequest.timeout_s``).
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.gpu.figures import DeviceClock, Figures
from bench.gpu.profile import Profile
from bench.gpu.sizes import generation_config

__all__ = ["run", "PROMPTS"]

PROMPTS = ("a red chair", "a shark", "a small wooden boat", "a green cactus in a pot")


def run(profile: Profile, work: Path) -> Figures:
    import torch

    from text3d.generation import ShapEGenerator
    from text3d.generation.errors import EmptyMeshError
    from text3d.generation.shap_e import resolve_dtype
    from text3d.protocol.wire import TextTo3DRequest

    figures = Figures()
    clock = DeviceClock(profile.device)
    config = generation_config(profile)
    dtype = resolve_dtype(config.dtype, clock.device)
    started = time.perf_counter()
    if profile.shap_e_model == "production-size":
        from text3d.generation.production_size import build_production_size_pipeline

        pipeline = build_production_size_pipeline(device=clock.device, dtype=dtype)
    else:
        pipeline = ShapEGenerator.from_pretrained(config=config.model_copy(update={"model": "tiny"})).pipeline
    clock.sync()
    figures.measured("shap_e.build_s", time.perf_counter() - started, "s",
                     note="random init of the whole pipeline on the device (not a checkpoint load)")
    params = {name: sum(p.numel() for p in getattr(pipeline, name).parameters())
              for name in ("prior", "text_encoder", "shap_e_renderer")}
    figures.info.update({"model": profile.shap_e_model, "dtype": str(dtype).removeprefix("torch."),
                         "params": params, "params_total": sum(params.values()),
                         "num_inference_steps": config.num_inference_steps, "guidance_scale": config.guidance_scale,
                         "grid_size": config.grid_size, "scheduler": type(pipeline.scheduler).__name__})
    generator = ShapEGenerator(pipeline, config, clock.device)
    settings = (f"{config.num_inference_steps} Karras steps ({type(pipeline.scheduler).__name__}), guidance "
                f"{config.guidance_scale:g}, {figures.info['dtype']}")

    for batch in profile.shap_e_batches:
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
        seeds = list(range(batch))
        clock.reset()
        timings = clock.run(lambda: generator.sample_latents(prompts, seeds), profile.repeats, profile.warmup)
        figures.timed(f"shap_e.prior_b{batch}_s", timings, note=f"a batch of {batch} through the prior: {settings}")
        figures.timed(f"shap_e.prior_b{batch}_s_per_mesh", timings, per=batch)
        peak = clock.peak_mib()
        if peak is not None:
            figures.measured(f"shap_e.prior_b{batch}_peak_gpu_mib", peak, "MiB")

    latent = generator.sample_latents([PROMPTS[0]], [0])[0]
    faces: list[int] = []
    errors: list[str] = []

    def decode() -> None:
        try:
            faces.append(len(generator.decode_mesh(latent).faces))
        except EmptyMeshError as exc:  # random weights may give a field with no surface: the grid was still evaluated
            faces.append(0)
            errors.append(type(exc).__name__)

    clock.reset()
    timings = clock.run(decode, profile.repeats, profile.warmup)
    note = f"one latent to a coloured mesh at grid {config.grid_size} (marching cubes)"
    if errors:
        note += "; random weights gave an empty field, so vertex colouring was not timed"
    figures.timed("shap_e.decode_s", timings, note=note)
    figures.info["decode_faces"] = faces[-1] if faces else None
    peak = clock.peak_mib()
    if peak is not None:
        figures.measured("shap_e.decode_peak_gpu_mib", peak, "MiB")

    decode_s = figures.value("shap_e.decode_s")
    deadline_s = TextTo3DRequest.model_fields["timeout_s"].default
    one = figures.value("shap_e.prior_b1_s")
    if one is not None:
        mesh_s = figures.derived("shap_e.mesh_b1_s", one + decode_s, "s", ["shap_e.prior_b1_s", "shap_e.decode_s"],
                                 "prior for one prompt + one decode")
        figures.derived("shap_e.mesh_b1_share_of_deadline", mesh_s / deadline_s, "x", ["shap_e.mesh_b1_s"],
                        f"seconds per mesh / the validator's {deadline_s:g} s deadline (TextTo3DRequest.timeout_s); "
                        "encoding and transfer come on top")
    largest = max(profile.shap_e_batches)
    if largest > 1:
        batch_s = figures.value(f"shap_e.prior_b{largest}_s")
        answer_s = figures.derived(f"shap_e.answer_b{largest}_s", batch_s + largest * decode_s, "s",
                                   [f"shap_e.prior_b{largest}_s", "shap_e.decode_s"],
                                   f"a batch of {largest} through the prior, then {largest} decodes one by one "
                                   "(ShapEGenerator.decode): when the last of the batch's answers is ready")
        figures.derived(f"shap_e.answer_b{largest}_share_of_deadline", answer_s / deadline_s, "x",
                        [f"shap_e.answer_b{largest}_s"], f"/ the {deadline_s:g} s deadline")
    if clock.cuda:
        torch.cuda.empty_cache()
    return figures
