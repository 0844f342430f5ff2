"""The architecture holds: the import graph built from the source has no circles and its
arrows run one way; each package's map names what is in it; stand-in scorers keep the
production scorer's signatures.

Rules pinned here (docs/architecture.md draws them):
- no circle among module-level imports (imports that run when a module is imported; those
  inside functions and under ``if TYPE_CHECKING:`` do not);
- the scoring core (``protocol``, ``generation``, ``reward``) and the leaf helpers (``common``,
  ``web``) never import ``chain``, ``miner``, ``validator``, ``ops``, ``cli``, ``demo``,
  ``settings``, ``gateway``, ``library``, nor bittensor -- not even inside a function;
- ``common`` and ``web`` import nothing of ours but ``text3d.common`` and ``text3d.protocol.errors``;
- ``text3d.cli`` is imported by nobody but ``neurons/`` and ``text3d/__main__.py``;
- every package ``__init__`` opens with a map naming each module (``name.py``) and
  subpackage (``name/``) beside it, and every ``__all__`` name is defined where it is listed;
- every stand-in for ``StepScorer`` in tests/ accepts every call ``RewardModel`` accepts
  (``rig_for``, ``score_batch``): a stub that drifts hides a broken step.

Each check is a function over a source tree; the tests run it on this repository and on a
small tree in tmp_path with one planted violation, which it must report.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CORE = ("protocol", "generation", "reward", "common", "web")
OUTER = ("chain", "miner", "validator", "ops", "cli", "demo", "settings", "gateway", "library")
LEAVES = ("common", "web")
LEAF_MAY_IMPORT = ("text3d.common", "text3d.protocol.errors")
CLI_MAY_BE_IMPORTED_BY = ("neurons", "text3d.cli", "text3d.__main__")


# -- the graph -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted
    target: str  # an imported module of ours (dotted), or the top-level name of a third-party one
    line: int
    module_level: bool  # runs when ``source`` is imported (not inside a function, not TYPE_CHECKING)


@dataclass
class Graph:
    modules: dict[str, Path] = field(default_factory=dict)  # dotted name -> file
    edges: list[Edge] = field(default_factory=list)

    def is_ours(self, name: str) -> bool:
        return name in self.modules


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(graph: Graph, name: str) -> bool:
    return graph.modules.get(name, Path()).name == "__init__.py"


def _resolve(graph: Graph, source: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = source.split(".")
    if not _is_package(graph, source):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(graph: Graph, source: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Modules of ours that ``node`` imports; a third-party import as its top-level name."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        module = _resolve(graph, source, node)
        # ``from pkg import sub`` imports the submodule when there is one, else a name of ``pkg``
        names = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in graph.modules else module
                 for alias in node.names]  # fmt: skip
    out = []
    for name in names:
        while name and name not in graph.modules and "." in name:  # a name inside a module: the module
            name = name.rsplit(".", 1)[0]
        if name and name not in graph.modules:
            name = name.split(".")[0]  # third party (bittensor, torch, ...)
        if name and name != source:
            out.append(name)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module):
    """``(node, module_level)`` for every import statement in ``tree``."""

    def walk(node: ast.AST, module_level: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, module_level
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), False)
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), module_level)
            else:
                yield from walk(child, module_level)

    yield from walk(tree, True)


def import_graph(root: Path, packages: tuple[str, ...] = ("text3d", "neurons")) -> Graph:
    """Every import of every ``.py`` under ``root/<package>``, from the source (nothing is imported)."""
    graph = Graph()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            graph.modules[module_name(root, path)] = path
    for source, path in graph.modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, module_level in _imports(tree):
            for target in _targets(graph, source, node):
                graph.edges.append(Edge(source, target, node.lineno, module_level))
    return graph


# -- the checks ----------------------------------------------------------------------------------


def circles(graph: Graph) -> list[list[str]]:
    """Strongly connected groups (of two or more modules) among module-level imports of ours."""
    following: dict[str, set[str]] = {name: set() for name in graph.modules}
    for edge in graph.edges:
        if edge.module_level and graph.is_ours(edge.target):
            following[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, iterative (deep graphs, no recursion limit)
        work = [(start, iter(sorted(following[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(following[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))

    for name in sorted(following):
        if name not in index:
            visit(name)
    return found


def _part(module: str) -> str | None:
    """``text3d.reward.clip`` -> ``reward``; ``text3d.settings`` -> ``settings``; else None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "text3d" and len(parts) > 1 else None


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def wrong_arrows(graph: Graph) -> list[str]:
    """Every import (module-level or inside a function) that runs against the dependency rules."""
    wrong = []
    for edge in graph.edges:
        where = f"{graph.modules[edge.source].as_posix()}:{edge.line}: {edge.source} imports {edge.target}"
        source_part, target_part = _part(edge.source), _part(edge.target)
        if source_part in CORE:
            if edge.target == "bittensor" or target_part in OUTER:
                wrong.append(f"{where} (the scoring core and the leaf helpers never import {target_part or 'bittensor'})")
                continue
        if source_part in LEAVES and graph.is_ours(edge.target) and not _within(edge.target, LEAF_MAY_IMPORT):
            if target_part != source_part:
                wrong.append(f"{where} ({source_part} imports only text3d.common and text3d.protocol.errors)")
                continue
        if target_part == "cli" and not _within(edge.source, CLI_MAY_BE_IMPORTED_BY):
            wrong.append(f"{where} (the command line is imported only by neurons/ and text3d/__main__.py)")
    return wrong


