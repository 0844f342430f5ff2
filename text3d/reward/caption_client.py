"""``OpenAICaptioner``: captions through any OpenAI-compatible vision chat endpoint.

One client covers llama.cpp's ``llama-server``, vLLM and Ollama: each view is sent as a
PNG ``image_url`` data-URI part of ``POST /v1/chat/completions`` with a fixed
instruction, temperature 0 and a fixed seed, so the same view gets the same caption on
every validator that runs the same model.

Concurrency design: one long-lived ``httpx.AsyncClient`` driven by a private event-loop
thread, with an ``asyncio.Semaphore`` sized to the server's slots (``-np``). Why not a
thread pool + ``httpx.Client``? The semaphore is one global limit shared by every caller
(the RewardModel's worker threads, ``caption_many``, async callers), connections are
pooled once, and cancelling the rest of a batch when one view fails for good is a task
cancel rather than an abandoned thread. The sync entry points submit a coroutine to the
loop thread and wait for it, so they are safe to call from any number of threads.

Failure policy (see ``text3d.reward.errors``; every failure here is the validator's, never a
miner's):

=====================================  =========================================
what happened                          what the client does
=====================================  =========================================
connection refused / reset, timeout    retry with exponential backoff
HTTP 5xx, 429 (e.g. 503 while loading) retry with exponential backoff
200 with malformed JSON, no choices,   retry (a flaky proxy or a half-loaded
or an empty caption                    server), then give up
HTTP 400 / other 4xx                   no retry: the same request fails the same
                                       way. Raise ``CaptionerUnavailable`` (it is
                                       *our* request: wrong model name, a view the
                                       server cannot decode, a context too small)
retries exhausted                      ``CaptionerUnavailable`` naming the server
                                       and what to do; never an empty caption
=====================================  =========================================

A failure of any view fails the whole ``caption``/``caption_many`` call (the rest are
cancelled): a partial set of captions would score an asset on fewer views than its peers.
The worst-case time of a call is bounded by
``(retries + 1) * timeout_s + sum(min(backoff_s * 2**i, max_backoff_s))`` per view wave.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from concurrent.futures import Future
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import httpx
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from text3d.reward.errors import CaptionerUnavailable
from text3d.reward.scoring_protocol import PINNED_FIELD, PROTOCOL, CaptionSpec

__all__ = ["CaptionerConfig", "OpenAICaptioner"]

T = TypeVar("T")
_START_HINT = "start one with `text3d llava --models tiny|7b|13b` or point captioner.base_url at a running server"


class CaptionerConfig(BaseModel):
    """Settings of an ``OpenAICaptioner``; one section of the validator's config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field("http://127.0.0.1:8080", description="The captioning server.")
    model: str = Field("llava-v1.5", description="Model name sent to the captioning server.")
    # the scoring protocol's caption section (text3d.reward.scoring_protocol) is the one place for these
    instruction: str = Field(PROTOCOL.caption.instruction, description="The question sent with each view.",
                             json_schema_extra=PINNED_FIELD)
    include_prompt: bool = Field(PROTOCOL.caption.include_prompt, json_schema_extra=PINNED_FIELD,
                                 description="Send the prompt with each view (it would leak the answer).")
    prompt_template: str = '{instruction}. It was generated from the description: "{prompt}"'
    max_tokens: int = Field(PROTOCOL.caption.max_tokens, ge=1, le=4096, description="Longest caption, in tokens.",
                            json_schema_extra=PINNED_FIELD)
    temperature: float = Field(PROTOCOL.caption.temperature, ge=0.0, le=2.0, json_schema_extra=PINNED_FIELD,
                               description="Sampling temperature of the captions (0: the same caption every time).")
    seed: int | None = Field(PROTOCOL.caption.seed, description="Sampling seed sent with each caption request.",
                             json_schema_extra=PINNED_FIELD)
    concurrency: int = Field(4, ge=1, le=1024,
                             description="Caption requests in flight (match the server's slots: llama-server -np).")
    timeout_s: float = Field(60.0, gt=0, description="Seconds to wait for one caption.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to connect to the captioning server.")
    retries: int = Field(3, ge=0, le=20, description="Retries of a failed caption request.")
    backoff_s: float = Field(0.5, ge=0, description="Seconds before the first retry, doubled for each next one.")
    max_backoff_s: float = Field(8.0, ge=0, description="Longest wait between two retries, in seconds.")
    ready_timeout_s: float = Field(120.0, gt=0, description="Seconds to wait at start-up for the server to load.")
    api_key: SecretStr | None = None

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        value = value.rstrip("/")
        return value[: -len("/v1")] if value.endswith("/v1") else value

    def caption_spec(self) -> CaptionSpec:
        """The scoring protocol's caption section these settings caption with (for ``check_protocol``)."""
        return CaptionSpec(instruction=self.instruction, max_tokens=self.max_tokens, temperature=self.temperature,
                           seed=self.seed, include_prompt=self.include_prompt)

    def user_text(self, prompt: str) -> str:
        """The text part sent beside each view."""
        if not self.include_prompt:
            return self.instruction
        return self.prompt_template.format(instruction=self.instruction, prompt=prompt)


