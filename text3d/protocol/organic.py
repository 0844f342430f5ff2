"""The organic wire: what the gateway hands a validator worker, and what the worker sends back.

    POST /v1/worker/claim                  {"wait_s": 5.0}                        -> 200 OrganicJob | 204
    POST /v1/worker/jobs/{id}/result       a framed ``OrganicResult`` (below)     -> 200 | 409 lease lost
    POST /v1/worker/jobs/{id}/fail         {"lease_token": ..., "reason": ...}    -> 200 | 409 lease lost

Every worker request is signed with the validator's hotkey (btauth/1, like a validator's
requests to miners); the gateway admits hotkeys with a validator permit only. A job's
``lease_token`` proves the sender is the worker that claimed it: a result for a job whose
lease has passed (and was handed to another worker) is refused with 409.

A result is one body, framed so the mesh and the views travel as raw bytes (no base64):

    b"T3DR" | manifest length (4 bytes, big-endian) | manifest JSON | part bytes, in manifest order

The manifest is ``ResultManifest``: the job, its lease token, the winning score, the
evidence (``OrganicEvidence``: per-view CLIP and captions, each candidate miner's status
and score) and the parts' names and sizes. Parts: ``mesh`` (the format the caller asked
for), ``preview.glb`` (only when that format is not GLB: what the page's viewer loads) and
``view_<i>.png``. ``parse_result`` checks every size against ``ResultLimits`` before it
slices, and the magic bytes of every part: the gateway stores what a permitted validator
sent, never something it cannot serve.

Pure and bittensor-free: the worker signs and the gateway verifies.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from text3d.protocol.errors import MeshDecodeError, Text3dError
from text3d.protocol.limits import DEFAULT_LIMITS
from text3d.protocol.mesh_codec import MeshFormat, detect_format
from text3d.protocol.wire import MAX_PROMPT_CHARS, MAX_SEED

__all__ = [
    "CLAIM_ROUTE",
    "RESULT_ROUTE",
    "FAIL_ROUTE",
    "ASSET_FORMATS",
    "OrganicJob",
    "ClaimRequest",
    "FailRequest",
    "ViewEvidence",
    "CandidateEvidence",
    "OrganicEvidence",
    "ResultManifest",
    "ResultLimits",
    "OrganicResult",
    "OrganicWireError",
    "build_manifest",
    "frame_result",
    "parse_result",
]

CLAIM_ROUTE = "/v1/worker/claim"
RESULT_ROUTE = "/v1/worker/jobs/{job_id}/result"
FAIL_ROUTE = "/v1/worker/jobs/{job_id}/fail"
ASSET_FORMATS = ("glb", "ply", "draco")
AssetFormat = Literal["glb", "ply", "draco"]

_MAGIC = b"T3DR"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PART_NAME = re.compile(r"^(mesh|preview\.glb|view_([0-9]{1,2})\.png)$")
_SHORT = 400  # characters of a free-text field kept (captions, details)


class OrganicWireError(Text3dError, ValueError):
    """A worker's request or result that does not parse or breaks a limit (HTTP 400/413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrganicJob(_Model):
    """One organic job as a worker receives it."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="The caller's seed (None: fresh seeds).")
    format: AssetFormat = "glb"
    lease_token: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    lease_s: float = Field(gt=0.0, le=86400.0, description="Seconds until the job is handed to another worker.")
    attempt: int = Field(1, ge=1, le=100)


class ClaimRequest(_Model):
    wait_s: float = Field(0.0, ge=0.0, le=30.0, description="Hold the request this long for a job to arrive.")


class FailRequest(_Model):
    lease_token: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    reason: str = Field(min_length=1, max_length=1000)


class ViewEvidence(_Model):
    """One rendered view of the winning asset."""

    index: int = Field(ge=0, le=99)
    caption: str | None = Field(None, max_length=_SHORT * 4)
    clip_similarity: float
    clip_score: float
    caption_similarity: float | None = None
    caption_score: float | None = None
    rejected: bool = False
    ocr_rejected: bool = False


class CandidateEvidence(_Model):
    """One queried miner: what it did with the job (the winner has ``winner`` set)."""

    uid: int = Field(ge=0, le=65535)
    hotkey: str = Field(max_length=64)
    status: str = Field(max_length=32)
    score: float = Field(ge=0.0, le=1.0)
    response_s: float | None = None
    detail: str = Field("", max_length=_SHORT)
    winner: bool = False


class OrganicEvidence(_Model):
    """Why the winner won: its score's parts, its views, and every candidate's outcome."""

    score: float = Field(ge=0.0, le=1.0)
    components: dict[str, float] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    views: list[ViewEvidence] = Field(default_factory=list, max_length=64)
    candidates: list[CandidateEvidence] = Field(default_factory=list, max_length=64)
    winner_uid: int = Field(ge=0, le=65535)
    miner_seed: int = Field(ge=0, le=MAX_SEED)
    captioner: str | None = Field(None, max_length=200)
    models: dict[str, str] = Field(default_factory=dict)
    protocol_digest: str | None = Field(None, max_length=128)
    notes: list[str] = Field(default_factory=list, max_length=32)
    validator: str = Field("", max_length=64, description="The worker's hotkey (filled in by the gateway).")


class PartSpec(_Model):
    name: str = Field(pattern=_PART_NAME.pattern)
    bytes: int = Field(ge=1)


class ResultManifest(_Model):
    job_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    lease_token: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    score: float = Field(ge=0.0, le=1.0)
    evidence: OrganicEvidence
    parts: list[PartSpec] = Field(min_length=1, max_length=66)


@dataclass(frozen=True)
class ResultLimits:
    """Caps checked before a result's bytes are sliced or stored."""

    max_manifest_bytes: int = 256 * 1024
    max_mesh_bytes: int = DEFAULT_LIMITS.max_payload_bytes
    max_view_bytes: int = 4 * 1024 * 1024
    max_views: int = 32

    @property
    def max_body_bytes(self) -> int:
        """The largest framed result these limits allow: what the gateway reads at most."""
        return 8 + self.max_manifest_bytes + 2 * self.max_mesh_bytes + self.max_views * self.max_view_bytes


