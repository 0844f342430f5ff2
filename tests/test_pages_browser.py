"""The pages the project writes, as a person sees them: headless Chromium through Playwright, offline.

Pinned, at 1280 and at 600 px wide, each page opened from ``file://`` with every request that is not
``file:`` or ``data:`` blocked and counted (a page that needs a CDN shows nothing offline):
- the validator's reports index: steps newest first with the canary's result, links to each step
  and to each miner's page; nothing overflows the width; the viewport tag is there;
- a miner's history page: the chart of its step scores and moving average is drawn;
- a step page: each answer's status, seconds and bytes, the average-versus-score explanation, and
  the best answer's mesh in the 3D viewer, which draws it (the viewer's pixels are not blank and
  hold the mesh's colour); the 8 views sit in a regular grid (4 columns; 2 at 600 px), each a link
  to its full-size image; the legend is below the fold;
- a ``text3d score`` page: the best asset's mesh in the viewer, drawn, and a link to the file.

Chromium is Debian's (``chromium``, from the Makefile's apt list; missing, the tests fail saying so),
driven through Playwright's ``executable_path``;
WebGL runs on SwiftShader. The screenshots are kept in the test's folder (look at them).
The reports come from real ``Validator.step``s (the tiny random CLIP scoring real renders of
coloured meshes; the chain and the miners' answers are faked at their edge).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from text3d.protocol.mesh_codec import MeshFormat, encode_mesh
from text3d.protocol.wire import TextTo3DResponse
from text3d.reward.config import RewardConfig
from text3d.reward.defences.canary import CanaryExpectations
from text3d.reward.model import RewardModel
from text3d.settings import ValidatorSettings
from text3d.validator.client import MinerAnswer
from text3d.validator.engine import Validator
from text3d.validator.prompts import PromptSampler
from text3d.validator.reports import StepReports
from text3d.validator.state import ValidatorState
from text3d.web.viewer import viewer_js_path
from tests.asset_corpus import coloured_box
from tests.test_full_disk import Chain, Wallet

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.integration]
ARGS = ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--use-gl=angle", "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader", "--hide-scrollbars"]
RED = (210, 40, 30)
BLUE = (40, 70, 200)
SHOTS = Path(os.environ.get("TEXT3D_SCREENSHOTS", "")) if os.environ.get("TEXT3D_SCREENSHOTS") else None


# -- a validator's reports, from real steps -------------------------------------------------------------


def _payload(mesh) -> tuple[bytes, dict]:
    payload = encode_mesh(mesh, MeshFormat.DRACO)
    headers = {k.lower(): v for k, v in TextTo3DResponse(payload=payload, format="draco",
                                                         generation_time_s=1.5).headers().items()}
    return payload, headers


def _shape(kind: int, rgb: tuple[int, int, int]):
    """A different solid each step (the same one twice would be a repeat the copycat check zeroes)."""
    import trimesh

    mesh = [lambda: trimesh.creation.box((1.0, 1.0, 1.0)), lambda: trimesh.creation.cylinder(0.5, 1.2, sections=32),
            lambda: trimesh.creation.cone(0.6, 1.2, sections=32), lambda: trimesh.creation.capsule(0.8, 0.4)][kind % 4]()
    mesh.visual.vertex_colors = np.tile(np.array([[*rgb, 255]], dtype=np.uint8), (len(mesh.vertices), 1))
    return mesh


class Client:
    """uid 1 answers a red solid, uid 2 a blue one (another solid each step), uid 3 is late, uid 4 sends
    junk bytes."""

    def __init__(self) -> None:
        self.calls = 0

    async def query_many(self, targets, requests, timeout_s):
        self.calls += 1
        answers = []
        for target in targets:
            if target.uid in (1, 2):
                rgb = RED if target.uid == 1 else BLUE
                body, headers = _payload(_shape(self.calls + target.uid, rgb))
                answers.append(MinerAnswer(target.uid, "ok", http_status=200, elapsed_s=1.8 + target.uid / 10,
                                           headers=dict(headers), body=body, bytes_received=len(body)))
            elif target.uid == 3:
                answers.append(MinerAnswer(target.uid, "late", detail="no answer within 12 s", elapsed_s=12.0))
            else:
                body = b"\x00junk" * 40
                headers = {k.lower(): v for k, v in TextTo3DResponse(payload=body, format="draco",
                                                                     generation_time_s=0.1).headers().items()}
                answers.append(MinerAnswer(target.uid, "ok", http_status=200, elapsed_s=0.4, headers=headers,
                                           body=body, bytes_received=len(body)))
        return answers


@pytest.fixture(scope="module")
def reports_dir(tmp_path_factory, tiny_clip):
    if viewer_js_path() is None:
        pytest.fail("the 3D viewer is not installed: run scripts/fetch_viewer.sh (make setup does)")
    folder = tmp_path_factory.mktemp("validator") / "reports"
    chain = Chain()
    chain.hotkeys = ["validator-hotkey", "5MinerOneHotkeyxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                     "5MinerTwoHotkeyxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "5LateMinerxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                     "5JunkMinerxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]
    config = ValidatorSettings(sample_size=8, alpha=0.1, canary_every_steps=1, step_interval_s=0,
                               state_path=folder.parent / "state.json")
    reward = RewardModel(tiny_clip, None, None, config=RewardConfig(n_views=8, resolution_px=320))
    rng = random.Random(3)
    validator = Validator(config, wallet=Wallet(), chain=chain, client=Client(), reward_model=reward,
                          state=ValidatorState(), sampler=PromptSampler(["a red box", "a <b>blue</b> crate"], rng),
                          rng=rng, reports=StepReports(folder, 50.0),
                          canary=CanaryExpectations.for_models("tiny"))
    for _ in range(3):
        result = _off_the_browser_loop(lambda: asyncio.run(validator.step()))
        assert result.updated, result.fault
    return folder


def _off_the_browser_loop(call):
    """Playwright's sync API runs an event loop on this thread: the project's own asyncio runs on another."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


