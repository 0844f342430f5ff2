"""Text -> coloured triangle mesh with Shap-E (diffusers ``ShapEPipeline``).

Two steps, usable apart ("sample, then decode"):

1. ``sample_latents(prompts, seeds)``: the text-conditioned prior (classifier-free
   guidance, the checkpoint's Heun/Karras scheduler) turns each prompt into a latent
   ``(num_embeddings, embedding_dim)`` -- ``(1024, 1024)`` for ``openai/shap-e``.
   Prompts go through the prior together, up to ``max_batch_size`` at a time.
2. ``decode_mesh(latent)``: the latent parameterises the renderer's MLP, whose signed
   distance field is sampled on a ``grid_size``^3 grid and meshed by marching cubes;
   the colour head paints the vertices.

Determinism: each prompt's starting noise comes from its own CPU ``torch.Generator``
seeded with that prompt's seed (diffusers' ``randn_tensor`` draws row ``i`` of a batch
from ``generator[i]``), so a prompt gives the same latent alone or in a batch (up to
float rounding of batched matrix products) and the same starting noise on every
device. The scheduler is deterministic, so same prompt + seed + device + settings
gives the same mesh.

``sample``/``decode``/``generate`` are the ``text3d.generation.interface`` names of the same steps,
and ``from_options`` makes the class the default ``--generation.backend``.

Meshes follow the convention of ``text3d.generation.mesh``: +Y up, front +Z, centred, in the
unit sphere, uint8 RGBA vertex colours.

Not thread-safe: decoding writes the latent's weights into the renderer's MLP. Use one
generator per worker (the miner runs it on a single-worker executor).
"""

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import trimesh
from tqdm.auto import tqdm

from text3d.common.device import resolve_device as common_resolve_device
from text3d.generation.config import TINY_MODEL, GenerationConfig
from text3d.generation.errors import EmptyMeshError, ModelNotAvailableError
from text3d.generation.interface import BackendContext
from text3d.generation.mesh import to_trimesh
from text3d.protocol.wire import MAX_SEED

__all__ = ["ShapEGenerator", "resolve_device", "resolve_dtype"]

log = logging.getLogger(__name__)

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def resolve_device(device: str) -> torch.device:
    """``text3d.common.device.resolve_device`` (one answer for every device string, ``mps`` checked) as a torch device."""
    return torch.device(common_resolve_device(device))


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"`` -> float16 on CUDA (Shap-E's fp16 weights), float32 elsewhere."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return _DTYPES[dtype]


