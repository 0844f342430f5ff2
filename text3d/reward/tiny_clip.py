"""A tiny random-weight CLIP that loads through the production open_clip code path.

Tests, ``--models tiny`` and benchmarks need a CLIP without downloading 1.7 GB. The
tiny model is a registered open_clip config (ViT, 1 layer, width 32, 64 px images,
patch 16; text tower 1 layer, width 32, the real 49408-token vocabulary and 77-token
context) whose random weights are drawn once from a fixed seed, saved as safetensors
under ``$TEXT3D_CACHE/models/tiny-clip/`` and then loaded like any checkpoint:
``open_clip.create_model_and_transforms(TINY_CLIP_NAME, pretrained=<file>)``.
Its embeddings carry no meaning; only shapes, dtypes and plumbing are real.
"""

import json
import os
from pathlib import Path
from text3d.common.paths import cache_dir as default_cache_dir

__all__ = ["TINY_CLIP_NAME", "TINY_CLIP_CONFIG", "ensure_tiny_clip", "register_tiny_clip"]

TINY_CLIP_NAME = "text3d-tiny-clip"
TINY_CLIP_SEED = 1234
TINY_CLIP_CONFIG: dict = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
_WEIGHTS_FILE = "open_clip_model.safetensors"


def register_tiny_clip(config_dir: Path) -> None:
    """Write the tiny config as ``<name>.json`` in ``config_dir`` and register it with open_clip."""
    import open_clip

    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / f"{TINY_CLIP_NAME}.json"
    text = json.dumps(TINY_CLIP_CONFIG, indent=1, sort_keys=True)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    if TINY_CLIP_NAME not in open_clip.list_models():
        open_clip.add_model_config(path)


def ensure_tiny_clip(cache_dir: Path | None = None) -> tuple[str, Path]:
    """Register the tiny config and make sure its weights file exists; returns ``(model_name, weights_path)``.

    The weights are generated once (seed ``TINY_CLIP_SEED``) and reused; the file is
    written atomically so concurrent test workers never read half a file.
    """
    folder = (cache_dir or default_cache_dir()) / "models" / "tiny-clip"
    register_tiny_clip(folder)
    weights = folder / _WEIGHTS_FILE
    if not weights.exists():
        import open_clip
        import torch
        from safetensors.torch import save_file

        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG
            torch.manual_seed(TINY_CLIP_SEED)
            model = open_clip.create_model(TINY_CLIP_NAME, pretrained=None, device="cpu")
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        tmp = weights.with_suffix(f".tmp{os.getpid()}")
        save_file(state, str(tmp))
        os.replace(tmp, weights)
    return TINY_CLIP_NAME, weights