def map_gaps(root: Path, package: str = "text3d") -> list[str]:
    """Modules (``x.py``) and subpackages (``x/``) that their package's ``__init__`` map leaves out."""
    gaps = []
    for init in sorted((root / package).rglob("__init__.py")):
        folder = init.parent
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        members = [f"{path.name}" for path in folder.glob("*.py") if path.name != "__init__.py"]
        members += [f"{path.name}/" for path in folder.iterdir() if (path / "__init__.py").is_file()]
        for member in sorted(members):
            if member not in doc:
                gaps.append(f"{init.relative_to(root).as_posix()}: its map does not name {member}")
    return gaps


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()

    def bind(target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                bind(element)

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    bind(target)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                bind(node.target)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return names


def _literal_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None  # computed (``list(_HOMES)``): lazy packages, checked by importing them
            return list(value)
    return None


def unresolved_exports(root: Path, package: str = "text3d") -> list[str]:
    """``__all__`` names of plain modules that the module neither defines nor imports."""
    missing = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        exported = _literal_all(tree)
        if exported is None:
            continue
        defined = _top_level_names(tree)
        has_lazy_getattr = "__getattr__" in defined
        for name in exported:
            if name not in defined and not has_lazy_getattr:
                missing.append(f"{path.relative_to(root).as_posix()}: __all__ lists {name!r}, defined nowhere in it")
    return missing


# -- stand-ins for the step's scorer ---------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    positional: tuple[str, ...]  # after self
    required: int  # how many of them have no default
    keyword_only: tuple[str, ...]
    required_keyword_only: tuple[str, ...]
    var_keyword: bool

    @classmethod
    def of(cls, function: ast.FunctionDef) -> "Signature":
        args = function.args
        positional = tuple(a.arg for a in args.posonlyargs + args.args)[1:]
        n_defaults = len(args.defaults)
        required = len(positional) - n_defaults
        keyword_only = tuple(a.arg for a in args.kwonlyargs)
        required_kw = tuple(a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None)
        return cls(positional, max(required, 0), keyword_only, required_kw, args.kwarg is not None)

    def accepts_every_call_of(self, production: "Signature") -> list[str]:
        """Why a call that ``production`` accepts could fail on this one (empty: none could)."""
        problems = []
        if self.positional[: len(production.positional)] != production.positional:
            problems.append(f"positional parameters {self.positional} instead of {production.positional}")
        if self.required > production.required:
            problems.append(f"requires {self.required} positional arguments where the scorer requires {production.required}")
        if self.required_keyword_only:
            problems.append(f"requires keywords {self.required_keyword_only}")
        for name in production.keyword_only:
            if name not in self.keyword_only and name not in self.positional and not self.var_keyword:
                problems.append(f"does not accept the keyword {name!r}")
        return problems


SCORER_METHODS = ("rig_for", "score_batch")


def _methods(tree: ast.Module) -> dict[str, dict[str, ast.FunctionDef]]:
    return {node.name: {f.name: f for f in node.body if isinstance(f, ast.FunctionDef)}
            for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}  # fmt: skip


def scorer_stub_drift(folder: Path, production: Path) -> list[str]:
    """Classes under ``folder`` that stand in for the scorer (they define ``rig_for`` or
    ``score_batch``) and lack one of the two or could refuse a call the production one takes."""
    reference = _methods(ast.parse(production.read_text()))["RewardModel"]
    wanted = {name: Signature.of(reference[name]) for name in SCORER_METHODS}
    drift = []
    for path in sorted(folder.rglob("*.py")):
        for cls, methods in _methods(ast.parse(path.read_text())).items():
            if not set(SCORER_METHODS) & set(methods):
                continue
            for name in SCORER_METHODS:
                where = f"{path.name}: {cls}.{name}"
                if name not in methods:
                    drift.append(f"{where} is missing (the step calls it)")
                    continue
                drift += [f"{where} {problem}" for problem in Signature.of(methods[name]).accepts_every_call_of(wanted[name])]
    return drift


# -- on this repository ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(ROOT)


def test_the_graph_sees_every_module_and_function_level_imports(graph):
    assert {"text3d.cli.main", "text3d.reward.model", "text3d.validator.step", "neurons.miner", "text3d.__main__"} <= set(graph.modules)
    late = [e for e in graph.edges if e.source == "text3d.validator.main" and not e.module_level]
    assert any(e.target.startswith("text3d.reward") for e in late), "imports inside main() must be seen"


def test_no_circle_among_module_level_imports(graph):
    assert circles(graph) == []


def test_every_arrow_runs_the_right_way(graph):
    assert wrong_arrows(graph) == []


def test_every_package_map_names_what_is_in_it():
    assert map_gaps(ROOT) == []


def test_every_listed_export_is_defined_where_it_is_listed():
    assert unresolved_exports(ROOT) == []


def test_scorer_stubs_accept_every_call_the_reward_model_accepts():
    stubs = [path.name for path in (ROOT / "tests").glob("*.py") if "def score_batch" in path.read_text()]
    assert {"test_validator_unit.py", "test_full_disk.py", "test_hostile_answers.py", "test_validator_defences.py"} <= set(stubs)
    assert scorer_stub_drift(ROOT / "tests", ROOT / "text3d" / "reward" / "model.py") == []


# -- planted violations: each check must catch one -------------------------------------------------


def plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in {p.parent for p in root.rglob("*.py")}:  # every folder with code is a package
        if folder != root and not (folder / "__init__.py").exists():
            (folder / "__init__.py").write_text('"""A planted package."""\n')
    return root


def test_a_planted_circle_is_caught_but_not_one_closed_inside_a_function(tmp_path):
    root = plant(tmp_path, {
        "text3d/miner/a.py": "from text3d.miner.b import B\nA = 1\n",
        "text3d/miner/b.py": "from text3d.miner import c\nB = 1\n",
        "text3d/miner/c.py": "import text3d.miner.a\n",
        "text3d/miner/d.py": "from . import e\n",
        "text3d/miner/e.py": "def late():\n    from text3d.miner import d\n",
        "text3d/miner/f.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from text3d.miner.g import G\n",
        "text3d/miner/g.py": "from text3d.miner.f import F\nG = 1\n",
    })  # fmt: skip
    assert circles(import_graph(root, ("text3d",))) == [["text3d.miner.a", "text3d.miner.b", "text3d.miner.c"]]


@pytest.mark.parametrize("source, text, rule", [
    ("text3d/reward/x.py", "import bittensor\n", "never import bittensor"),
    ("text3d/protocol/x.py", "def f():\n    from text3d.chain.base import Metagraph\n", "never import chain"),
    ("text3d/generation/x.py", "from text3d import settings\n", "never import settings"),
    ("text3d/reward/x.py", "from ..validator import weights\n", "never import validator"),
    ("text3d/reward/x.py", "from text3d.gateway.jobs import Job\n", "never import gateway"),
    ("text3d/common/x.py", "from text3d.reward.config import RewardConfig\n", "common imports only"),
    ("text3d/web/x.py", "import text3d.protocol.wire\n", "web imports only"),
    ("text3d/validator/x.py", "from text3d.cli.main import main\n", "imported only by neurons/"),
])  # fmt: skip
def test_a_planted_wrong_arrow_is_caught(tmp_path, source, text, rule):
    root = plant(tmp_path, {
        source: text,
        "text3d/chain/base.py": "Metagraph = 1\n", "text3d/settings.py": "", "text3d/validator/weights.py": "",
        "text3d/gateway/jobs.py": "Job = 1\n", "text3d/reward/config.py": "RewardConfig = 1\n",
        "text3d/protocol/wire.py": "", "text3d/protocol/errors.py": "", "text3d/cli/main.py": "def main(): pass\n",
    })  # fmt: skip
    wrong = wrong_arrows(import_graph(root, ("text3d",)))
    assert len(wrong) == 1 and rule in wrong[0], wrong


def test_allowed_arrows_are_not_reported(tmp_path):
    root = plant(tmp_path, {
        "text3d/common/x.py": "from text3d.protocol.errors import ConfigError\nfrom text3d.common import y\n",
        "text3d/common/y.py": "", "text3d/protocol/errors.py": "ConfigError = 1\n",
        "text3d/web/v.py": "from text3d.common.y import *\n",
        "text3d/reward/r.py": "from text3d.protocol import errors\nfrom text3d.web import v\nimport torch\n",
        "text3d/validator/m.py": "from text3d.reward import r\nfrom text3d.chain import c\n", "text3d/chain/c.py": "",
        "text3d/__main__.py": "from text3d.cli.main import main\n", "text3d/cli/main.py": "from text3d.cli import sub\n",
        "text3d/cli/sub.py": "", "neurons/miner.py": "from text3d.cli import main\n",
    })  # fmt: skip
    assert wrong_arrows(import_graph(root)) == []


def test_a_map_that_leaves_out_a_module_or_a_subpackage_is_caught(tmp_path):
    root = plant(tmp_path, {
        "text3d/miner/__init__.py": '"""The miner.\n\n    app.py   the app\n"""\n',
        "text3d/miner/app.py": "", "text3d/miner/queue.py": "", "text3d/miner/pools/thing.py": "",
    })  # fmt: skip
    (root / "text3d" / "__init__.py").write_text('"""Map.\n\n    miner/  the miner\n"""\n')
    assert map_gaps(root) == ["text3d/miner/__init__.py: its map does not name pools/",
                              "text3d/miner/__init__.py: its map does not name queue.py",
                              "text3d/miner/pools/__init__.py: its map does not name thing.py"]


def test_an_export_defined_nowhere_is_caught(tmp_path):
    root = plant(tmp_path, {"text3d/x.py": "from os import path\n__all__ = ['path', 'ghost', 'f']\ndef f(): pass\n"})
    assert unresolved_exports(root) == ["text3d/x.py: __all__ lists 'ghost', defined nowhere in it"]


def test_a_drifted_scorer_stub_is_caught(tmp_path):
    production = tmp_path / "model.py"
    production.write_text(
        "class RewardModel:\n"
        "    def rig_for(self, step_seed=None, rig=None): pass\n"
        "    def score_batch(self, meshes, prompts, references=None, *, rig=None, step_seed=None): pass\n"
    )
    stubs = tmp_path / "tests"
    stubs.mkdir()
    (stubs / "test_ok.py").write_text(
        "class Fine:\n"
        "    def rig_for(self, step_seed=None, rig=None): pass\n"
        "    def score_batch(self, meshes, prompts, references=None, **options): pass\n"
    )
    (stubs / "test_bad.py").write_text(
        "class NoRig:\n"
        "    def score_batch(self, meshes, prompts, references=None, **options): pass\n"
        "class Strict:\n"
        "    def rig_for(self, step_seed, rig=None): pass\n"
        "    def score_batch(self, meshes, prompts): pass\n"
    )
    assert scorer_stub_drift(stubs, production) == [
        "test_bad.py: NoRig.rig_for is missing (the step calls it)",
        "test_bad.py: Strict.rig_for requires 1 positional arguments where the scorer requires 0",
        "test_bad.py: Strict.score_batch positional parameters ('meshes', 'prompts') instead of "
        "('meshes', 'prompts', 'references')",
        "test_bad.py: Strict.score_batch does not accept the keyword 'rig'",
        "test_bad.py: Strict.score_batch does not accept the keyword 'step_seed'",
    ]
