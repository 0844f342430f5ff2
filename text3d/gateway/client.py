"""A client of the gateway's public API for scripts, ``text3d request``, the demo and the bench.

    with GatewayClient("http://127.0.0.1:8095", key) as gateway:
        job = gateway.submit("a red wooden chair", format="glb")
        done = gateway.wait(job["id"], timeout_s=600, on_status=print)
        Path("chair.glb").write_bytes(gateway.mesh(job["id"]))

Refusals are ``GatewayRefused`` (the HTTP status, the gateway's sentence and its
``Retry-After``); a job that fails is ``JobFailed`` with the gateway's reason; a gateway that
cannot be reached is ``GatewayUnreachable``. ``wait`` polls ``GET /v1/assets/{id}`` and hands
each status that changed to ``on_status``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import httpx

__all__ = ["GatewayClient", "GatewayRefused", "GatewayUnreachable", "JobFailed", "JobTimedOut"]


class GatewayRefused(RuntimeError):
    def __init__(self, status: int, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.retry_after_s = retry_after_s


class GatewayUnreachable(RuntimeError):
    """The gateway did not answer (connection refused, reset, timed out)."""


class JobFailed(RuntimeError):
    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(f"job {job.get('id')} failed: {job.get('reason') or 'no reason given'}")
        self.job = job


class JobTimedOut(RuntimeError):
    pass


class GatewayClient:
    def __init__(self, base_url: str, key: str | None = None, *, timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": "text3d-request"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s, trust_env=False)
        self._clock = clock
        self._sleep = sleep

    def __enter__(self) -> "GatewayClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayUnreachable(f"{self.base_url}: {type(exc).__name__}: {exc or 'no answer'}") from None
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail"))
            except ValueError:
                detail = response.text[:200]
            retry = response.headers.get("retry-after")
            raise GatewayRefused(response.status_code, detail, float(retry) if retry and retry.isdigit() else None)
        return response

    def submit(self, prompt: str, *, seed: int | None = None, format: str = "glb") -> dict[str, Any]:
        """``POST /v1/assets``: the new job's status (``["id"]`` names it)."""
        body: dict[str, Any] = {"prompt": prompt, "format": format}
        if seed is not None:
            body["seed"] = seed
        return self._call("POST", "/v1/assets", json=body).json()

    def status(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/assets/{job_id}").json()

    def wait(self, job_id: str, *, timeout_s: float = 900.0, poll_s: float = 1.0,
             on_status: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll until the job is done (its status) or failed (``JobFailed``); ``JobTimedOut`` after ``timeout_s``."""
        deadline = self._clock() + timeout_s
        seen: tuple | None = None
        while True:
            job = self.status(job_id)
            shown = (job["status"], job.get("queue_position"), job.get("attempts"), job.get("note"))
            if on_status is not None and shown != seen:
                on_status(job)
            seen = shown
            if job["status"] == "done":
                return job
            if job["status"] == "failed":
                raise JobFailed(job)
            if self._clock() >= deadline:
                raise JobTimedOut(f"job {job_id} is still {job['status']} after {timeout_s:g} s")
            self._sleep(poll_s)

    def mesh(self, job_id: str) -> bytes:
        return self._call("GET", f"/v1/assets/{job_id}/mesh").content

    def preview(self, job_id: str) -> bytes:
        return self._call("GET", f"/v1/assets/{job_id}/preview.glb").content

    def view(self, job_id: str, index: int) -> bytes:
        return self._call("GET", f"/v1/assets/{job_id}/views/{index}.png").content
