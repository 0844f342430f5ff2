"""A hard time limit around drawing one asset: the last line of defence behind the render budget.

The renderer runs in-process on EGL, and a GL call cannot be interrupted: a driver that
hangs on one mesh would hold the scoring thread (and the renderer's lock) forever and stall
every later step. ``render_within`` draws on a worker thread and waits at most
``timeout_s``:

- in time: the views, exactly as a direct call gives them (the same renderer, the same
  thread-safety: the renderer's own lock);
- past the limit: ``RenderTimeout`` (an ``InvalidAssetError``: that asset scores 0, the
  step goes on); the stuck worker is abandoned (a daemon thread: it ends when its call
  does, or with the process) and the renderer it holds is discarded
  (``text3d.reward.render.views.discard_renderer``), so the next asset gets a fresh GL
  context instead of waiting on the stuck one's lock.

Renders given up on and still stuck are counted (``abandoned``; one that finishes after
all leaves the count): with ``MAX_ABANDONED`` stuck at once the validator's renderer itself
is suspect and ``RendererUnavailable`` (our fault: the step is void, no
miner pays) asks the operator to restart. Cost: one thread start and join per asset,
measured ~0.1 ms against 0.5-2 s of drawing (bench/copycat.py reports it).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from text3d.reward.errors import InvalidAssetError, RendererUnavailable

__all__ = ["RenderTimeout", "render_within", "abandoned", "MAX_ABANDONED"]

MAX_ABANDONED = 4
_abandoned = 0
_lock = threading.Lock()


class RenderTimeout(InvalidAssetError):
    """Drawing one asset took longer than its hard time limit."""


def abandoned() -> int:
    """How many renders this process has given up on that are still stuck."""
    return _abandoned


def render_within(render: Callable[[], Any], timeout_s: float, on_abandon: Callable[[], None] | None = None) -> Any:
    """``render()`` on a worker thread, its result within ``timeout_s`` seconds, else ``RenderTimeout``.

    Exceptions from ``render`` are re-raised as they are. ``on_abandon`` runs when the
    worker is given up (discard the renderer it holds). Raises ``RendererUnavailable``
    while ``MAX_ABANDONED`` renders given up in this process are still stuck.
    """
    global _abandoned
    if _abandoned >= MAX_ABANDONED:
        raise RendererUnavailable(
            f"{_abandoned} renders hung past their time limit in this process: the GL driver is stuck; restart the "
            "validator (and check the GPU driver / EGL setup with `text3d doctor`)"
        )
    box: dict[str, Any] = {}

    def work() -> None:
        global _abandoned
        try:
            box["views"] = render()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            with _lock:
                box["done"] = True
                if box.get("abandoned"):
                    _abandoned -= 1

    worker = threading.Thread(target=work, name="text3d-render", daemon=True)
    worker.start()
    worker.join(timeout_s)
    with _lock:
        late = not box.get("done")
        if late:
            box["abandoned"] = True
            _abandoned += 1
    if late:
        if on_abandon is not None:
            on_abandon()
        raise RenderTimeout(f"drawing the asset took longer than its hard limit of {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["views"]
