"""``TextTo3D``: the one request/response schema between validators and miners.

Request (signed, body-hashed): ``prompt`` (<= 512 characters) and ``seed`` (uint32).
Both are in ``required_hash_fields``, so an axon refuses a body whose prompt or seed
differs from what the dendrite signed.

Response: ``mesh_b64`` (base64 of an ``encode_mesh`` payload, bounded by
``DEFAULT_LIMITS.max_payload_bytes``), ``mesh_format`` (informational only: the decoder
reads the format from the bytes) and ``generation_time_s`` (the miner's own timing).

    miner:      synapse.attach_mesh(mesh, MeshFormat.DRACO, generation_time_s=3.2)
    validator:  mesh = response.deserialize()     # Trimesh or None, never raises
                mesh = response.decode()          # Trimesh, or MeshDecodeError with a reason

Every field has a default: the axon first rebuilds the synapse from headers alone,
where request fields are absent.
"""

import base64
import binascii
import math
from typing import ClassVar, Literal, Optional

import trimesh
from bittensor.core.synapse import Synapse
from pydantic import Field

from protocol.limits import DEFAULT_LIMITS, MeshDecodeError, MeshLimits
from protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh

__all__ = ["TextTo3D", "MAX_PROMPT_CHARS", "MAX_SEED", "MAX_MESH_B64_CHARS"]

MAX_PROMPT_CHARS = 512
MAX_SEED = 2**32 - 1
MAX_MESH_B64_CHARS = 4 * math.ceil(DEFAULT_LIMITS.max_payload_bytes / 3)
"""Base64 length of the largest payload ``DEFAULT_LIMITS`` accepts (~85 MiB of text)."""


class TextTo3D(Synapse):
    """Ask a miner for a coloured 3D mesh of ``prompt``, sampled with ``seed``."""

    required_hash_fields: ClassVar[tuple[str, ...]] = ("prompt", "seed")

    prompt: str = Field(
        default="",
        max_length=MAX_PROMPT_CHARS,
        title="prompt",
        description=f"What to generate, at most {MAX_PROMPT_CHARS} characters.",
    )
    seed: int = Field(
        default=0,
        ge=0,
        le=MAX_SEED,
        title="seed",
        description="Sampling seed (uint32); the same prompt and seed reproduce a miner's output.",
    )
    mesh_b64: Optional[str] = Field(
        default=None,
        max_length=MAX_MESH_B64_CHARS,
        title="mesh_b64",
        description="Base64 of the encoded mesh (PLY, GLB or Draco); None until a miner answers.",
    )
    mesh_format: Optional[Literal["ply", "glb", "draco"]] = Field(
        default=None,
        title="mesh_format",
        description="The format the miner says it sent; informational, the bytes decide.",
    )
    generation_time_s: Optional[float] = Field(
        default=None,
        ge=0.0,
        allow_inf_nan=False,
        title="generation_time_s",
        description="Seconds the miner spent generating the mesh, as it reports them.",
    )

    def attach_mesh(
        self,
        mesh: trimesh.Trimesh,
        fmt: MeshFormat = MeshFormat.DRACO,
        generation_time_s: Optional[float] = None,
    ) -> "TextTo3D":
        """Encode ``mesh`` into the response (miner side); returns self.

        Raises ``ValueError`` if the mesh cannot be encoded (e.g. it has no colours), has
        more vertices or faces than ``DEFAULT_LIMITS`` allows, or its payload exceeds
        ``DEFAULT_LIMITS.max_payload_bytes`` -- validators would refuse it anyway, so the
        miner hears about it first.
        """
        fmt = MeshFormat(fmt)
        limits = DEFAULT_LIMITS
        if len(mesh.vertices) > limits.max_vertices or len(mesh.faces) > limits.max_faces:
            raise ValueError(
                f"mesh has {len(mesh.vertices)} vertices and {len(mesh.faces)} faces, validators accept at "
                f"most {limits.max_vertices} and {limits.max_faces}; decimate it or lower the grid size"
            )
        payload = encode_mesh(mesh, fmt)
        if len(payload) > limits.max_payload_bytes:
            raise ValueError(
                f"encoded mesh is {len(payload)} bytes, validators accept at most "
                f"{limits.max_payload_bytes}; use MeshFormat.DRACO or fewer faces"
            )
        self.mesh_b64 = base64.b64encode(payload).decode("ascii")
        self.mesh_format = fmt.value
        if generation_time_s is not None:
            self.generation_time_s = generation_time_s
        return self

    def mesh_bytes(self) -> bytes:
        """The raw payload; MeshDecodeError if absent or not valid base64."""
        if not self.mesh_b64:
            raise MeshDecodeError("the response carries no mesh")
        try:
            return base64.b64decode(self.mesh_b64, validate=True)
        except (binascii.Error, ValueError):
            raise MeshDecodeError("the response's mesh_b64 is not valid base64") from None

    def decode(self, limits: MeshLimits = DEFAULT_LIMITS) -> trimesh.Trimesh:
        """The decoded, validated mesh; raises MeshDecodeError (a miner fault) with the reason."""
        return decode_mesh(self.mesh_bytes(), limits)

    def deserialize(self) -> Optional[trimesh.Trimesh]:
        """The decoded mesh, or None when there is none or it is invalid. Never raises."""
        try:
            return self.decode()
        except MeshDecodeError:
            return None
        except Exception:  # defence in depth: a dendrite must never die on a response
            return None
