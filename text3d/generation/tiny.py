"""A random-weight Shap-E pipeline small enough for tests and offline demos.

Same classes as ``openai/shap-e`` (PriorTransformer, CLIPTextModelWithProjection,
HeunDiscreteScheduler with the checkpoint's exp/Karras settings, ShapERenderer),
shrunk to test sizes (after diffusers' own Shap-E pipeline tests), written with
``save_pretrained`` and loaded back through the very ``from_pretrained`` path real
weights take. Two pieces are genuine rather than random: the CLIP BPE tokenizer
(``text3d.generation.clip_tokenizer``) and the marching-cubes tables of the mesh decoder
(``text3d.generation.marching_cubes``), without which decoding produces nothing.

The output is meaningless shapes with meaningless colours, but real meshes: closed,
coloured, deterministic for a seed; smooth blobs (none empty in 80 latents tried),
~13k faces at grid 32 and ~200k at grid 128, within the codec's limits (see
``smooth_field``). About 7 MB on disk, loads in ~0.2 s.

Cache: ``$TEXT3D_CACHE/models/tiny-shap-e`` (default ``~/.cache/text3d``), read at call
time; built once, then reused.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from text3d.generation.clip_tokenizer import CLIP_VOCAB_SIZE, build_clip_tokenizer
from text3d.generation.marching_cubes import marching_cubes_tables
from text3d.common.paths import cache_dir

__all__ = ["TINY_SEED", "RECIPE_VERSION", "build_tiny_pipeline", "ensure_tiny_pipeline", "tiny_pipeline_path",
           "smooth_field"]

TINY_SEED = 0
RECIPE_VERSION = 2  # bump whenever build_tiny_pipeline's output changes: cached copies are rebuilt
_STAMP = "text3d_tiny.json"
_TEXT_HIDDEN = 16
_LATENT_DIM = 16  # prior embedding_dim == renderer d_latent
_RENDERER_HIDDEN = 8
_RENDERER_PARAMS = ((_RENDERER_HIDDEN, 93), (_RENDERER_HIDDEN, 8), (_RENDERER_HIDDEN, 8), (_RENDERER_HIDDEN, 8))
_NUM_LATENTS = sum(vectors for vectors, _ in _RENDERER_PARAMS)  # prior num_embeddings
_POSENC_OCTAVES = 15  # the renderer encodes positions with sin/cos at 2**0 .. 2**14
_SMOOTH_OCTAVES = 2  # the tiny field only sees the lowest two
_SDF_OFFSET = 0.1  # added to the signed-distance logit: measured so that no latent decodes empty


def tiny_pipeline_path() -> Path:
    """Where ``ensure_tiny_pipeline`` keeps the pipeline by default (reads ``$TEXT3D_CACHE`` now)."""
    return cache_dir() / "models" / "tiny-shap-e"


def build_tiny_pipeline(seed: int = TINY_SEED):
    """Return a fresh random-weight ``ShapEPipeline`` (float32, CPU), identical for the same seed.

    The global torch RNG is left as it was.
    """
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEPipeline
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModelWithProjection(
            CLIPTextConfig(
                vocab_size=CLIP_VOCAB_SIZE,
                hidden_size=_TEXT_HIDDEN,
                projection_dim=_TEXT_HIDDEN,
                intermediate_size=37,
                num_attention_heads=2,
                num_hidden_layers=2,
                max_position_embeddings=77,
                bos_token_id=49406,
                eos_token_id=49407,
                pad_token_id=1,
            )
        )
        prior = PriorTransformer(
            num_attention_heads=2,
            attention_head_dim=16,
            num_layers=1,
            embedding_dim=_LATENT_DIM,
            num_embeddings=_NUM_LATENTS,
            additional_embeddings=0,
            time_embed_act_fn="gelu",
            norm_in_type="layer",
            encoder_hid_proj_type=None,
            added_emb_type=None,
            time_embed_dim=4 * 16,
            embedding_proj_dim=_TEXT_HIDDEN,
            clip_embed_dim=2 * _LATENT_DIM,  # mean and variance halves
        )
        renderer = ShapERenderer(
            param_shapes=_RENDERER_PARAMS,
            d_latent=_LATENT_DIM,
            d_hidden=_RENDERER_HIDDEN,
            n_output=12,
        )
    smooth_field(renderer)
    cases, masks = marching_cubes_tables()
    renderer.mesh_decoder.cases.copy_(torch.from_numpy(cases.copy()))
    renderer.mesh_decoder.masks.copy_(torch.from_numpy(masks.copy()))
    scheduler = HeunDiscreteScheduler(  # openai/shap-e's scheduler_config.json
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )
    return ShapEPipeline(
        prior=prior,
        text_encoder=text_encoder,
        tokenizer=build_clip_tokenizer(),
        scheduler=scheduler,
        shap_e_renderer=renderer,
    )


def smooth_field(renderer: torch.nn.Module, sdf_offset: float = _SDF_OFFSET) -> None:
    """Make a random renderer's signed-distance field smooth, like a real object's.

    Any ``ShapERenderer`` (the tiny one here, the production-size one of
    ``text3d.generation.production_size``): both read the same 93 position features.

    The renderer's first layer reads the position and its sin/cos encoding at 15
    octaves. Random weights on the high octaves give a field of fine noise: ~2M faces
    at grid 128 (over the codec's limit, a minute per mesh on CPU) where Shap-E gives
    50-150k. Zeroing the projected first-layer weights for all but the lowest octaves
    yields smooth blobs instead. Input columns: 0-2 raw xyz, then 45 sin
    and 45 cos columns, octave-major (``3 * octave + axis``).

    The smoothed field's maximum over the grid ranges from about -0.04 to 0.33 across
    latents (std 0.1), so ~10% of latents had no inside at all (an empty mesh). Raising
    the signed-distance output by ``_SDF_OFFSET`` left no latent empty in 80 tried
    (steps 4 and 64), with a median of two thirds of the box inside.
    """
    sin_start, cos_start = 3, 3 + 3 * _POSENC_OCTAVES
    keep = torch.zeros(3 + 6 * _POSENC_OCTAVES, dtype=torch.bool)
    keep[:3] = True
    keep[sin_start : sin_start + 3 * _SMOOTH_OCTAVES] = True
    keep[cos_start : cos_start + 3 * _SMOOTH_OCTAVES] = True
    first = renderer.params_proj.projections["nerstf.mlp.0.weight".replace(".", "__")]
    with torch.no_grad():  # output = LayerNorm(latent @ W) * norm.weight + norm.bias + bias
        first.norm.weight[~keep] = 0.0
        first.norm.bias[~keep] = 0.0
        first.proj.bias.view(first.vectors, first.channels)[:, ~keep] = 0.0
        renderer.mlp.mlp[-1].bias[0] += sdf_offset  # output 0 is the signed distance


def _is_current(path: Path) -> bool:
    try:
        stamp = json.loads((path / _STAMP).read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("recipe") == RECIPE_VERSION and (path / "model_index.json").is_file()


def ensure_tiny_pipeline(path: Path | None = None) -> Path:
    """Build the tiny pipeline into ``path`` (default ``tiny_pipeline_path()``) unless it is there.

    A copy from an older recipe (see ``RECIPE_VERSION``) is replaced. Safe against
    concurrent builders: each writes a private temporary folder next to ``path`` and
    renames it into place; the loser of the race discards its copy. Returns the
    folder, ready for ``ShapEGenerator.from_pretrained``.
    """
    path = Path(path) if path is not None else tiny_pipeline_path()
    if _is_current(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.new.", dir=path.parent))
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
    try:
        build_tiny_pipeline().save_pretrained(staging)
        (staging / _STAMP).write_text(json.dumps({"recipe": RECIPE_VERSION, "seed": TINY_SEED}))
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any other
        try:
            if path.exists() and not _is_current(path):
                os.rename(path, trash / path.name)  # move the stale copy aside in one step
            os.rename(staging, path)
        except OSError:
            if not _is_current(path):  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)
    return path
