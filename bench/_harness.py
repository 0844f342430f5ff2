"""The one harness every script under ``bench/`` runs under: how a bench times, checks, reports and fails.

A bench is ``add_arguments(parser)``, a ``SMOKE`` dict (the smallest sizes), and
``measure(bench, args) -> figures``; its ``__main__`` is ``sys.exit(run(...))``. The harness
gives every bench the same four things, so none of them can quietly drift:

* **``--smoke``**: the same code path with ``SMOKE``'s sizes as the defaults (flags given on the
  command line still win), seconds instead of minutes. ``tests/test_benches.py`` runs it.
* **timing**: ``bench.time(fn, runs)`` is ``text3d.common.timing.time_runs`` (warm-up, then
  wall and CPU seconds per run); medians and percentiles come from that module too.
* **checks**: ``bench.check(ok, reason)`` stops the bench. Any exception, a failed check, a
  figure that is NaN or infinite, or an empty table cell ends the run with exit status 1 and
  ``FAILED <bench>: <reason>`` as the LAST line of stdout: a broken pipeline never prints
  figures that look fine.
* **one JSON line**: the last line of a good run is ``{"bench", "args", "smoke", "ok",
  "about", "figures", "tables", "headlines", "environment"}``: the bench's own figures, the
  markdown tables people read (``bench/_report.py`` renders ``docs/performance.md`` from them),
  headline sentences for the README, and the machine, date, load and package versions.

Progress goes to stderr; stdout carries only the tables' text and the final line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import threading
import traceback
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from text3d.common.timing import Timings, median, percentile, time_runs  # noqa: E402

__all__ = ["Bench", "BenchFailure", "Table", "run", "environment", "cpu_name", "duration", "median", "percentile",
           "FAILED_PREFIX"]

FAILED_PREFIX = "FAILED "


class BenchFailure(Exception):
    """Something under the bench faulted: its figures would describe a broken pipeline."""


@dataclass
class Table:
    """A markdown table: ``columns`` headers, ``rows`` of cells (text or numbers, never None)."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""

    def check(self) -> None:
        """``BenchFailure`` for a ragged row or an empty / NaN cell (a missing figure)."""
        for row in self.rows:
            if len(row) != len(self.columns):
                raise BenchFailure(f"table {self.title!r}: a row has {len(row)} cells for {len(self.columns)} columns")
            for cell in row:
                if cell is None or cell == "" or (isinstance(cell, float) and not math.isfinite(cell)):
                    raise BenchFailure(f"table {self.title!r}: missing figure in row {row}")

    def markdown(self) -> str:
        """The table as GitHub markdown: numbers right-aligned, a bold title line above, the note below."""
        def text(cell: Any) -> str:
            out = f"{cell:,}" if isinstance(cell, int) and not isinstance(cell, bool) else str(cell)
            return out.replace("|", "\\|")  # a pipe inside a cell would split it

        numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in self.rows)
                   for i in range(len(self.columns))]
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
        lines += ["| " + " | ".join(text(c) for c in row) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


@dataclass
class Bench:
    """What ``measure`` gets: the parsed arguments and the harness's timing, checks and outputs."""

    name: str
    args: argparse.Namespace
    smoke: bool
    tables: list[Table] = field(default_factory=list)
    headlines: list[str] = field(default_factory=list)

    def time(self, fn: Callable[[], object], runs: int, *, warmup: int = 1,
             sync: Callable[[], None] | None = None) -> Timings:
        """``text3d.common.timing.time_runs``: ``warmup`` uncounted runs, then ``runs`` timed ones."""
        return time_runs(fn, max(1, int(runs)), warmup=warmup, sync=sync)

    def check(self, condition: object, reason: str) -> None:
        """Stop the bench with ``reason`` unless ``condition`` holds."""
        if not condition:
            raise BenchFailure(reason)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "") -> Table:
        """Add a table for the terminal and ``docs/performance.md``; checked for missing figures at once."""
        table = Table(title, list(columns), [list(r) for r in rows], note)
        table.check()
        self.tables.append(table)
        return table

    def headline(self, text: str) -> None:
        """One sentence with a figure, for the README's short performance section."""
        self.headlines.append(text)

    @staticmethod
    def log(*parts: object) -> None:
        """Progress for people, on stderr (stdout ends with the JSON line)."""
        print(*parts, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """Seconds as people read them, three significant figures: ``0.42 ms``, ``18.3 ms``, ``0.573 s``, ``9.43 min``."""
    if not math.isfinite(seconds):
        raise BenchFailure(f"a duration is {seconds}")
    if seconds < 1.0:
        return f"{1000 * seconds:.3g} ms"
    if seconds < 600.0:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.3g} min"


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _gpu() -> str | None:
    """The CUDA device's name when this bench already imported torch and one is visible (never imports torch)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # a broken driver is a figure's context, not the bench's failure
        return None
    return None


def _git() -> dict[str, Any]:
    def git(*argv: str) -> str | None:
        try:
            done = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


class _LoadSampler:
    """The 1-minute load average every ``every_s`` seconds while the bench runs: the machine's noise."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(every_s,), daemon=True, name="bench-load")
        self._thread.start()

    def _loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=5)
        self.samples.append(os.getloadavg()[0])
        return {"start": round(self.samples[0], 2), "median": round(median(self.samples), 2),
                "max": round(max(self.samples), 2), "end": round(self.samples[-1], 2)}


