"""The README's quick start, run as written, and the README's links.

Rules pinned here:
- the README opens with what text3d is, then the two commands, then a quick start; its
  sections for a miner, a validator and scoring point into docs/, and every docs/ (or other
  local) link it holds names a file that exists;
- the commands of "Try it in a minute", run one by one in a fresh folder with the running
  venv's ``bin`` on PATH (the venv the README says to activate), make a GLB mesh and an HTML
  report whose page embeds that mesh in the 3D viewer (the viewer's script beside it), and
  both commands say that the tiny models have random weights.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_readme_devnet import code_blocks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parent.parent


def section(markdown: str, heading: str) -> str:
    found = re.search(rf"(?ms)^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown)
    assert found, f"the README has no '## {heading}' section"
    return found.group(1)


def test_the_readme_starts_with_what_people_came_for_and_its_links_resolve():
    readme = (REPO / "README.md").read_text()
    headings = re.findall(r"(?m)^## (.+)$", readme)
    assert headings[:4] == ["The two commands", "Try it in a minute", "Search a library of assets",
                            "Install just what you run"], headings
    for heading, doc in (("Run a miner", "docs/miner.md"), ("Run a validator", "docs/validator.md"),
                         ("Score assets", "docs/scoring-assets.md")):
        assert doc in section(readme, heading), heading
    assert len(readme.splitlines()) < 200  # details live in docs/
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (REPO / target).exists(), f"the README links {target}, which does not exist"
    for doc in (REPO / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (doc.parent / target).exists(), f"{doc.name} links {target}, which does not exist"


def test_the_quick_start_runs_as_written(tmp_path):
    (commands,) = code_blocks(section((REPO / "README.md").read_text(), "Try it in a minute"))
    assert [c.split()[1] for c in commands] == ["generate", "score"]
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, HF_HUB_OFFLINE="1", PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
               COLUMNS="160")
    outputs = []
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert (tmp_path / "chair.glb").read_bytes()[:4] == b"glTF"
    assert "random weights" in outputs[0] and "random blob" in outputs[0]
    assert "random-weight" in outputs[1] and "report/index.html" in outputs[1]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<model-viewer" in page and "data:model/gltf-binary;base64," in page
    assert (tmp_path / "report" / "model-viewer-umd.min.js").is_file()
    assert 'id="tiny-models"' in page  # the page says it too