# -- the browser -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "needs Chromium: sudo apt-get install chromium (the Makefile's apt list)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class Page:
    """One page at one width, offline: requests other than file: and data: are blocked and counted."""

    def __init__(self, browser, path: Path, width: int, height: int = 900) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.blocked: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")
        self.width = width

    def _route(self, route) -> None:
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def overflow(self) -> dict:
        return self.page.evaluate("""() => {
            let right = 0, widest = '';
            for (const el of document.body.querySelectorAll('*')) {
              const r = el.getBoundingClientRect();
              if (r.width && r.right > right) { right = r.right; widest = el.tagName + '.' + el.className; }
            }
            return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, right, widest};
        }""")

    def check_fits(self) -> None:
        measured = self.overflow()
        assert measured["scrollWidth"] <= measured["innerWidth"] == self.width, measured
        assert measured["right"] <= self.width + 0.5, measured
        assert self.page.locator('meta[name="viewport"]').count() == 1
        assert self.blocked == [] and self.errors == [], (self.blocked, self.errors)

    def shot(self, name: str, **options) -> Path:
        folder = SHOTS or Path(self.page.url[len("file://"):]).parent
        path = folder / f"{name}-{self.width}.png"
        self.page.screenshot(path=str(path), **options)
        return path

    def close(self) -> None:
        self.context.close()


def _viewer_drawn(page: Page, selector: str, name: str) -> np.ndarray:
    """Wait until the ``<model-viewer>`` has loaded its mesh and rendered; its screenshot's pixels.

    The viewer loads its mesh once it is scrolled into view (model-viewer's lazy loading)."""
    page.page.locator(selector).first.scroll_into_view_if_needed()
    page.page.wait_for_function(f"document.querySelector('{selector}') && document.querySelector('{selector}').loaded",
                                timeout=90_000)
    page.page.wait_for_timeout(1500)  # a few frames after the load
    path = page.shot(name)
    element = page.page.locator(selector).first
    element.screenshot(path=str(path.with_name(path.stem + "-viewer.png")))
    return np.asarray(Image.open(path.with_name(path.stem + "-viewer.png")).convert("RGB")).astype(int)


def _assert_mesh_drawn(pixels: np.ndarray, rgb: tuple[int, int, int]) -> None:
    background = np.median(pixels.reshape(-1, 3), axis=0)
    differs = np.abs(pixels - background).sum(axis=2) > 40
    assert differs.mean() > 0.05, f"the viewer looks blank ({differs.mean():.3f} of its pixels differ)"
    main = int(np.argmax(rgb))  # lit and shaded, the mesh keeps its dominant channel
    others = [c for c in range(3) if c != main]
    hue = (pixels[..., main] > pixels[..., others[0]] + 60) & (pixels[..., main] > pixels[..., others[1]] + 60)
    assert hue.mean() > 0.02, f"the mesh's colour {rgb} is not in the viewer"


# -- the tests ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1280, 600])
def test_reports_index_lists_steps_newest_first_with_the_canary(browser, reports_dir, width):
    page = Page(browser, reports_dir / "index.html", width)
    try:
        page.check_fits()
        links = page.page.locator("table a[href^='step_']")
        assert [links.nth(i).inner_text() for i in range(links.count())] == ["step 3", "step 2", "step 1"]
        assert page.page.locator("text=ok").count() >= 3  # the canary column
        miners = page.page.locator("a[href^='miners/uid_']")
        assert miners.count() == 4
        page.shot("index", full_page=True)
        links.first.click()
        page.page.wait_for_load_state("load")
        assert page.page.url.endswith("step_000003/index.html")
    finally:
        page.close()


