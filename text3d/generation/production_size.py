"""``openai/shap-e``'s architecture with random weights: the real cost of generation without the real weights.

Time and memory do not depend on weight values, and the checkpoint cannot be fetched where the
measurements run (an offline GPU machine, CI). The sizes are the checkpoint's: the prior from
``diffusers/scripts/convert_shap_e_to_diffusers.py`` ``PRIOR_CONFIG`` (16 heads x 64, 24 layers,
1024 latents of 1024, time embedding 4096, text projection 768 -> 2048, gelu, layer norm in; no
encoder projection or added embeddings; 316 M parameters), CLIP ViT-L/14's text tower
(``CLIPTextModelWithProjection``, 768 wide, 12 layers), diffusers' default ``ShapERenderer`` (the
checkpoint's: d_latent 1024, 6 hidden layers of 256) with the computed marching-cubes tables
(``text3d.generation.marching_cubes``; random init leaves them zero), and the checkpoint's
Heun/Karras scheduler. The genuine CLIP tokenizer (``text3d.generation.clip_tokenizer``).

One change to the random weights, for decoding (``smooth=True``): the renderer's field is smoothed
as the tiny pipeline's is (``text3d.generation.tiny.smooth_field``: only the lowest positional
octaves feed its first layer). Raw random weights give a field of noise: 67k faces at grid 32 and
552k at grid 64 (measured), millions at 128, where a real Shap-E object has 50-150k; marching
cubes, vertex colouring and the mesh's assembly cost grow with the faces, so the decode would time
noise instead of an object. The field's evaluation over the grid, the bulk of the cost, is the same.

``build_production_size_pipeline(device=..., dtype=...)`` creates the modules directly on
``device`` (random init of 666 M parameters on a CPU takes tens of seconds; on the GPU it is
instant) and returns a ``ShapEPipeline`` for ``text3d.generation.shap_e.ShapEGenerator``, the
miner's own entry points. Its meshes are meaningless; its seconds and bytes are the real ones.
"""

from __future__ import annotations

from typing import Any

import torch

from text3d.generation.clip_tokenizer import CLIP_VOCAB_SIZE, build_clip_tokenizer
from text3d.generation.marching_cubes import marching_cubes_tables

__all__ = ["build_production_size_pipeline", "PRIOR_CONFIG", "TEXT_ENCODER_CONFIG", "SCHEDULER_CONFIG"]

PRIOR_CONFIG: dict[str, Any] = dict(  # diffusers/scripts/convert_shap_e_to_diffusers.py: PRIOR_CONFIG
    num_attention_heads=16, attention_head_dim=1024 // 16, num_layers=24, embedding_dim=1024, num_embeddings=1024,
    additional_embeddings=0, time_embed_act_fn="gelu", norm_in_type="layer", encoder_hid_proj_type=None,
    added_emb_type=None, time_embed_dim=1024 * 4, embedding_proj_dim=768, clip_embed_dim=1024 * 2,
)
TEXT_ENCODER_CONFIG: dict[str, Any] = dict(  # openai/clip-vit-large-patch14's text tower
    vocab_size=CLIP_VOCAB_SIZE, hidden_size=768, intermediate_size=3072, projection_dim=768, num_attention_heads=12,
    num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=49406,
    eos_token_id=49407, pad_token_id=1,
)
SCHEDULER_CONFIG: dict[str, Any] = dict(  # openai/shap-e's scheduler_config.json
    beta_schedule="exp", num_train_timesteps=1024, prediction_type="sample", use_karras_sigmas=True,
    clip_sample=True, clip_sample_range=1.0,
)


def build_production_size_pipeline(seed: int = 0, *, device: str | torch.device = "cpu",
                                   dtype: torch.dtype = torch.float32, smooth: bool = True):
    """A random-weight ``ShapEPipeline`` with ``openai/shap-e``'s component sizes, on ``device`` in ``dtype``.

    Identical weights for the same seed and device. The global torch RNG is left as it was.
    ``smooth``: smooth the renderer's field (see the module's docstring).
    """
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEPipeline
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    device = torch.device(device)
    cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices), device:
        torch.manual_seed(seed)
        text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(**TEXT_ENCODER_CONFIG))
        prior = PriorTransformer(**PRIOR_CONFIG)
        renderer = ShapERenderer()  # diffusers' defaults are the checkpoint's sizes
    if smooth:
        from text3d.generation.tiny import smooth_field

        smooth_field(renderer)
    cases, masks = marching_cubes_tables()
    renderer.mesh_decoder.cases.copy_(torch.from_numpy(cases.copy()))
    renderer.mesh_decoder.masks.copy_(torch.from_numpy(masks.copy()))
    pipeline = ShapEPipeline(prior=prior, text_encoder=text_encoder, tokenizer=build_clip_tokenizer(),
                             scheduler=HeunDiscreteScheduler(**SCHEDULER_CONFIG), shap_e_renderer=renderer)
    return pipeline.to(device=device, dtype=dtype)