class _Retryable(Exception):
    """One attempt failed in a way another attempt may not."""


def png_data_uri(image: Image.Image) -> str:
    """``data:image/png;base64,...`` for a PIL image (converted to RGB/RGBA as needed)."""
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _caption_from(body: Any) -> str:
    """The stripped caption of a chat-completions body; raises _Retryable when unusable."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise _Retryable(f"response has no choices[0].message.content ({str(body)[:200]!r})") from exc
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str) or not content.strip():
        raise _Retryable("server answered an empty caption")
    return content.strip()


class OpenAICaptioner:
    """A ``Captioner`` backed by an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Cheap to construct: the loop thread and HTTP client start on first use. Call
    ``close()`` (or use it as a context manager) to stop them.
    """

    def __init__(self, config: CaptionerConfig | None = None) -> None:
        self.config = config or CaptionerConfig()
        self.name = f"openai:{self.config.model}"
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("OpenAICaptioner is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="text3d-captioner", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                asyncio.run_coroutine_threadsafe(self._open(), loop).result()
            return self._loop

    async def _open(self) -> None:
        cfg = self.config
        headers = {"Authorization": f"Bearer {cfg.api_key.get_secret_value()}"} if cfg.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=cfg.base_url,
            headers=headers,
            timeout=httpx.Timeout(cfg.timeout_s, connect=min(cfg.connect_timeout_s, cfg.timeout_s)),
            limits=httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency),
            trust_env=False,  # a proxy from the environment must not sit between us and a local server
        )
        self._slots = asyncio.Semaphore(cfg.concurrency)

    def close(self) -> None:
        """Close the HTTP client and stop the loop thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None:
            return
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> "OpenAICaptioner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the loop thread and wait for it (from any other thread)."""
        loop = self._ensure_started()
        if threading.current_thread() is self._thread:
            raise RuntimeError("sync OpenAICaptioner methods cannot be called from its own loop; use acaption")
        future: Future[T] = asyncio.run_coroutine_threadsafe(make(), loop)  # type: ignore[arg-type]
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    async def _on_loop(self, make: Callable[[], Awaitable[T]]) -> T:
        """Await a coroutine that must run on the loop thread, from any event loop."""
        loop = self._ensure_started()
        if asyncio.get_running_loop() is loop:
            return await make()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), loop))  # type: ignore[arg-type]

    # -- readiness ---------------------------------------------------------------------

    def is_ready(self) -> bool:
        """One readiness probe: ``GET /health`` (200 ready, 503 loading), else ``GET /v1/models``."""
        return self._run(self._probe)

    def wait_until_ready(self, timeout_s: float | None = None, poll_s: float = 0.25) -> None:
        """Block until the server is ready; raises CaptionerUnavailable after ``timeout_s``
        (default ``config.ready_timeout_s``)."""
        timeout_s = self.config.ready_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while not self.is_ready():
            if time.monotonic() >= deadline:
                raise CaptionerUnavailable(
                    f"captioning server at {self.config.base_url} was not ready after {timeout_s:.0f} s; {_START_HINT}"
                )
            time.sleep(poll_s)

    async def _probe(self) -> bool:
        assert self._client is not None
        try:
            health = await self._client.get("/health")
            if health.status_code == 200:
                return True
            if health.status_code == 503:  # llama-server: model still loading
                return False
            models = await self._client.get("/v1/models")  # vLLM/Ollama without /health
            return models.status_code == 200
        except httpx.HTTPError:
            return False

    # -- captioning --------------------------------------------------------------------

    def caption(self, images: Sequence[Image.Image], prompt: str) -> list[str]:
        """One caption per view, in order. Raises CaptionerUnavailable (see module docstring)."""
        return self.caption_many([images], [prompt])[0]

    def caption_many(self, image_lists: Sequence[Sequence[Image.Image]], prompts: Sequence[str]) -> list[list[str]]:
        """Caption several assets' views in one go, ``config.concurrency`` requests in flight.

        Returns one list of captions per asset, in order. The PNG encoding happens here,
        in the calling thread, so the loop thread only does I/O.
        """
        requests = self._encode(image_lists, prompts)
        flat = self._run(lambda: self._caption_all([r for asset in requests for r in asset]))
        return self._unflatten(flat, requests)

    async def acaption(self, images: Sequence[Image.Image], prompt: str) -> list[str]:
        """Async ``caption`` for callers with their own event loop (any loop)."""
        return (await self.acaption_many([images], [prompt]))[0]

    async def acaption_many(self, image_lists: Sequence[Sequence[Image.Image]], prompts: Sequence[str]) -> list[list[str]]:
        """Async ``caption_many``."""
        requests = self._encode(image_lists, prompts)
        flat = await self._on_loop(lambda: self._caption_all([r for asset in requests for r in asset]))
        return self._unflatten(flat, requests)

    def _encode(self, image_lists: Sequence[Sequence[Image.Image]], prompts: Sequence[str]) -> list[list[dict]]:
        if len(image_lists) != len(prompts):
            raise ValueError(f"got {len(image_lists)} image lists but {len(prompts)} prompts")
        return [[self._request_body(png_data_uri(image), prompt) for image in images] for images, prompt in zip(image_lists, prompts)]

    @staticmethod
    def _unflatten(flat: list[str], requests: list[list[dict]]) -> list[list[str]]:
        out, start = [], 0
        for asset in requests:
            out.append(flat[start : start + len(asset)])
            start += len(asset)
        return out

    def _request_body(self, data_uri: str, prompt: str) -> dict:
        cfg = self.config
        body: dict[str, Any] = {
            "model": cfg.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": data_uri}},
                        {"type": "text", "text": cfg.user_text(prompt)},
                    ],
                }
            ],
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "stream": False,
        }
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        return body

    async def _caption_all(self, bodies: list[dict]) -> list[str]:
        tasks = [asyncio.ensure_future(self._caption_one(body)) for body in bodies]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:  # one view failed for good (or we were cancelled): stop the rest
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _caption_one(self, body: dict) -> str:
        assert self._client is not None and self._slots is not None
        cfg = self.config
        last_error = "no attempt made"
        for attempt in range(cfg.retries + 1):
            if attempt:
                await asyncio.sleep(min(cfg.backoff_s * 2 ** (attempt - 1), cfg.max_backoff_s))
            async with self._slots:
                try:
                    return await self._attempt(body)
                except _Retryable as exc:
                    last_error = str(exc)
        raise CaptionerUnavailable(
            f"captioning server at {cfg.base_url} failed {cfg.retries + 1} attempts (last: {last_error}); {_START_HINT}"
        )

    async def _attempt(self, body: dict) -> str:
        assert self._client is not None
        cfg = self.config
        try:
            response = await self._client.post("/v1/chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"no answer within {cfg.timeout_s:g} s ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status >= 500 or status == 429:
            raise _Retryable(f"HTTP {status}: {response.text[:200]}")
        if status >= 400:
            hint = "check captioner.api_key" if status in (401, 403) else "check captioner.base_url and captioner.model, and that the server has a vision projector (--mmproj)"
            raise CaptionerUnavailable(
                f"captioning server at {cfg.base_url} rejected our request with HTTP {status} "
                f"({response.text[:300]!r}); retrying cannot help: {hint}"
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise _Retryable(f"malformed JSON in a {status} response: {response.text[:200]!r}") from exc
        return _caption_from(payload)