@pytest.mark.parametrize("width", [1280, 600])
def test_a_miner_page_charts_its_scores_and_average(browser, reports_dir, width):
    page = Page(browser, reports_dir / "miners" / "uid_001.html", width)
    try:
        page.check_fits()
        chart = page.page.locator("svg.chart")
        assert chart.count() == 1 and chart.bounding_box()["width"] > 0.8 * min(width - 40, 900)
        assert page.page.locator("svg.chart circle").count() == 3 and page.page.locator("svg.chart polyline").count() == 1
        rows = page.page.locator("table tr")
        assert rows.count() == 1 + 3
        page.shot("miner", full_page=True)
    finally:
        page.close()


@pytest.mark.parametrize("width", [1280, 600])
def test_a_step_page_shows_answers_and_draws_the_best_mesh(browser, reports_dir, width):
    page = Page(browser, reports_dir / "step_000003" / "index.html", width)
    try:
        page.check_fits()
        answers = page.page.locator("table.answers").inner_text()
        for expected in ("ok", "late", "invalid", "uid 1", "uid 3"):
            assert expected in answers, answers
        assert page.page.locator("#average").inner_text().startswith("Step score and moving average")
        # the legend is not what a reader sees first
        legend = page.page.locator("#legend").bounding_box()
        assert legend["y"] > 900, legend
        # 8 views in a regular grid: 4 columns (2 at 600 px), equal cells, each a link to its image
        figures = page.page.locator("article.asset").first.locator("figure")
        assert figures.count() == 8
        boxes = [figures.nth(i).bounding_box() for i in range(8)]
        columns = sorted({round(b["x"]) for b in boxes})
        assert len(columns) == (4 if width >= 1000 else 2), columns
        assert len({round(b["width"]) for b in boxes}) == 1
        link = figures.first.locator("a")
        href = link.get_attribute("href")
        full = Image.open(page.page.url[len("file://"):].rsplit("/", 1)[0] + "/" + href)
        assert full.size[0] >= boxes[0]["width"]  # the link shows the view larger than its cell
        best = page.page.locator("article.asset h3").first.inner_text()  # the random tiny CLIP decides who
        pixels = _viewer_drawn(page, "article.asset model-viewer", "step")
        _assert_mesh_drawn(pixels, RED if "uid 1 " in best else BLUE)  # the best answer's mesh is in the viewer
        assert page.page.locator("a[download]").first.get_attribute("href").endswith("mesh.glb")
    finally:
        page.close()


@pytest.fixture(scope="module")
def score_page(tmp_path_factory):
    from text3d.cli.main import main

    tmp = tmp_path_factory.mktemp("score")
    assets = tmp / "assets"
    assets.mkdir()
    (assets / "red.glb").write_bytes(encode_mesh(coloured_box(RED), MeshFormat.GLB))
    (assets / "blue.ply").write_bytes(encode_mesh(coloured_box(BLUE), MeshFormat.PLY))
    out = tmp / "html"
    rc = _off_the_browser_loop(lambda: main([
        "score", str(assets), "--prompt", "a red box", "--models", "tiny", "--captioner", "none", "--views", "8",
        "--resolution", "96", "--html", str(out)]))
    assert rc == 0
    return out


@pytest.mark.parametrize("width", [1280, 600])
def test_a_score_page_draws_the_best_mesh_and_links_the_file(browser, score_page, width):
    page = Page(browser, score_page / "index.html", width)
    try:
        page.check_fits()
        assert page.page.locator("model-viewer").count() == 2  # both assets are within the top 5
        first = page.page.locator("article.asset").first
        name = first.locator("h3").inner_text()
        colour = RED if "red" in name else BLUE
        pixels = _viewer_drawn(page, "article.asset model-viewer", "score")
        _assert_mesh_drawn(pixels, colour)
        source = first.locator("a", has_text="the file").get_attribute("href")
        assert (score_page / source).resolve().is_file()
    finally:
        page.close()


def test_the_demo_leaderboard_fits_600_px(browser, reports_dir, tmp_path):
    from text3d.demo.leaderboard import leaderboard_rows, write_html

    hotkeys = {0: "5" + "V" * 47, 1: "5" + "M" * 47, 2: "5" + "N" * 47}
    rows = leaderboard_rows({0: "validator", 1: "miner1", 2: "miner2"}, hotkeys, {1: 0.7, 2: 0.3}, {1: 0.41, 2: 0.2})
    page_path = write_html(rows, tmp_path / "leaderboard.html", "text3d devnet leaderboard (netuid 1, block 42)",
                           reports_dir / "step_000003" / "index.html", reports_index=reports_dir / "index.html")
    page = Page(browser, page_path, 600)
    try:
        page.check_fits()
        assert page.page.locator("a", has_text="the validator's reports").count() == 1
        page.shot("leaderboard")
    finally:
        page.close()
