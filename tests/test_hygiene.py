"""The suite's own rules, read from its source (``tests/*.py``); each check also runs on a
planted example it must catch.

- Every test asserts something: an ``assert``, ``pytest.raises`` / ``fail`` / ``warns``, an
  ``assert_*`` call (numpy's, torch's, ours), ``subprocess.run(..., check=True)``, or a helper
  of its own module that does one of these. A test that cannot fail pins nothing.
- No skip stands in for a dependency the project installs: no ``importorskip``, no
  ``skipif`` on ``shutil.which`` or ``find_spec`` (rapidocr, ray, tesseract, node and chromium
  are installed by ``make setup``; a missing one must fail, saying so).
- No test asserts a duration: no ``assert`` on ``time.monotonic()``, ``perf_counter()``,
  ``process_time()`` or ``time.time()``, nor on a name that says ``elapsed``. Tests count the
  work (calls, bytes, attempts, a fake clock); waits go through hang guards
  (``tests.counting.until``, ``text3d.demo.wait_until``); durations belong to ``bench/``.
- No name is used that was never defined, and nothing is imported or assigned for nothing
  (pyflakes' F821, F401, F841 through ruff, over the package, entry points, benches, scripts
  and tests): an undefined name in a rarely taken branch is a crash waiting for its day (one
  hid in a test's retry loop), and a dead import is a dependency nobody can see is unused.
  F811 stays off: a pytest fixture imported from a fixtures module and named as a parameter
  reads to pyflakes as a redefinition.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

CHECK_CALLS = {"raises", "fail", "warns", "deprecated_call", "check_call", "check_output"}
CLOCKS = {"monotonic", "perf_counter", "process_time", "monotonic_ns", "perf_counter_ns", "time"}


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _checks(function: ast.AST, helpers: set[str]) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name.startswith("assert") or name in CHECK_CALLS or name in helpers:
                return True
            if name == "run" and any(k.arg == "check" and getattr(k.value, "value", None) is True for k in node.keywords):
                return True
    return False


def unchecked_tests(source: str) -> list[str]:
    """Names of ``test_*`` functions in ``source`` that check nothing."""
    tree = ast.parse(source)
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    helpers: set[str] = set()
    grown = True
    while grown:  # helpers that check, and helpers calling those
        grown = False
        for name, function in functions.items():
            if not name.startswith("test_") and name not in helpers and _checks(function, helpers):
                helpers.add(name)
                grown = True
    return [name for name, function in functions.items() if name.startswith("test_") and not _checks(function, helpers)]


def skips_for_installed_dependencies(source: str) -> list[int]:
    """Lines that skip when a dependency is missing (``importorskip``, ``skipif`` on ``which``/``find_spec``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _call_name(node) == "importorskip":
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and _call_name(node) == "skipif":
            condition = " ".join(ast.unparse(arg) for arg in node.args)
            if "which(" in condition or "find_spec(" in condition:
                lines.append(node.lineno)
    return sorted(lines)


def duration_asserts(source: str) -> list[int]:
    """Lines of ``assert`` statements on a clock reading or an ``elapsed`` value."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assert):
            continue
        for part in ast.walk(node.test):
            clock = isinstance(part, ast.Call) and isinstance(part.func, ast.Attribute) and part.func.attr in CLOCKS \
                and isinstance(part.func.value, ast.Name) and part.func.value.id == "time"
            named = (isinstance(part, ast.Name) and "elapsed" in part.id) or (
                isinstance(part, ast.Attribute) and "elapsed" in part.attr)
            if clock or named:
                lines.append(node.lineno)
                break
    return lines


SOURCES = sorted(TESTS.glob("*.py"))


def test_the_rules_read_the_whole_suite():
    names = {path.name for path in SOURCES}
    assert {"test_hygiene.py", "conftest.py", "loopback.py", "test_caption_client.py"} <= names and len(names) > 60


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name.startswith("test_")], ids=lambda p: p.name)
def test_every_test_checks_something(path):
    assert unchecked_tests(path.read_text()) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_skip_for_a_dependency_the_project_installs(path):
    assert skips_for_installed_dependencies(path.read_text()) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_test_asserts_a_duration(path):
    assert duration_asserts(path.read_text()) == []


# -- planted violations ----------------------------------------------------------------------------


def test_a_test_that_checks_nothing_is_caught():
    source = '''
import numpy as np, subprocess, pytest

def helper(x):
    assert x

def indirect(x):
    helper(x)

def test_asserts(): assert 1
def test_numpy(): np.testing.assert_allclose(1, 1)
def test_raises():
    with pytest.raises(ValueError): int("x")
def test_subprocess(): subprocess.run(["true"], check=True)
def test_through_helpers(): indirect(1)
def test_nothing(): print("ran")
def test_unchecked_subprocess(): subprocess.run(["true"])
'''
    assert unchecked_tests(source) == ["test_nothing", "test_unchecked_subprocess"]


def test_a_skip_for_an_installed_dependency_is_caught():
    source = '''
import pytest, shutil
ray = pytest.importorskip("ray")
node = pytest.mark.skipif(shutil.which("node") is None, reason="no node")
gpu = pytest.mark.skipif("__import__('torch').cuda.is_available()", reason="this machine has a GPU")
'''
    assert skips_for_installed_dependencies(source) == [3, 4]


def test_a_duration_assert_is_caught():
    source = '''
import time
def test_x(answer, deadline):
    start = time.perf_counter()
    assert time.perf_counter() - start < 1.0
    elapsed = 3
    assert elapsed < 2
    assert answer.elapsed_s < 1.0
    assert answer.bytes_received < 40
'''
    assert duration_asserts(source) == [5, 7, 8]


PYFLAKES_RULES = "F401,F821,F841"


def _ruff(*paths: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    ruff = Path(sys.executable).with_name("ruff")
    return subprocess.run([str(ruff), "check", "--no-cache", "--isolated", "--select", PYFLAKES_RULES,
                           "--output-format", "concise", *map(str, paths)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_no_undefined_name_nor_unused_import():
    root = TESTS.parent
    done = _ruff("text3d", "neurons", "bench", "scripts", "tests", cwd=root)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_an_undefined_name_and_an_unused_import_are_caught(tmp_path):
    (tmp_path / "planted.py").write_text("import os\n\n\ndef retry():\n    time.sleep(1)\n")
    done = _ruff("planted.py", cwd=tmp_path)
    assert done.returncode == 1
    assert "planted.py:1:8: F401" in done.stdout and "planted.py:5:5: F821" in done.stdout