@dataclass(frozen=True)
class OrganicResult:
    """A parsed result: the manifest and its parts by name."""

    manifest: ResultManifest
    parts: dict[str, bytes]

    @property
    def views(self) -> list[bytes]:
        """The view PNGs in index order."""
        names = sorted((int(_PART_NAME.match(n).group(2)), n) for n in self.parts if n.startswith("view_"))  # type: ignore[union-attr]
        return [self.parts[n] for _, n in names]


def frame_result(manifest: ResultManifest, parts: dict[str, bytes]) -> bytes:
    """The body of a result upload; ``manifest.parts`` must list ``parts`` in order (see ``build``)."""
    head = manifest.model_dump_json().encode()
    return _MAGIC + struct.pack(">I", len(head)) + head + b"".join(parts[p.name] for p in manifest.parts)


def build_manifest(*, job_id: str, lease_token: str, score: float, evidence: OrganicEvidence,
                   parts: dict[str, bytes]) -> ResultManifest:
    """The manifest for ``parts`` (in the dict's order)."""
    return ResultManifest(job_id=job_id, lease_token=lease_token, score=score, evidence=evidence,
                          parts=[PartSpec(name=name, bytes=len(data)) for name, data in parts.items()])


def parse_result(body: bytes, *, asked_format: str, limits: ResultLimits = ResultLimits()) -> OrganicResult:
    """Parse and check a framed result; ``OrganicWireError`` (400, or 413 for a size) says what is wrong.

    Checks, before any part is sliced: the frame's magic and manifest length; the manifest's
    schema; part names unique and known, sizes within ``limits`` and adding up to the body.
    Then each part's magic bytes: the mesh must be in ``asked_format``, the preview a GLB,
    the views PNGs.
    """
    if len(body) < 8 or body[:4] != _MAGIC:
        raise OrganicWireError("a result must start with the T3DR frame")
    (head_len,) = struct.unpack(">I", body[4:8])
    if head_len > limits.max_manifest_bytes:
        raise OrganicWireError(f"the manifest is {head_len} bytes, the limit is {limits.max_manifest_bytes}", 413)
    if 8 + head_len > len(body):
        raise OrganicWireError("the manifest runs past the end of the body")
    try:
        data = json.loads(body[8:8 + head_len].decode("utf-8"))
        manifest = ResultManifest.model_validate(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) if first else "manifest"
        raise OrganicWireError(f"the result's manifest does not parse ({where})") from None
    names = [p.name for p in manifest.parts]
    if len(set(names)) != len(names):
        raise OrganicWireError("a part is listed twice")
    if "mesh" not in names:
        raise OrganicWireError("the result carries no mesh")
    if sum(1 for n in names if n.startswith("view_")) > limits.max_views:
        raise OrganicWireError(f"more than {limits.max_views} views", 413)
    for part in manifest.parts:
        cap = limits.max_view_bytes if part.name.startswith("view_") else limits.max_mesh_bytes
        if part.bytes > cap:
            raise OrganicWireError(f"part {part.name} is {part.bytes} bytes, the limit is {cap}", 413)
    if 8 + head_len + sum(p.bytes for p in manifest.parts) != len(body):
        raise OrganicWireError("the parts' sizes do not add up to the body")
    parts: dict[str, bytes] = {}
    offset = 8 + head_len
    for part in manifest.parts:
        parts[part.name] = body[offset:offset + part.bytes]
        offset += part.bytes
    _check_magic(parts, asked_format)
    return OrganicResult(manifest, parts)


def _format_of(data: bytes) -> str:
    try:
        return detect_format(data).value
    except MeshDecodeError:
        return "unknown"


def _check_magic(parts: dict[str, bytes], asked_format: str) -> None:
    found = _format_of(parts["mesh"])
    if found != asked_format:
        raise OrganicWireError(f"the mesh is {found}, the job asked for {asked_format}")
    if "preview.glb" in parts and _format_of(parts["preview.glb"]) != MeshFormat.GLB.value:
        raise OrganicWireError("preview.glb is not a GLB")
    if asked_format != "glb" and "preview.glb" not in parts:
        raise OrganicWireError("a non-GLB result needs a preview.glb for viewers")
    for name, data in parts.items():
        if name.startswith("view_") and not data.startswith(_PNG_MAGIC):
            raise OrganicWireError(f"{name} is not a PNG")
