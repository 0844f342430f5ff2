"""What the project's HTTP servers (the miner, the generation server, the gateway) share: a refusal with
an HTTP status, and reading a request body under a hard cap before anything parses it.

``read_capped_body`` checks, in order: a declared ``Content-Length`` that is malformed (400)
or over ``limit`` (413) -- nothing read yet; any ``Content-Encoding`` but identity (415:
nothing is ever inflated); then reads under ``limit`` and stops at it (413), whatever the
headers said. A caller that hangs up mid-body is a 400 (nobody is left to answer; no
traceback in the log).
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

__all__ = ["Refusal", "read_capped_body"]


class Refusal(Exception):
    """Answer ``status`` with ``{"detail": detail}`` (and ``Retry-After`` when given)."""

    def __init__(self, status: int, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after_s = retry_after_s


async def read_capped_body(request: Request, limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes; ``Refusal`` (400/413/415) otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refusal(400, "malformed Content-Length")
        if int(declared) > limit:
            raise Refusal(413, f"request body over {limit} bytes")
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise Refusal(415, "compressed request bodies are not accepted")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise Refusal(413, f"request body over {limit} bytes")
    except ClientDisconnect:
        raise Refusal(400, "the caller disconnected before its body arrived") from None
    return bytes(body)