def _looks_local(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or Path(source).exists() or source.count("/") != 1


@contextlib.contextmanager
def _quiet_loading(show_progress: bool) -> Iterator[None]:
    """Silence diffusers/transformers chatter while loading (hub retries, accelerate hints,
    loading bars): failures surface as one ``ModelNotAvailableError`` instead. Touches
    their global logging state for the duration, so do not load from two threads at once.
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    saved = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _, _ in saved:
        lib.set_verbosity_error()
        if not show_progress:
            lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, verbosity, bars in saved:
            lib.set_verbosity(verbosity)
            if bars:
                lib.enable_progress_bar()


def _load_pipeline(source: str, dtype: torch.dtype, show_progress: bool) -> Any:
    """``ShapEPipeline.from_pretrained`` with errors translated to ``ModelNotAvailableError``."""
    from diffusers import ShapEPipeline

    is_local = _looks_local(source)
    if is_local:
        folder = Path(source).expanduser()
        if not (folder / "model_index.json").is_file():
            reason = "no such folder" if not folder.exists() else "no model_index.json in that folder"
            raise ModelNotAvailableError(source, reason, is_local=True)
        source = str(folder)
    attempts: list[dict[str, Any]] = [{}]
    if dtype == torch.float16 and not is_local:
        attempts.insert(0, {"variant": "fp16"})  # openai/shap-e ships fp16 files: half the download
    for index, extra in enumerate(attempts):
        try:
            with _quiet_loading(show_progress):
                return ShapEPipeline.from_pretrained(source, dtype=dtype, low_cpu_mem_usage=False, **extra)
        except (OSError, ValueError) as exc:
            if index + 1 < len(attempts):
                continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if not is_local and "cache" in reason.lower():
                reason = "it is not in the local Hugging Face cache and the hub cannot be reached"
            raise ModelNotAvailableError(source, reason, is_local=is_local) from exc
    raise AssertionError("unreachable")


class ShapEGenerator:
    """Prompts -> meshes with a loaded Shap-E pipeline.

    Build with ``from_pretrained``; the constructor only stores its parts. ``pipeline``
    must already be on ``device`` in its final dtype. The default backend of
    ``text3d.generation.interface``: its ``Options`` are ``GenerationConfig``.
    """

    Options = GenerationConfig

    def __init__(self, pipeline: Any, config: GenerationConfig, device: torch.device) -> None:
        self.pipeline = pipeline
        self.config = config
        self.device = device
        self.show_progress = sys.stderr.isatty() if config.show_progress is None else config.show_progress
        pipeline.set_progress_bar_config(disable=not self.show_progress, desc="Shap-E prior", leave=False)

    @classmethod
    def from_pretrained(
        cls, model_id_or_path: str | Path | None = None, config: GenerationConfig | None = None
    ) -> "ShapEGenerator":
        """Load a pipeline by hub id (default ``config.model``), local folder or ``"tiny"``.

        Raises:
            ModelNotAvailableError: missing folder, not cached while offline, not
                downloadable, or not a Shap-E pipeline.
        """
        config = config or GenerationConfig()
        source = str(model_id_or_path if model_id_or_path is not None else config.model)
        if source == TINY_MODEL:
            from text3d.generation.tiny import ensure_tiny_pipeline

            source = str(ensure_tiny_pipeline())
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
        show_progress = sys.stderr.isatty() if config.show_progress is None else config.show_progress
        pipeline = _load_pipeline(source, dtype, show_progress).to(device)
        log.info("loaded Shap-E %s on %s (%s)", source, device, dtype)
        return cls(pipeline, config, device)

    @classmethod
    def from_options(cls, options: GenerationConfig, context: BackendContext) -> "ShapEGenerator":
        """The backend loader: ``options`` on ``context``'s device and batch size; ``tiny`` models -> the tiny pipeline."""
        config = options.model_copy(update={"device": context.device, "max_batch_size": context.max_batch_size})
        return cls.from_pretrained(TINY_MODEL if context.models == "tiny" else config.model, config)

    @property
    def dtype(self) -> torch.dtype:
        return self.pipeline.prior.dtype

    def sample_latents(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """Run the prior: one latent per prompt.

        Args:
            prompts: texts, one per mesh.
            seeds: one integer in [0, MAX_SEED] per prompt (the wire's range, ``text3d.protocol.wire.MAX_SEED``).

        Returns:
            ``(len(prompts), num_embeddings, embedding_dim)`` on ``self.device`` in the
            pipeline's dtype.
        """
        prompts, seeds = list(prompts), [int(seed) for seed in seeds]
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            raise ValueError("no prompts given")
        if any(not isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be strings")
        if any(not 0 <= seed <= MAX_SEED for seed in seeds):
            raise ValueError(f"seeds must be integers in [0, {MAX_SEED}]")
        latents = []
        size = self.config.max_batch_size
        for start in range(0, len(prompts), size):
            generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds[start : start + size]]
            output = self.pipeline(
                prompts[start : start + size],
                generator=generators,
                num_inference_steps=self.config.num_inference_steps,
                guidance_scale=self.config.guidance_scale,
                output_type="latent",
            )
            latents.append(output.images)
        return torch.cat(latents, dim=0)

    def decode_mesh(self, latent: torch.Tensor) -> trimesh.Trimesh:
        """Decode one latent ``(num_embeddings, embedding_dim)`` (or with a leading 1) to a mesh.

        Raises:
            EmptyMeshError: the field has no surface inside the grid.
        """
        if latent.dim() == 2:
            latent = latent[None]
        if latent.dim() != 3 or latent.shape[0] != 1:
            raise ValueError(f"decode_mesh takes one latent, got shape {tuple(latent.shape)}")
        renderer = self.pipeline.shap_e_renderer
        latent = latent.to(device=self.device, dtype=renderer.dtype)
        try:
            raw = renderer.decode_to_mesh(
                latent, self.device, grid_size=self.config.grid_size, query_batch_size=self.config.query_batch_size
            )
        except (RuntimeError, ValueError) as exc:  # diffusers' colour lookup fails when there are no vertices
            if "non-empty list" in str(exc):
                raise EmptyMeshError("the decoded signed-distance field has no surface") from exc
            raise
        if len(raw.faces) == 0:
            raise EmptyMeshError("the decoded signed-distance field has no surface")
        rgb = np.stack([raw.vertex_channels[c].detach().float().cpu().numpy() for c in "RGB"], axis=1)
        return to_trimesh(raw.verts.detach().float().cpu().numpy(), raw.faces.detach().cpu().numpy(), rgb)

    def sample(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """The interface's first step (``text3d.generation.interface.TwoStageGenerator``): ``sample_latents``."""
        return self.sample_latents(prompts, seeds)

    def decode(self, latents: torch.Tensor) -> list[trimesh.Trimesh]:
        """The interface's second step: ``decode_mesh`` for each of ``(B, num_embeddings, embedding_dim)``."""
        return [
            self.decode_mesh(latent)
            for latent in tqdm(latents, desc="Shap-E meshes", disable=not self.show_progress or len(latents) < 2)
        ]

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[trimesh.Trimesh]:
        """``sample_latents`` then ``decode_mesh`` for each: one mesh per prompt, in order."""
        return self.decode(self.sample_latents(prompts, seeds))
