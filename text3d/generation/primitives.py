"""A procedural second backend: the prompt's shape and colour words pick a coloured primitive.

``--generation.backend text3d.generation.primitives:PrimitiveGenerator`` with, in ``--config``::

    [generation.backend_options]
    subdivisions = 3          # detail of round shapes
    default_shape = "sphere"  # when the prompt names none

"a red chair" has no shape word, so it becomes a red sphere; "a blue cube" a blue box.
The seed stretches each axis by a factor in [0.7, 1.3] and shades the colour, so the same
prompt and seed give the same mesh. No weights, no torch, milliseconds per mesh: the
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
            primitives.append(Primitive(shape, scale, rgb))  # type: ignore[arg-type]
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
        vertices = normalize_to_unit_sphere(np.asarray(mesh.vertices, dtype=np.float64) * np.asarray(primitive.scale))
        rgba = np.tile(np.array([*primitive.rgb, 255], dtype=np.uint8), (len(vertices), 1))
        return trimesh.Trimesh(vertices=vertices, faces=np.asarray(mesh.faces, dtype=np.int64), vertex_colors=rgba,
                               process=False)
