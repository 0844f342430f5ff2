"""Nothing cites a file that does not exist: the docs and the code's own docstrings point at
real paths and modules, so a move or a rename cannot leave a stale map behind.

Rules pinned here (the first run found a ``DESIGN.md`` cited by setup.py, tests and the
README but not in the repository, ``neurons/...`` and ``scripts/build_llama_server.sh`` paths
in docstrings and a user-facing error message after the move into ``text3d/``):
- every markdown link to a file, and every backticked repo-relative path (one that starts
  with a top-level folder such as ``text3d/`` or ``docs/``, or a root file such as
  ``setup.py``), in README.md and docs/*.md exists;
- every backticked ``text3d.x.y`` module there names a module (or a name in one);
- the same for paths and modules cited in the docstrings and comments of ``text3d/`` and
  ``neurons/``.
Each check also runs on a planted tree it must catch.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

TOP_FOLDERS = ("text3d", "neurons", "scripts", "tests", "bench", "docs", ".ci")
PATH = re.compile(r"(?<![\w./~$-])((?:%s)/[\w./-]*[\w/])(?![\w{*<])" % "|".join(map(re.escape, TOP_FOLDERS)))
MODULE = re.compile(r"(?<![\w./-])(text3d(?:\.[A-Za-z_]\w*)+)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CAPS_MD = re.compile(r"(?<![\w/.-])([A-Z][A-Z0-9_-]*\.md)\b")  # README.md, DESIGN.md: root documents, cited bare
BACKTICKED = re.compile(r"``?([^`\n]+?)``?")


def module_exists(root: Path, dotted: str) -> bool:
    """``text3d.a.b`` is a module or package, or ``text3d.a.B`` a name written in module ``text3d.a``."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:i])
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if source.is_file():
            rest = parts[i:]
            text = source.read_text()  # a name in it, or a name in a class of it: CameraRig.to_dict
            return len(rest) <= 2 and all(re.search(rf"\b{re.escape(name)}\b", text) for name in rest)
    return False


def missing_in(root: Path, where: str, text: str, base: Path | None = None) -> list[str]:
    """Paths and modules ``text`` cites that ``root`` lacks (links resolved from ``base``)."""
    missing = []
    for match in PATH.finditer(text):
        if not (root / match.group(1).rstrip("./")).exists():
            missing.append(f"{where}: {match.group(1)}")
    for match in MODULE.finditer(text):
        if not module_exists(root, match.group(1).rstrip(".")):
            missing.append(f"{where}: {match.group(1)}")
    for match in CAPS_MD.finditer(text):
        if not (root / match.group(1)).exists() and not (root / "docs" / match.group(1)).exists():
            missing.append(f"{where}: {match.group(1)}")
    if base is not None:  # markdown: links and root files in backticks
        for match in LINK.finditer(text):
            target = match.group(1).split("#")[0]
            if target and not re.match(r"[a-z]+:", target) and not (base / target).exists():
                missing.append(f"{where}: {target}")
        for match in BACKTICKED.finditer(text):
            name = match.group(1).strip()
            if name in ("setup.py", "pytest.ini", "min_compute.yml", "MANIFEST.in", "Makefile") and not (root / name).exists():
                missing.append(f"{where}: {name}")
    return list(dict.fromkeys(missing))  # a path both linked and backticked is one finding


def missing_in_docs(root: Path) -> list[str]:
    missing = []
    for md in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        missing += missing_in(root, md.relative_to(root).as_posix(), md.read_text(), md.parent)
    return missing


def prose_of(source: str) -> str:
    """The docstrings and comments of a Python source (not its code: a logger's name is not a citation)."""
    tree = ast.parse(source)
    parts = [ast.get_docstring(node) or "" for node in ast.walk(tree)
             if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]  # fmt: skip
    parts += [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT]
    return "\n".join(parts)


def missing_in_code(root: Path) -> list[str]:
    missing = []
    for path in sorted([*(root / "text3d").rglob("*.py"), *(root / "neurons").rglob("*.py"), root / "setup.py"]):
        missing += missing_in(root, path.relative_to(root).as_posix(), prose_of(path.read_text()))
    return missing


def test_every_path_and_module_the_docs_cite_exists():
    assert missing_in_docs(REPO) == []


def test_every_path_and_module_the_code_cites_exists():
    assert missing_in_code(REPO) == []


def test_the_docs_are_read():
    text = (REPO / "README.md").read_text()
    assert "docs/architecture.md" in text and (REPO / "docs" / "architecture.md").is_file()
    assert len(list(PATH.finditer((REPO / "docs" / "architecture.md").read_text()))) > 20


@pytest.fixture
def planted(tmp_path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "text3d" / "reward").mkdir(parents=True)
    (tmp_path / "text3d" / "__init__.py").write_text("")
    (tmp_path / "text3d" / "reward" / "__init__.py").write_text("")
    (tmp_path / "text3d" / "reward" / "model.py").write_text("class RewardModel:\n    pass\n")
    (tmp_path / "setup.py").write_text("# pins: see DESIGN.md\n")
    return tmp_path


def test_planted_stale_citations_in_the_docs_are_caught(planted):
    (planted / "README.md").write_text(
        "See [the guide](docs/guide.md), `text3d/reward/model.py`, `text3d.reward.model.RewardModel`,\n"
        "`setup.py`, `DESIGN.md`, `neurons/data/prompts.txt`, `text3d.reward.factory`, `text3d.reward.model.Ghost`\n"
        "and [the web](https://example.org/x.md). Your `miner.toml` is yours; STYLE.md too.\n"
    )
    (planted / "docs" / "a.md").write_text("Back to [the README](../README.md#layout).\n")
    assert missing_in_docs(planted) == [
        "README.md: docs/guide.md", "README.md: neurons/data/prompts.txt", "README.md: text3d.reward.factory",
        "README.md: text3d.reward.model.Ghost", "README.md: DESIGN.md", "README.md: STYLE.md",
    ]


def test_planted_stale_citations_in_docstrings_and_comments_are_caught(planted):
    (planted / "text3d" / "reward" / "caption.py").write_text(
        '"""Captions; the server is built by ``scripts/build_llama_server.sh`` (see text3d.reward.model)."""\n'
        "import logging\n"
        "log = logging.getLogger('text3d.captions')  # a logger name, not a citation\n"
        "def f():\n"
        "    # the old home: neurons/miner_app.py\n"
        "    return 1\n"
    )
    assert missing_in_code(planted) == ["setup.py: DESIGN.md", "text3d/reward/caption.py: scripts/build_llama_server.sh",
                                        "text3d/reward/caption.py: neurons/miner_app.py"]
