"""``make bench``: run every bench, keep each one's JSON line in one results file, render the docs from it.

    python bench/_suite.py run [NAME ...] [--heavy] [--timeout-s 3600]   # make bench [BENCHES="codec render"]
    python bench/_suite.py render                                         # make bench-docs
    python bench/_suite.py list                                           # what make bench would run

A bench is any ``bench/*.py`` whose name does not start with ``_``. What ``make bench`` runs
of it is read from the script's source, never by importing it (no bench's imports run):

* ``SUITE_RUNS``: the argument lists to run it with, e.g. ``[[], ["--production-size"]]``;
  absent means ``[[]]`` (once, with its defaults); ``[]`` means never (a bench that builds
  something rather than measuring here; its smoke test still runs).
* ``SUITE_HEAVY = True``: only with ``--heavy`` (``BENCH_HEAVY=1``) or when named.
* ``SMOKE_TEST = "tests/test_x.py::test_name"``: its smoke test lives there, instead of the
  generic ``python bench/<name>.py --smoke`` run by ``tests/test_benches.py``.

Each run is one child process; its last stdout line is its result: the harness's JSON line,
or ``FAILED <bench>: <reason>`` (then the run is recorded as failed with that reason, and
``make bench`` exits 1 once everything has run). Results go to ``bench/results.jsonl``, one
line per run, merged with the runs not repeated this time; ``docs/performance.md`` and the
README's headline block are rendered from that file alone (``bench/_report.py``).
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._harness import FAILED_PREFIX, environment  # noqa: E402

__all__ = ["BenchScript", "discover", "run_id", "run_suite", "load_results", "save_results", "BENCH_DIR",
           "RESULTS_PATH", "DOCS_PATH", "README_PATH"]

BENCH_DIR = REPO / "bench"
RESULTS_PATH = BENCH_DIR / "results.jsonl"
DOCS_PATH = REPO / "docs" / "performance.md"
README_PATH = REPO / "README.md"


@dataclass(frozen=True)
class BenchScript:
    """One ``bench/*.py`` and what ``make bench`` does with it."""

    name: str
    path: Path
    runs: tuple[tuple[str, ...], ...]
    heavy: bool = False
    smoke_test: str | None = None

    def run_ids(self) -> list[str]:
        return [run_id(self.name, args) for args in self.runs]


def run_id(name: str, args: Sequence[str]) -> str:
    """How a run is named in the results and the docs: the bench and its arguments."""
    return " ".join([name, *args])


def _constants(path: Path) -> dict[str, Any]:
    """The module-level literal assignments of a script (``ast.literal_eval``; nothing is imported)."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target = node.target
        else:
            continue
        if isinstance(target, ast.Name):
            name = target.id
            if name in ("SUITE_RUNS", "SUITE_HEAVY", "SMOKE_TEST"):
                try:
                    found[name] = ast.literal_eval(node.value)
                except ValueError as exc:
                    raise ValueError(f"{path.name}: {name} must be a literal ({exc})") from exc
    return found


def discover(bench_dir: Path = BENCH_DIR) -> list[BenchScript]:
    """Every bench in ``bench_dir``, sorted by name; ``ValueError`` for a malformed suite constant."""
    scripts = []
    for path in sorted(bench_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        constants = _constants(path)
        runs = constants.get("SUITE_RUNS", [[]])
        if not isinstance(runs, list) or not all(isinstance(a, list) and all(isinstance(x, str) for x in a) for a in runs):
            raise ValueError(f"{path.name}: SUITE_RUNS must be a list of argument lists, got {runs!r}")
        smoke_test = constants.get("SMOKE_TEST")
        if smoke_test is not None and not (isinstance(smoke_test, str) and "::" in smoke_test):
            raise ValueError(f"{path.name}: SMOKE_TEST must be a pytest node id 'tests/file.py::test_name'")
        scripts.append(BenchScript(path.stem, path, tuple(tuple(a) for a in runs), bool(constants.get("SUITE_HEAVY")),
                                   smoke_test))
    return scripts


def select(scripts: Sequence[BenchScript], names: Sequence[str], heavy: bool) -> list[tuple[BenchScript, tuple[str, ...]]]:
    """The runs to do: every run of the named benches (all light ones when none is named; heavy ones with ``heavy``)."""
    known = {s.name for s in scripts}
    unknown = sorted(set(names) - known)
    if unknown:
        raise SystemExit(f"no such bench: {', '.join(unknown)} (have: {', '.join(sorted(known))})")
    chosen = [s for s in scripts if s.name in names] if names else [s for s in scripts if heavy or not s.heavy]
    return [(s, args) for s in chosen for args in s.runs]


def load_results(path: Path = RESULTS_PATH) -> dict[str, dict]:
    """``run id -> result`` from the results file (empty when there is none)."""
    if not path.is_file():
        return {}
    results = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                result = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc})") from exc
            results[run_id(result["bench"], result.get("args", []))] = result
    return results


def save_results(results: dict[str, dict], path: Path = RESULTS_PATH) -> None:
    """One line per run, sorted by run id (stable diffs), written atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(results[key], sort_keys=True) + "\n" for key in sorted(results)))
    tmp.replace(path)


def _failure(script: BenchScript, args: Sequence[str], reason: str, started: dt.datetime) -> dict:
    load = os.getloadavg()[0]
    return {"bench": script.name, "args": list(args), "smoke": False, "ok": False, "reason": reason,
            "environment": environment((), started, {"start": round(load, 2), "median": round(load, 2),
                                                     "max": round(load, 2), "end": round(load, 2)})}


def run_one(script: BenchScript, args: Sequence[str], timeout_s: float, python: str = sys.executable) -> dict:
    """Run one bench in a child process (its own session, so a timeout ends its servers too); its result.

    The child's stdout is echoed as it comes and its last line kept; stderr goes straight through.
    """
    started = dt.datetime.now(dt.timezone.utc)
    child = subprocess.Popen([python, str(script.path), *args], cwd=REPO, stdout=subprocess.PIPE, text=True,
                             start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    last = ""
    try:
        for line in child.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.strip():
                last = line.strip()
        rc = child.wait()
    finally:
        timer.cancel()
        if child.poll() is None:
            kill()
            child.wait()
    if timed_out.is_set():
        return _failure(script, args, f"timed out after {timeout_s:g} s", started)
    if rc != 0 or last.startswith(FAILED_PREFIX):
        reason = last[len(FAILED_PREFIX):] if last.startswith(FAILED_PREFIX) else f"exit status {rc}: {last[-300:]}"
        return _failure(script, args, reason, started)
    try:
        result = json.loads(last)
    except json.JSONDecodeError:
        return _failure(script, args, f"its last line is not the JSON line: {last[-300:]!r}", started)
    if not isinstance(result, dict) or result.get("bench") != script.name or not result.get("ok") or result.get("smoke"):
        return _failure(script, args, "its JSON line is not a good full run of this bench "
                                      f"(bench={result.get('bench')!r}, ok={result.get('ok')!r}, "
                                      f"smoke={result.get('smoke')!r})", started)
    result["args"] = list(args)
    return result


def run_suite(names: Sequence[str] = (), *, heavy: bool = False, timeout_s: float = 3600.0,
              bench_dir: Path = BENCH_DIR, results_path: Path = RESULTS_PATH, docs_path: Path = DOCS_PATH,
              readme_path: Path | None = README_PATH) -> int:
    """Run the selected benches one at a time, merge their results, render the docs; 0 when every run was good."""
    from bench._report import render_all

    scripts = discover(bench_dir)
    plan = select(scripts, names, heavy)
    results = load_results(results_path)
    failed = []
    for number, (script, args) in enumerate(plan, start=1):
        key = run_id(script.name, args)
        print(f"\n=== [{number}/{len(plan)}] {key} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        result = run_one(script, args, timeout_s)
        results[key] = result
        if not result.get("ok"):
            failed.append(f"{key}: {result['reason']}")
        save_results(_current(results, scripts), results_path)  # after each run: a crash keeps what was measured
    render_all(_current(results, scripts), scripts, docs_path=docs_path, readme_path=readme_path)
    for line in failed:
        print(f"{FAILED_PREFIX}{line}", file=sys.stderr)
    print(f"{len(plan) - len(failed)} of {len(plan)} runs good; results in {results_path}, tables in {docs_path}",
          file=sys.stderr)
    return 1 if failed else 0


def _current(results: dict[str, dict], scripts: Iterable[BenchScript]) -> dict[str, dict]:
    """Drop the results of benches or runs that no longer exist."""
    ids = {key for script in scripts for key in script.run_ids()}
    return {key: value for key, value in results.items() if key in ids}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run benches, update the results and the docs")
    run_parser.add_argument("names", nargs="*", help="benches to run (default: every bench that is not heavy)")
    run_parser.add_argument("--heavy", action="store_true", help="also run the heavy benches (SUITE_HEAVY)")
    run_parser.add_argument("--timeout-s", type=float, default=3600.0, help="per run")
    commands.add_parser("render", help="render docs/performance.md and the README's headlines from the results")
    list_parser = commands.add_parser("list", help="the runs make bench would do")
    list_parser.add_argument("--heavy", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_suite(args.names, heavy=args.heavy, timeout_s=args.timeout_s)
    scripts = discover()
    if args.command == "list":
        for script, run_args in select(scripts, (), args.heavy):
            print(run_id(script.name, run_args))
        return 0
    from bench._report import render_all

    render_all(_current(load_results(), scripts), scripts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
