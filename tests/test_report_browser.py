"""The HTML report as a person sees it: opened in headless Chromium, the page is not blank,
nothing overflows the page width (long file names, long unbroken captions, markup in
prompts), and the summary table, the legend and the tiny-model banner are there.

Chromium comes from Debian (``apt-get install chromium``, in the Makefile's APT_PACKAGES, which
``make setup`` installs); without it these tests fail, saying so.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from text3d.cli.main import main
from text3d.protocol.mesh_codec import MeshFormat, encode_mesh
from tests.asset_corpus import coloured_box, textured_cube
from tests.loopback import ScriptedHTTP, chat_completion
from tests.test_score_cli import TINY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]

# Appended to a copy of the page: writes the page's widths, and the right edge of the element
# that reaches furthest, into the DOM, which --dump-dom then prints.
MEASURE = """<script>
window.addEventListener('load', () => {
  let right = 0, widest = '';
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > right) { right = r.right; widest = el.tagName + '.' + el.className; }
  }
  const out = document.createElement('pre');
  out.id = 'measured';
  out.textContent = JSON.stringify({scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth, right: right, widest: widest,
    summaryRows: document.querySelectorAll('table.summary tr').length - 1,
    legend: !!document.querySelector('dl.legend'), banner: !!document.getElementById('tiny-models'),
    images: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length});
  document.body.appendChild(out);
});
</script>"""


def chromium(tmp_path: Path, page: Path, width: int, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "needs Chromium: sudo apt-get install chromium (the Makefile's apt list)"
    profile = tmp_path / f"chromium-profile-{width}-{len(args)}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},2400",
         "--virtual-time-budget=5000", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, mpnet):
    """A real `text3d score` run (tiny models, a captioner at the network edge answering a
    long unbroken caption with markup) over a textured, a vertex-coloured and a broken asset
    with hostile names."""
    from text3d.reward import factory
    from text3d.reward.text import TextEmbedder

    tmp = tmp_path_factory.mktemp("browser")
    assets = tmp / "assets"
    assets.mkdir()
    (assets / "crate.glb").write_bytes(encode_mesh(textured_cube(), MeshFormat.GLB))
    markup = assets / ("a_very_long_file_name_" * 8 + "[bold]box[")  # + "/].ply": the name reads "...[bold]box[/].ply"
    markup.mkdir()
    (markup / "].ply").write_bytes(encode_mesh(coloured_box(), MeshFormat.PLY))
    (assets / "broken.glb").write_bytes(b"glTF" + b"\0" * 40)
    (assets / "notes.txt").write_text("not a mesh")
    caption = "<b>caption</b> [/] " + "x" * 400 + " " + "a wooden crate " * 40
    server = ScriptedHTTP(lambda n, path, body: chat_completion(caption))
    original = factory.TextEmbedder.from_pretrained
    factory.TextEmbedder.from_pretrained = classmethod(lambda cls, *a, **k: TextEmbedder(mpnet.model, model_id=mpnet.model_id))
    try:
        out = tmp / "html"
        rc = main(["score", str(assets), "--prompt", "a wooden crate [/] <script>alert(1)</script>",
                   "--captioner", server.url, "--html", str(out), "--json", str(tmp / "scores.json"),
                   *[a if a != "64" else "128" for a in TINY]])
    finally:
        factory.TextEmbedder.from_pretrained = original
        server.stop()
    assert rc == 0
    return out


@pytest.mark.parametrize("width", [1280, 600])
def test_nothing_overflows_the_page_and_the_parts_are_there(tmp_path, report_dir, width):
    page = report_dir / "measure.html"
    page.write_text((report_dir / "index.html").read_text().replace("</body>", MEASURE + "</body>"))
    done = chromium(tmp_path, page, width, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    measured = json.loads(found.group(1).replace("&quot;", '"'))
    assert measured["scrollWidth"] <= measured["innerWidth"] == width, measured
    assert measured["right"] <= width + 0.5, measured
    assert measured["summaryRows"] == 3 and measured["legend"] and measured["banner"]  # broken.glb ranks last, score 0
    assert measured["images"] == 4  # 2 assets x 2 views, every one loads


def test_the_screenshot_is_not_blank_and_shows_the_views(tmp_path, report_dir):
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, report_dir / "index.html", 1000, f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    ink = np.abs(pixels - 255).sum(axis=2) > 60
    assert ink.mean() > 0.03  # text, tables and pictures, not an empty white page
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 80
    assert saturated.mean() > 0.002  # the banner and the coloured views are drawn


def test_text_from_strangers_is_escaped_in_the_page(report_dir):
    text = (report_dir / "index.html").read_text()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>caption</b>" not in text and "[bold]box[/].ply" in text
    assert "broken.glb" in text and "notes.txt" in text  # listed with their reasons
