"""Who may work for the gateway: requests signed by a hotkey with a validator permit (btauth/1).

The gateway holds no wallet, so workers sign without a receiver (``receiver_ss58=None``) and
the replay nonces are kept in the shared store: a request accepted by one gateway process
is refused as a replay by every other (``JobStore.check_and_store``). Checks, cheapest first,
each before the work it guards (the miner's order, ``text3d.miner.app``):

1. the btauth/1 headers are present, well formed and fresh (401) -- nothing read yet;
2. the hotkey they claim holds a validator permit (and ``min_stake``) on the cached metagraph
   (403; 503 while no metagraph could be read yet) -- still nothing read;
3. the body is read under its cap (413);
4. ``bittensor.http_auth.verify`` over the raw bytes: signature, freshness, replay (401).

The metagraph is read from the chain at most every ``ttl_s`` (``refresh``, called by the
app's housekeeping); a chain that fails keeps the last metagraph.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Callable

from starlette.requests import Request

from text3d.miner.caller_policy import CallerPolicy, check_caller
from text3d.miner.http_body import Refusal, read_capped_body
from text3d.protocol.errors import StoreFull, ValidatorFault

__all__ = ["WorkerGate"]

log = logging.getLogger("text3d.gateway")

_SS58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{46,48}$")
_NONCE = re.compile(r"^[0-9]{1,20}$")
_SIGNATURE = re.compile(r"^(0x)?[0-9a-fA-F]{128}$")
MAX_AGE_S = 10.0
ALLOWED_SKEW_S = 2.0


class WorkerGate:
    """``await gate.admit(request, max_body_bytes) -> (hotkey, body)`` or a ``Refusal``.

    Routes with a check of their own between the permit and the body (``result``: does the
    claimed hotkey hold this job's lease?) call ``caller`` then ``body`` instead.
    """

    def __init__(self, chain: Any, nonce_store: Any, *, min_stake: float = 0.0, ttl_s: float = 120.0,
                 clock: Callable[[], float] = time.monotonic, wall_clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.chain = chain
        self.nonce_store = nonce_store
        self.policy = CallerPolicy(min_validator_stake=min_stake, require_validator_permit=True)
        self.ttl_s = ttl_s
        self.metagraph: Any = None
        self._read_at: float | None = None
        self._clock = clock
        self._wall_clock_ns = wall_clock_ns
        self._refreshing = asyncio.Lock()

    async def refresh(self, *, force: bool = False) -> None:
        """Read the metagraph when it is older than ``ttl_s`` (or ``force``); keep the old one on failure."""
        async with self._refreshing:
            if not force and self._read_at is not None and self._clock() - self._read_at < self.ttl_s:
                return
            try:
                self.metagraph = await asyncio.to_thread(self.chain.metagraph)
            except ValidatorFault as exc:
                log.warning("could not read the metagraph (workers' permits): %s", exc)
                if self.metagraph is None:
                    return
            self._read_at = self._clock()

    def _precheck(self, headers: Any) -> str:
        if headers.get("x-bittensor-version") != "1":
            raise Refusal(401, "sign worker requests with btauth/1 (missing or unsupported X-Bittensor-Version)")
        hotkey = headers.get("x-bittensor-hotkey", "")
        if not _SS58.match(hotkey):
            raise Refusal(401, "missing or malformed X-Bittensor-Hotkey")
        nonce_text = headers.get("x-bittensor-nonce", "")
        if not _NONCE.match(nonce_text):
            raise Refusal(401, "missing or malformed X-Bittensor-Nonce")
        if not _SIGNATURE.match(headers.get("x-bittensor-signature", "")):
            raise Refusal(401, "missing or malformed X-Bittensor-Signature")
        age_s = (self._wall_clock_ns() - int(nonce_text)) / 1e9
        if age_s > MAX_AGE_S:
            raise Refusal(401, f"request is older than the {MAX_AGE_S:g}s freshness window")
        if -age_s > ALLOWED_SKEW_S:
            raise Refusal(401, f"request nonce is more than {ALLOWED_SKEW_S:g}s in the future")
        return hotkey

    async def admit(self, request: Request, max_body_bytes: int) -> tuple[str, bytes]:
        hotkey = await self.caller(request)
        return hotkey, await self.body(request, max_body_bytes)

    async def caller(self, request: Request) -> str:
        """Steps 1-2: the hotkey the headers claim, if it is fresh and holds a permit (nothing read yet)."""
        hotkey = self._precheck(request.headers)
        if self.metagraph is None:
            await self.refresh(force=True)
        decision = check_caller(self.metagraph, hotkey, self.policy)
        if not decision.allowed:
            if self.metagraph is None:
                raise Refusal(503, "the gateway cannot read the metagraph yet", 5.0)
            raise Refusal(403, f"only validators may work for this gateway: {decision.reason}")
        return hotkey

    async def body(self, request: Request, max_body_bytes: int) -> bytes:
        """Steps 3-4: the body under its cap, then the signature over it and the replay check."""
        body = await read_capped_body(request, max_body_bytes)
        await asyncio.to_thread(self._verify, request, body)
        return body

    def _verify(self, request: Request, body: bytes) -> None:
        import bittensor as bt

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            bt.http_auth.verify(dict(request.headers), body, method=request.method, path=target,
                                self_hotkey_ss58="", require_receiver=False, max_age=MAX_AGE_S,
                                allowed_skew=ALLOWED_SKEW_S, nonce_store=self.nonce_store)
        except bt.http_auth.AuthError as exc:
            raise Refusal(401, str(exc)) from None
        except Refusal:
            raise
        except StoreFull as exc:  # the replay nonce cannot be written: nothing can be, the worker retries later
            raise Refusal(507, str(exc), 60.0) from None
        except Exception as exc:  # the shared replay store failed: ours, the worker may retry
            log.warning("worker replay check failed: %s: %s", type(exc).__name__, exc)
            raise Refusal(503, "the gateway's replay store is unavailable", 2.0) from None
