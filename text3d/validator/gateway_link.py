"""The validator's side of the organic wire (``text3d.protocol.organic``): claim, upload, give back.

Every request is signed with the validator's hotkey (btauth/1) without a receiver (the gateway
holds no wallet); the path signed is the path sent, so a gateway must be served at the root of
its host. Failures to reach the gateway are ``GatewayUnreachable``; refusals are logged with the
gateway's sentence.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from text3d.protocol.organic import CLAIM_ROUTE, FAIL_ROUTE, RESULT_ROUTE, OrganicJob

__all__ = ["GatewayLink", "GatewayUnreachable"]

log = logging.getLogger("text3d.validator.organic")


class GatewayUnreachable(RuntimeError):
    """The gateway did not answer (refused, reset, timed out): the worker waits and tries again."""


class GatewayLink:
    """The worker's side of ``text3d.protocol.organic``: every request signed by the validator's hotkey."""

    def __init__(self, base_url: str, wallet: Any, *, sign: Any = None, timeout_s: float = 60.0) -> None:
        if sign is None:
            import bittensor as bt

            sign = bt.http_auth.sign
        self.base_url = base_url.rstrip("/")
        self._prefix = httpx.URL(self.base_url).path.rstrip("/")
        self.wallet = wallet
        self._sign = sign
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=5.0),
                                       headers={"User-Agent": "text3d-validator"})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, route: str, body: bytes, *, read_timeout_s: float | None = None) -> httpx.Response:
        path = self._prefix + route
        headers = self._sign(self.wallet, method="POST", path=path, body=body, receiver_ss58=None)
        headers["Content-Type"] = "application/octet-stream" if body[:4] == b"T3DR" else "application/json"
        timeout = httpx.Timeout(read_timeout_s, connect=5.0) if read_timeout_s else httpx.USE_CLIENT_DEFAULT
        try:
            return await self._http.post(self.base_url + route, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise GatewayUnreachable(f"{type(exc).__name__}: {exc or 'no answer'}") from None

    async def claim(self, wait_s: float) -> OrganicJob | None:
        """A job, or None when none arrived within ``wait_s``; ``GatewayUnreachable`` or ``RuntimeError`` (refused)."""
        response = await self._post(CLAIM_ROUTE, f'{{"wait_s": {wait_s:.3f}}}'.encode(), read_timeout_s=wait_s + 15.0)
        if response.status_code == 204:
            return None
        if response.status_code != 200:
            raise RuntimeError(f"the gateway refused the claim: HTTP {response.status_code}: {_detail(response)}")
        return OrganicJob.model_validate(response.json())

    async def submit(self, job: OrganicJob, body: bytes) -> int:
        """Upload a result; the HTTP status (200 stored, 409 the lease was lost); ``GatewayUnreachable``."""
        response = await self._post(RESULT_ROUTE.format(job_id=job.id), body)
        if response.status_code not in (200, 409):
            log.warning("job %s: the gateway refused the result: HTTP %d: %s", job.id, response.status_code,
                        _detail(response))
        return response.status_code

    async def give_up(self, job: OrganicJob, reason: str) -> None:
        """Hand the job back with the reason (best effort: an unreachable gateway hands it on by the lease)."""
        body = json.dumps({"lease_token": job.lease_token, "reason": reason[:1000]}).encode()
        try:
            response = await self._post(FAIL_ROUTE.format(job_id=job.id), body)
            if response.status_code != 200:
                log.warning("job %s: could not hand the job back: HTTP %d: %s", job.id, response.status_code,
                            _detail(response))
        except GatewayUnreachable as exc:
            log.warning("job %s: could not hand the job back (%s); the gateway will hand it on when the lease ends",
                        job.id, exc)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))[:200]
    except ValueError:
        return response.text[:200]
