"""The TextTo3D wire protocol: one versioned route, a signed JSON request, a raw-bytes answer.

    POST /v1/text3d                                   (validator -> miner)
    X-Bittensor-{Version,Hotkey,Receiver,Nonce,Signature}   btauth/1 over the raw body
    Content-Type: application/json
    {"prompt": "a red chair", "seed": 123, "timeout_s": 12.0}

    200 OK                                            (miner -> validator)
    Content-Type: application/octet-stream
    Content-Length: <payload bytes>
    X-Text3d-Format: draco | ply | glb
    X-Text3d-Generation-Time-S: 3.21
    <the encoded mesh, exactly as ``text3d.protocol.mesh_codec.encode_mesh`` wrote it>

The answer body *is* the mesh payload: no base64 (a third smaller) and no JSON around it,
so the validator can stream it under a byte cap and hand the bytes to the decoder as
they are. Responses are not signed (btauth/1 signs requests only); the mesh is judged
on its merits, and the caller knows whom it asked.

Everything here is pure and bittensor-free: the neurons sign and verify, this module
only says what the bytes mean, under limits, with ``MinerTransportError`` (a miner
fault) or ``RequestError`` (the caller's fault, HTTP 400) when they do not parse.
"""

from __future__ import annotations

import json
import math
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from text3d.protocol.errors import MinerTransportError, Text3dError
from text3d.protocol.limits import DEFAULT_LIMITS
from text3d.protocol.mesh_codec import MeshFormat

__all__ = [
    "ROUTE",
    "MAX_PROMPT_CHARS",
    "MAX_SEED",
    "MAX_REQUEST_BYTES",
    "MAX_TIMEOUT_S",
    "RESPONSE_ALLOWANCE_BYTES",
    "MAX_RESPONSE_BYTES",
    "HEADER_FORMAT",
    "HEADER_GENERATION_TIME",
    "RequestError",
    "TextTo3DRequest",
    "TextTo3DResponse",
]

ROUTE = "/v1/text3d"
"""The one route; a new wire version gets a new path, never a changed meaning."""

MAX_PROMPT_CHARS = 512
MAX_SEED = 2**32 - 1
MAX_REQUEST_BYTES = 4096
"""Largest request body a miner reads: a 512-character prompt (up to 4 bytes a character
in UTF-8 would be 2 KiB), a seed and a timeout fit with room to spare."""
MAX_TIMEOUT_S = 60.0
"""Longest deadline a caller may ask for; miners cap it lower with ``--miner.max_timeout_s``."""
RESPONSE_ALLOWANCE_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = DEFAULT_LIMITS.max_payload_bytes + RESPONSE_ALLOWANCE_BYTES
"""The validator's hard cap on one answer body: the codec's payload cap plus a small allowance."""

HEADER_FORMAT = "X-Text3d-Format"
HEADER_GENERATION_TIME = "X-Text3d-Generation-Time-S"
CONTENT_TYPE_REQUEST = "application/json"
CONTENT_TYPE_RESPONSE = "application/octet-stream"


class RequestError(Text3dError, ValueError):
    """A request body that does not parse or breaks a limit (HTTP 400; the caller's fault)."""


class TextTo3DRequest(BaseModel):
    """What a validator asks: a prompt, a seed, and how long it will wait for the answer."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS, description="What to generate.")
    seed: int = Field(ge=0, le=MAX_SEED, description="Sampling seed (uint32).")
    timeout_s: float = Field(
        default=12.0,
        gt=0.0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description="Seconds the caller waits for the last byte of the answer.",
    )

    def to_body(self) -> bytes:
        """Canonical JSON bytes: what is signed and sent (compact, keys sorted)."""
        # UTF-8, not \u escapes: a 512-character prompt of 4-byte characters is 2 KiB, not 6 KiB
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_body(cls, raw: bytes) -> "TextTo3DRequest":
        """Parse a request body under ``MAX_REQUEST_BYTES``; raises ``RequestError`` with the reason."""
        if len(raw) > MAX_REQUEST_BYTES:
            raise RequestError(f"request body is {len(raw)} bytes, the limit is {MAX_REQUEST_BYTES}")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RequestError("request body is not UTF-8 JSON") from None
        except RecursionError:  # "[[[[..." nested past the parser's depth: 4 KiB can do it
            raise RequestError("request body nests too deeply") from None
        if not isinstance(data, dict):
            raise RequestError("request body must be a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "body"
            raise RequestError(f"request field {where}: {first.get('msg', 'invalid')}") from None


class TextTo3DResponse(BaseModel):
    """What a miner answers: the encoded mesh bytes, their format, its generation time."""

    model_config = ConfigDict(frozen=True)

    payload: bytes = Field(repr=False, description="The encoded mesh (PLY, GLB or Draco bytes).")
    format: MeshFormat = Field(description="The format the miner says it sent; the decoder checks the bytes.")
    generation_time_s: float = Field(ge=0.0, allow_inf_nan=False, description="The miner's own timing.")

    def headers(self) -> dict[str, str]:
        """HTTP headers of the answer (``Content-Length`` is the server's)."""
        return {
            "Content-Type": CONTENT_TYPE_RESPONSE,
            HEADER_FORMAT: self.format.value,
            HEADER_GENERATION_TIME: f"{self.generation_time_s:.4f}",
        }

    @classmethod
    def from_http(cls, headers: Mapping[str, str], body: bytes) -> "TextTo3DResponse":
        """Parse a 200 answer; raises ``MinerTransportError("malformed", ...)`` for bad metadata.

        ``headers`` may be any case-insensitive or plain mapping; the body is taken as is
        (its size was capped while it streamed in).
        """
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        raw_format = lowered.get(HEADER_FORMAT.lower(), "")
        try:
            fmt = MeshFormat(raw_format.strip().lower())
        except ValueError:
            raise MinerTransportError(
                "malformed", f"{HEADER_FORMAT} is {raw_format[:32]!r}, expected one of draco, ply, glb"
            ) from None
        raw_time = lowered.get(HEADER_GENERATION_TIME.lower(), "0")
        try:
            generation_time_s = float(raw_time[:32])
        except ValueError:
            raise MinerTransportError("malformed", f"{HEADER_GENERATION_TIME} is not a number") from None
        if not math.isfinite(generation_time_s) or generation_time_s < 0:
            raise MinerTransportError("malformed", f"{HEADER_GENERATION_TIME} must be a finite number >= 0")
        if not body:
            raise MinerTransportError("malformed", "the answer carries no mesh bytes")
        return cls(payload=bytes(body), format=fmt, generation_time_s=generation_time_s)
