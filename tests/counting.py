"""Count the work a block of code does instead of timing it: unit tests assert no durations.

A claim like "refused at the header, before any decoding" or "a huge file costs a stat, not a
read" is about work, and work can be counted on a loaded machine where seconds cannot:

- ``DecoderCalls`` (fixture ``decoder_calls``): how often the libraries that allocate for a
  payload were asked to decode one (DracoPy, trimesh's loader, PIL's pixel decoder). They still
  run; the counter only wraps them.
- ``bytes_read()``: bytes this process has read so far (``/proc/self/io`` ``rchar``, via psutil):
  compare before and after a block.
- ``until(predicate, what=...)``: await a condition another task brings about. Its timeout is a
  hang guard, not a bound: generous, so that a condition never reached fails the test instead of
  blocking the suite (sync code: ``text3d.demo.wait_until``).

Durations that matter to users are measured by the benches (``bench/``), not asserted here.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Callable

import psutil

__all__ = ["DecoderCalls", "bytes_read", "until"]

HANG_GUARD_S = 60.0


async def until(predicate: Callable[[], bool], *, what: str, timeout_s: float = HANG_GUARD_S,
                poll_s: float = 0.005) -> None:
    """Return once ``predicate()`` holds; ``TimeoutError`` naming ``what`` if it never does."""
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(poll_s)
    except TimeoutError:
        raise TimeoutError(f"{what}: not reached within the {timeout_s:g} s hang guard") from None


def bytes_read() -> int:
    """Bytes this process has read through system calls so far (files, pipes and sockets)."""
    return psutil.Process().io_counters().read_chars


class DecoderCalls:
    """Counts calls of the payload decoders, by name: ``draco`` (``DracoPy.decode``), ``trimesh``
    (``trimesh.load``) and ``pixels`` (PIL decoding an image's pixels: ``ImageFile.load``).

    Built by the ``decoder_calls`` fixture, which undoes the wrapping after the test.
    """

    NAMES = ("draco", "trimesh", "pixels")

    def __init__(self, monkeypatch: Any) -> None:
        import DracoPy
        import trimesh
        from PIL import ImageFile

        self.counts: Counter[str] = Counter()
        monkeypatch.setattr(DracoPy, "decode", self._counted("draco", DracoPy.decode))
        monkeypatch.setattr(trimesh, "load", self._counted("trimesh", trimesh.load))
        monkeypatch.setattr(ImageFile.ImageFile, "load", self._counted("pixels", ImageFile.ImageFile.load))

    def _counted(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return function(*args, **kwargs)

        return counted

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    def none(self) -> bool:
        """True when no decoder was called."""
        return not +self.counts

    def reset(self) -> None:
        self.counts.clear()
