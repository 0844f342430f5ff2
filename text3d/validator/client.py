"""The validator's HTTP client for miners: signed requests, capped answers, honest timing.

One long-lived ``httpx.AsyncClient`` for the validator's life, with explicit connect,
read, write and pool timeouts and connection limits. Every answer is hostile until
proven otherwise, so for each one:

- the request says ``Accept-Encoding: identity`` and any ``Content-Encoding`` in the
  answer is refused before a byte of the body is read (a 2 MB gzip bomb cannot grow
  into gigabytes: nothing here ever inflates);
- a declared ``Content-Length`` over the cap is refused at once, and the body is then
  streamed raw under the same hard cap and dropped the moment it passes it;
- the whole exchange runs under one deadline (``timeout_s``), so a miner that trickles
  bytes or hangs costs its own budget only;
- the arrival time is taken when the last byte arrives, not after any parsing;
- nothing is parsed on the event loop: the caller decodes the returned bytes in an
  executor.

At most ``max_concurrency`` answers are read at once (a semaphore), so the memory one
step can hold is bounded by ``max_concurrency x max_response_bytes``.

Outcomes are ``MinerAnswer`` values, never exceptions: ``status`` is ``ok`` or one of
``MinerTransportError.STATUSES``. ``transport_level`` marks failures before any HTTP
status arrived (connect refused, reset, timeout): when *every* miner of a step fails
that way, the validator's own network is the likely culprit (see ``neurons.validator``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import httpx

from text3d.protocol.wire import MAX_RESPONSE_BYTES, ROUTE, TextTo3DRequest

__all__ = ["MinerAnswer", "MinerClient", "Target"]

Clock = Callable[[], float]
_REASON_BYTES = 512  # of an error body, for the report


@dataclass(frozen=True)
class Target:
    """Where to send one request: the miner's uid, hotkey (the signature's receiver) and address."""

    uid: int
    hotkey: str
    ip: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.port}{ROUTE}"


@dataclass
class MinerAnswer:
    """What one miner did with one request."""

    uid: int
    status: str  # ok | no_response | late | oversize | encoded | refused | malformed
    detail: str = ""
    http_status: int | None = None
    elapsed_s: float | None = None  # request sent -> last byte received (or the failure)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = field(default=b"", repr=False)
    bytes_received: int = 0

    @property
    def transport_level(self) -> bool:
        """No HTTP status at all: the connection failed or timed out before the headers."""
        return self.http_status is None and self.status in ("no_response", "late")


class MinerClient:
    """Queries miners for one validator wallet. Create once, ``aclose()`` at the end."""

    def __init__(
        self,
        wallet: Any,
        *,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        connect_timeout_s: float = 3.0,
        max_concurrency: int = 16,
        max_connections: int = 256,
        clock: Clock = time.monotonic,
        sign: Callable[..., dict[str, str]] | None = None,
    ) -> None:
        if sign is None:
            import bittensor as bt

            sign = bt.http_auth.sign
        self.wallet = wallet
        self.max_response_bytes = max_response_bytes
        self.max_concurrency = max_concurrency
        self._sign = sign
        self._clock = clock
        self._connect_timeout_s = connect_timeout_s
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=connect_timeout_s, read=30.0, write=10.0, pool=30.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=0),
            headers={"Accept-Encoding": "identity", "User-Agent": "text3d-validator"},
            follow_redirects=False,
            trust_env=False,  # never route miner traffic through a proxy from the environment
        )

    @property
    def memory_bound_bytes(self) -> int:
        """Most answer bytes held at once: concurrency x cap."""
        return self.max_concurrency * self.max_response_bytes

    async def aclose(self) -> None:
        await self._client.aclose()

    async def query_many(
        self, targets: Sequence[Target], requests: Sequence[TextTo3DRequest], timeout_s: float
    ) -> list[MinerAnswer]:
        """One answer per target (same order); each bounded by ``timeout_s`` from when it is sent."""
        return list(await asyncio.gather(*(self.query(t, r, timeout_s) for t, r in zip(targets, requests))))

    async def query(self, target: Target, request: TextTo3DRequest, timeout_s: float) -> MinerAnswer:
        async with self._semaphore:
            body = request.to_body()
            started = self._clock()
            try:
                headers = self._sign(self.wallet, method="POST", path=ROUTE, body=body, receiver_ss58=target.hotkey)
            except Exception as exc:  # our own wallet failed: report, the caller treats it as ours
                return MinerAnswer(target.uid, "no_response", f"could not sign: {type(exc).__name__}: {exc}")
            headers["Content-Type"] = "application/json"
            answer = MinerAnswer(target.uid, "no_response")
            try:
                async with asyncio.timeout(timeout_s):
                    await self._exchange(target, body, headers, timeout_s, answer)
            except (TimeoutError, httpx.TimeoutException):
                answer.status = "late"
                answer.detail = f"no complete answer within {timeout_s:g}s ({answer.bytes_received} bytes received)"
                answer.body = b""
            except httpx.HTTPError as exc:
                # h11 refused what the miner sent (e.g. a multi-MB header line): the miner spoke broken
                # HTTP, so it is "malformed", not a transport failure that could mean our network is down
                answer.status = "malformed" if _h11_refused(exc) else "no_response"
                answer.detail = f"{type(exc).__name__}: {str(exc)[:200] or 'connection failed'}"
                answer.body = b""
            answer.elapsed_s = self._clock() - started
            return answer

    async def _exchange(
        self, target: Target, body: bytes, headers: dict[str, str], timeout_s: float, answer: MinerAnswer
    ) -> None:
        timeout = httpx.Timeout(connect=min(self._connect_timeout_s, timeout_s), read=timeout_s, write=timeout_s, pool=timeout_s)
        async with self._client.stream("POST", target.url, content=body, headers=headers, timeout=timeout) as response:
            answer.http_status = response.status_code
            answer.headers = {k.lower(): v[:256] for k, v in list(response.headers.items())[:64]}
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                answer.status, answer.detail = "encoded", f"Content-Encoding {encoding[:32]!r} is not accepted"
                return
            declared = response.headers.get("content-length")
            limit = self.max_response_bytes if response.status_code == 200 else _REASON_BYTES
            if response.status_code == 200 and declared is not None:
                if not declared.strip().isdigit():
                    answer.status, answer.detail = "malformed", "malformed Content-Length"
                    return
                if int(declared) > limit:
                    answer.status, answer.detail = "oversize", f"declared {declared} bytes, the cap is {limit}"
                    return
            buffer = bytearray()
            async for chunk in response.aiter_raw():
                buffer += chunk
                answer.bytes_received = len(buffer)
                if len(buffer) > limit:
                    if response.status_code != 200:
                        del buffer[limit:]
                        break
                    answer.status, answer.detail = "oversize", f"more than {limit} bytes, the cap"
                    return
            if response.status_code != 200:
                reason = bytes(buffer[:_REASON_BYTES]).decode("utf-8", "replace")
                answer.status = "refused"
                answer.detail = f"HTTP {response.status_code}: {_short(reason)}"
                return
            answer.status = "ok"
            answer.body = bytes(buffer)


def _h11_refused(exc: BaseException) -> bool:
    """True when the cause chain holds h11's ``RemoteProtocolError`` (the peer's bytes are not HTTP)."""
    import h11

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, h11.RemoteProtocolError):
            return True
        seen = seen.__cause__ or seen.__context__  # httpcore keeps h11's error as the context only
    return False


def _short(text: str) -> str:
    """An error body reduced to one printable line for the report."""
    import json

    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("detail"), str):
            text = data["detail"]
    except ValueError:
        pass
    return "".join(ch if ch.isprintable() else " " for ch in text)[:200]