def environment(packages: Sequence[str], started: dt.datetime, load: Mapping[str, float]) -> dict[str, Any]:
    """Machine, date, load and versions: the context without which a figure means nothing."""
    finished = dt.datetime.now(dt.timezone.utc)
    return {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "memory_gb": _memory_gb(), "gpu": _gpu(),
                    "platform": platform.platform(terse=True)},
        "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished_utc": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round((finished - started).total_seconds(), 1),
        "load_avg_1m": dict(load),
        "git": _git(),
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in packages}},
    }


def _about(doc: str) -> str:
    """The docstring's first paragraph, on one line."""
    return " ".join((doc or "").strip().split("\n\n", 1)[0].split())


def build_parser(doc: str, add_arguments: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="the same code path at the smallest sizes, in seconds (what the test suite runs)")
    add_arguments(parser)
    return parser


def parse(doc: str, add_arguments: Callable[[argparse.ArgumentParser], None], smoke: Mapping[str, Any],
          argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; with ``--smoke`` the ``smoke`` values replace the defaults (explicit flags win)."""
    parser = build_parser(doc, add_arguments)
    first, _ = parser.parse_known_args(argv)
    if first.smoke:
        unknown = set(smoke) - {a.dest for a in parser._actions}
        if unknown:
            raise ValueError(f"SMOKE names arguments the bench does not have: {sorted(unknown)}")
        parser.set_defaults(**smoke)
    return parser.parse_args(argv)


def _fail(name: str, reason: str) -> int:
    sys.stderr.flush()
    reason = " ".join(str(reason).split()) or "no reason given"
    print(f"{FAILED_PREFIX}{name}: {reason}", flush=True)
    return 1


def run(name: str, doc: str, add_arguments: Callable[[argparse.ArgumentParser], None],
        measure: Callable[[Bench, argparse.Namespace], Mapping[str, Any]], *, smoke: Mapping[str, Any],
        packages: Sequence[str] = (), argv: Sequence[str] | None = None) -> int:
    """Parse, measure, check and report one bench; the process's exit status (0 only when all is well).

    Never raises for the bench's own faults: they become exit status 1 and a last line
    ``FAILED <name>: <reason>`` (the traceback goes to stderr first).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(doc, add_arguments, smoke, argv)
    bench = Bench(name=name, args=args, smoke=bool(args.smoke))
    started = dt.datetime.now(dt.timezone.utc)
    load = _LoadSampler()
    try:
        figures = dict(measure(bench, args))
        if not bench.tables:
            raise BenchFailure("the bench produced no table")
        summary = {
            "bench": name, "args": argv, "smoke": bench.smoke, "ok": True, "about": _about(doc),
            "figures": figures,
            "tables": [asdict(t) for t in bench.tables],
            "headlines": bench.headlines,
            "environment": environment(packages, started, load.stop()),
        }
        try:
            line = json.dumps(summary, allow_nan=False, default=str)
        except ValueError as exc:
            raise BenchFailure(f"a figure is NaN or infinite ({exc})") from exc
    except BenchFailure as exc:
        load.stop()
        return _fail(name, str(exc))
    except KeyboardInterrupt:
        load.stop()
        _fail(name, "interrupted")
        return 130
    except BaseException as exc:  # a step raised (or exited): the figures cannot be trusted
        load.stop()
        traceback.print_exc()
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            return _fail(name, "the bench exited before reporting its figures")
        detail = exc.code if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
        return _fail(name, str(detail))
    for table in bench.tables:
        print(table.markdown() + "\n", flush=True)
    print(line, flush=True)
    return 0
