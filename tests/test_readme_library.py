"""The README's "Search a library of assets" commands, run as written in a fresh folder:
they generate two assets, index them, search them (by description, by a file they should
look like with a style filter), and list duplicates -- each exits 0, and the files they
say they write are there. The only change to the commands: the shell's PATH leads to the
``text3d`` of the environment running the tests (a user's activated venv)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_readme_devnet import code_blocks

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parent.parent


def library_block(markdown: str) -> list[str]:
    section = markdown.split("## Search a library of assets", 1)[1].split("\n## ", 1)[0]
    (block,) = code_blocks(section)
    return block


def test_the_readme_library_commands_run_as_written(tmp_path):
    readme = (REPO / "README.md").read_text()
    commands = library_block(readme)
    assert [c.split()[:2] for c in commands if c.startswith("text3d")][:3] == [
        ["text3d", "generate"], ["text3d", "generate"], ["text3d", "index"]]
    assert library_block((REPO / "docs" / "library.md").read_text()) == commands, "README and docs/library.md differ"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["assets"] and results["assets"][0]["rank"] == 1
    assert (tmp_path / "results" / "index.html").is_file() and (tmp_path / "library" / "library.json").is_file()
