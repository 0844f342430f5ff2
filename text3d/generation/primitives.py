"""A procedural second backend: the prompt's shape and colour words pick a coloured primitive.

``--generation.backend text3d.generation.primitives:PrimitiveGenerator`` with, in ``--config``::

    [generation.backend_options]
    subdivisions = 3          # detail of round shapes
    default_shape = "sphere"  # when the prompt names none

"a red chair" has no shape word, so it becomes a red sphere; "a blue cube" a blue box.
The seed stretches each axis by a factor in [0.7, 1.3], raises three smooth bumps on the
surface and lays a shaded band pattern over the colour, so the same prompt and seed give
the same mesh and different seeds give different objects: a stretch and a shade alone
would make every seed an affine copy of one shape, which the validator's copycat rule
rightly treats as one object (``text3d.reward.defences.fingerprint``). No weights, no torch, milliseconds per mesh: the
minimal example of ``docs/generators.md`` and a stand-in generator for tests and benchmarks
of the serving path. Sample and decode are apart: ``sample`` draws the parameters
(``Primitive``), ``decode`` builds the meshes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import trimesh
from pydantic import BaseModel, ConfigDict, Field

from text3d.generation.interface import BackendContext
from text3d.generation.mesh import normalize_to_unit_sphere

__all__ = ["PrimitiveOptions", "Primitive", "PrimitiveGenerator", "SHAPES", "COLOURS"]

Shape = Literal["box", "sphere", "cylinder", "cone", "torus", "capsule"]
SHAPES: dict[str, Shape] = {
    "box": "box", "cube": "box", "crate": "box", "sphere": "sphere", "ball": "sphere", "cylinder": "cylinder",
    "can": "cylinder", "cone": "cone", "torus": "torus", "ring": "torus", "donut": "torus", "capsule": "capsule",
    "pill": "capsule",
}  # fmt: skip
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (230, 200, 40),
    "orange": (240, 130, 30), "purple": (130, 50, 170), "pink": (240, 130, 180), "brown": (120, 80, 40),
    "white": (235, 235, 235), "black": (25, 25, 25), "grey": (128, 128, 128), "gray": (128, 128, 128),
}  # fmt: skip
_WORD = re.compile(r"[a-z]+")


class PrimitiveOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subdivisions: int = Field(3, ge=1, le=5, description="Detail of round shapes (icosphere subdivisions).")
    default_shape: Shape = Field("sphere", description="The shape of a prompt that names none.")


@dataclass(frozen=True)
class Primitive:
    """The sampled parameters of one mesh: the 'latent' of this backend."""

    shape: Shape
    scale: tuple[float, float, float]
    rgb: tuple[int, int, int]
    bumps: tuple[tuple[float, float, float, float, float, float], ...] = ()  # (dx, dy, dz, amplitude, freq, phase)
    bands: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 0.0)  # colour band direction (3) and phase


class PrimitiveGenerator:
    """Prompts -> coloured primitives; implements ``text3d.generation.interface.TwoStageGenerator``."""

    Options = PrimitiveOptions

    def __init__(self, options: PrimitiveOptions | None = None) -> None:
        self.options = options or PrimitiveOptions()

    @classmethod
    def from_options(cls, options: PrimitiveOptions, context: BackendContext) -> "PrimitiveGenerator":
        return cls(options)  # no weights and no device: the context has nothing to say here

    def sample(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Primitive]:
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds")
        primitives = []
        for prompt, seed in zip(prompts, seeds):
            words = _WORD.findall(prompt.lower())
            shape = next((SHAPES[w] for w in words if w in SHAPES), self.options.default_shape)
            base = next((COLOURS[w] for w in words if w in COLOURS), (180, 180, 180))
            rng = np.random.default_rng(int(seed))
            scale = tuple(float(x) for x in rng.uniform(0.7, 1.3, size=3))
            shade = rng.uniform(0.85, 1.0)
            rgb = tuple(int(round(c * shade)) for c in base)
            bumps = []
            for _ in range(3):
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                bumps.append((*map(float, direction), float(rng.uniform(0.1, 0.16)), float(rng.uniform(3.0, 5.0)),
                              float(rng.uniform(0, 2 * np.pi))))
            band = rng.normal(size=3)
            band /= np.linalg.norm(band)
            primitives.append(Primitive(shape, scale, rgb, tuple(bumps),  # type: ignore[arg-type]
                                        (*map(float, band), float(rng.uniform(0, 2 * np.pi)))))
        return primitives

    def decode(self, latents: Sequence[Primitive]) -> list[trimesh.Trimesh]:
        return [self._mesh(primitive) for primitive in latents]

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[trimesh.Trimesh]:
        return self.decode(self.sample(prompts, seeds))

    def _mesh(self, primitive: Primitive) -> trimesh.Trimesh:
        detail = self.options.subdivisions
        sections = 8 * 2**detail
        make = {
            "box": lambda: trimesh.creation.box(),
            "sphere": lambda: trimesh.creation.icosphere(subdivisions=detail),
            "cylinder": lambda: trimesh.creation.cylinder(radius=0.5, height=1.0, sections=sections),
            "cone": lambda: trimesh.creation.cone(radius=0.5, height=1.0, sections=sections),
            "torus": lambda: trimesh.creation.torus(0.5, 0.18, major_sections=sections, minor_sections=sections // 2),
            "capsule": lambda: trimesh.creation.capsule(height=1.0, radius=0.35, count=[sections, sections]),
        }[primitive.shape]
        mesh = make()
        vertices, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
        while len(faces) < 80 * 4**detail:  # flat shapes need vertices to carry the bumps
            vertices, faces = trimesh.remesh.subdivide(vertices, faces)
        centred = vertices - (vertices.max(axis=0) + vertices.min(axis=0)) / 2.0
        unit = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
        radial = np.ones(len(vertices))
        for dx, dy, dz, amplitude, frequency, phase in primitive.bumps:
            radial += amplitude * np.cos(frequency * unit @ np.array([dx, dy, dz]) + phase)
        vertices = normalize_to_unit_sphere(centred * radial[:, None] * np.asarray(primitive.scale))
        bx, by, bz, band_phase = primitive.bands
        light = 0.8 + 0.2 * np.sin(3.0 * unit @ np.array([bx, by, bz]) + band_phase)  # shaded bands
        rgb = np.clip(np.round(np.asarray(primitive.rgb, dtype=np.float64) * light[:, None]), 0, 255)
        rgba = np.concatenate([rgb, np.full((len(vertices), 1), 255.0)], axis=1).astype(np.uint8)
        return trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=rgba, process=False)
