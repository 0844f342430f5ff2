"""How a part records what it measured: named figures, each marked measured, derived or software.

A figure is ``{"value", "unit", "basis", ...}``:

* ``measured``: timed here, the median of ``runs`` counted runs after ``warmup`` uncounted ones
  (``text3d.common.timing.time_runs``; CUDA work is synchronised before each clock read), with
  ``p95`` where there are enough runs; or read here (memory, parameters, GL_RENDERER);
* ``derived``: arithmetic on measured figures (``from`` names them, ``note`` shows the arithmetic);
* ``software``: timed here, but on a CPU fallback where a GPU was meant (llvmpipe, onnxruntime's
  CPU provider...): never to be quoted as a GPU figure.

Peak GPU memory is ``torch.cuda.max_memory_allocated`` since the phase's ``reset`` (what torch
allocated for tensors, not the CUDA context, which ``nvidia-smi`` adds).
"""

from __future__ import annotations

from typing import Any, Callable

from text3d.common.timing import Timings, percentile, time_runs

__all__ = ["Figures", "DeviceClock"]


class Figures:
    """An ordered collection of named figures plus free-form ``info`` for one part."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}
        self.info: dict[str, Any] = {}

    def measured(self, name: str, value: float | int | str, unit: str, *, timings: Timings | None = None,
                 software: bool = False, note: str | None = None) -> float | int | str:
        entry: dict[str, Any] = {"value": _round(value), "unit": unit, "basis": "software" if software else "measured"}
        if timings is not None:
            entry["runs"] = len(timings.wall_s)
            if len(timings.wall_s) >= 3:
                entry["p95"] = _round(percentile(timings.wall_s, 95))
        if note:
            entry["note"] = note
        self.figures[name] = entry
        return value

    def timed(self, name: str, timings: Timings, *, per: int = 1, software: bool = False,
              note: str | None = None) -> float:
        """Record the median of ``timings`` divided by ``per`` (seconds per item)."""
        value = timings.median_s / per
        entry = self.measured(name, value, "s", timings=timings, software=software, note=note)
        if per != 1 and "p95" in self.figures[name]:
            self.figures[name]["p95"] = _round(percentile(timings.wall_s, 95) / per)
        return entry  # type: ignore[return-value]

    def derived(self, name: str, value: float | None, unit: str, sources: list[str], note: str,
                *, software: bool = False) -> float | None:
        if value is None:
            return None
        self.figures[name] = {"value": _round(value), "unit": unit, "basis": "software" if software else "derived",
                              "from": sources, "note": note}
        return value

    def value(self, name: str) -> Any:
        entry = self.figures.get(name)
        return None if entry is None else entry["value"]

    def to_dict(self) -> dict[str, Any]:
        return {"figures": self.figures, "info": self.info}


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}") if abs(value) < 1e4 else round(value, 1)
    return value


class DeviceClock:
    """Timing and peak memory on one torch device (CUDA synchronised; CPU: nothing to wait for).

    ``DeviceClock.deadline`` (set by the worker from its part's timeout) lets ``run`` count fewer
    runs rather than overrun: a slow machine still gets a median of what fits.
    """

    deadline: float | None = None  # time.monotonic() value, for every clock of this process

    def __init__(self, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def reset(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mib(self) -> float | None:
        """``torch.cuda.max_memory_allocated`` since ``reset``, in MiB (None on a CPU)."""
        if not self.cuda:
            return None
        return self.torch.cuda.max_memory_allocated(self.device) / 2**20

    def run(self, fn: Callable[[], object], runs: int, warmup: int) -> Timings:
        return time_runs(fn, runs, warmup=warmup, sync=self.sync, deadline=DeviceClock.deadline)
