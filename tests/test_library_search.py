"""Asset libraries, searching (``text3d search``). Rules pinned here:

- an asset's search score equals ``text3d score``'s for the same prompt, rig and models --
  CLIP only, with the user's own contrast prompts, with the flatness factor off, and with
  captions (stored at index time, judged at search time) -- and nothing is rendered for it;
- the free-text filter is the same formula with the filter as the prompt and the style
  contrast set: ``text3d score --prompt FILTER --contrast <the styles>`` gives its numbers;
- ``--like FILE`` puts the file's byte and geometry copies first, leaves the file itself
  out when it is in the library, and works for a file outside it;
- with fewer candidates than assets, every result still carries its exact score;
- the JSON is in rank order, CSV cells a spreadsheet would run are quoted, the HTML page
  shows each result in the 3D viewer in a real browser and a stranger's file name there is
  text, not markup.
"""

import csv
import io
import shutil

import pytest

from text3d.library.search import STYLE_CONTRAST
from tests.asset_corpus import coloured_box, textured_cube, write_corpus
from tests.library_fixtures import TINY, ColourCaptionServer, score_json, text3d

pytestmark = pytest.mark.timeout(900)
PROMPT = "a red cube"


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """The corpus plus a thin plate (flatness) and a copy of the textured cube, indexed once."""
    import trimesh

    folder = tmp_path_factory.mktemp("library")
    write_corpus(folder)
    plate = coloured_box()
    plate.apply_scale([1.0, 1.0, 0.01])
    (folder / "plate.ply").write_bytes(plate.export(file_type="ply"))
    shutil.copy(folder / "glb" / "textured_png.glb", folder / "copy_of_textured.glb")
    trimesh.Trimesh(textured_cube().vertices * 2.0, textured_cube().faces).export(folder / "big_plain_cube.stl")
    index = tmp_path_factory.mktemp("index") / "index"
    from text3d.cli.main import main

    assert main(["index", str(folder), "--index", str(index), *TINY]) == 0
    return folder, index


@pytest.fixture()
def shared_mpnet(mpnet, monkeypatch):
    """score and search load mpnet through TextEmbedder.from_pretrained: hand them the session's copy."""
    from text3d.reward.text import TextEmbedder

    monkeypatch.setattr(TextEmbedder, "from_pretrained",
                        classmethod(lambda cls, *a, **k: cls(mpnet.model, model_id=mpnet.model_id)))


def _scores(document: dict) -> dict[str, dict]:
    return {a["name"]: a["report"] for a in document["assets"] if a["report"]["invalid_reason"] is None}


def _same_reports(searched: dict[str, dict], scored: dict[str, dict]) -> None:
    assert set(searched) == set(scored)
    for name, report in scored.items():
        found = searched[name]
        assert found["score"] == pytest.approx(report["score"], abs=1e-9), name
        assert found["components"] == pytest.approx(report["components"], abs=1e-9), name
        assert found["notes"] == report["notes"] and found["defences"] == report["defences"], name
        assert [v["clip_probability"] for v in found["views"]] == \
            pytest.approx([v["clip_probability"] for v in report["views"]], abs=1e-9)
        assert [v["caption"] for v in found["views"]] == [v["caption"] for v in report["views"]]


@pytest.mark.parametrize("options", [[], ["--contrast", "a wooden chair", "a green frog", "a teapot"],
                                     ["--no-flatness"]], ids=["protocol", "own-contrast", "no-flatness"])
def test_search_scores_equal_text3d_score(library, tmp_path, capsys, options):
    folder, index = library
    status, _, _ = text3d(capsys, "score", folder, "--prompt", PROMPT, "--json", tmp_path / "score.json",
                          "--format", "none", *TINY, *options)
    assert status == 0
    status, out, _ = text3d(capsys, "search", index, PROMPT, "--top", "1000", "--json", tmp_path / "search.json",
                            *options)
    assert status == 0
    scored, searched = score_json(tmp_path / "score.json"), score_json(tmp_path / "search.json")
    _same_reports(_scores(searched), _scores(scored))
    assert searched["off_protocol"] == scored["off_protocol"] and searched["off_protocol"]  # tiny views: marked
    if "--no-flatness" in options:
        assert "flatness factor off" in searched["off_protocol"]
        assert _scores(searched)["plate.ply"]["defences"]["flatness_factor"] == 1.0
    else:
        assert _scores(searched)["plate.ply"]["defences"]["flatness_factor"] < 0.9
    ranks = [a["rank"] for a in searched["assets"]]
    keys = [a["key"] for a in searched["assets"]]
    assert ranks == list(range(1, len(ranks) + 1)) and keys == sorted(keys, reverse=True)  # JSON in rank order


def test_search_with_stored_captions_equals_score_with_the_captioner(library, tmp_path, capsys, shared_mpnet):
    folder, _ = library
    server = ColourCaptionServer()
    try:
        index = tmp_path / "captioned"
        assert text3d(capsys, "index", folder, "--index", index, "--captioner", server.url, *TINY)[0] == 0
        captioned = server.requests
        assert text3d(capsys, "score", folder, "--prompt", PROMPT, "--captioner", server.url, "--references",
                      "a box", "--json", tmp_path / "score.json", "--format", "none", *TINY)[0] == 0
        asked = server.requests
        assert text3d(capsys, "search", index, PROMPT, "--references", "a box", "--top", "1000", "--json",
                      tmp_path / "search.json")[0] == 0
        assert server.requests == asked  # the search asked the captioner nothing
    finally:
        server.close()
    assert captioned > 0
    searched, scored = _scores(score_json(tmp_path / "search.json")), _scores(score_json(tmp_path / "score.json"))
    _same_reports(searched, scored)
    assert {"clip", "caption", "reference"} <= set(scored["plate.ply"]["components"])
    assert len({r["components"]["caption"] for r in scored.values()}) > 1  # captions differ between assets


def test_the_filter_is_the_formula_with_the_style_contrast(library, tmp_path, capsys):
    folder, index = library
    style = "a low-poly 3D model"
    contrast = [s for s in STYLE_CONTRAST if s != style]
    assert text3d(capsys, "score", folder, "--prompt", style, "--contrast", *contrast, "--json",
                  tmp_path / "score.json", "--format", "none", *TINY)[0] == 0
    assert text3d(capsys, "search", index, PROMPT, "--filter", style, "--top", "1000", "--json",
                  tmp_path / "search.json")[0] == 0
    scored = _scores(score_json(tmp_path / "score.json"))
    for asset in score_json(tmp_path / "search.json")["assets"]:
        assert asset["filter"] == pytest.approx(scored[asset["name"]]["score"], abs=1e-9)
        assert asset["key"] == pytest.approx(asset["filter"] * asset["report"]["score"], abs=1e-12)


def test_like_finds_copies_first_and_leaves_the_file_itself_out(library, tmp_path, capsys):
    folder, index = library
    query = folder / "glb" / "textured_png.glb"
    assert text3d(capsys, "search", index, "--like", query, "--top", "5", "--json", tmp_path / "like.json")[0] == 0
    found = score_json(tmp_path / "like.json")["assets"]
    names = [a["name"] for a in found]
    assert "glb/textured_png.glb" not in names
    assert "copy_of_textured.glb" in names[:4] and found[0]["likeness"] == pytest.approx(1.0, abs=1e-6)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(query, outside / "mine.glb")  # not in the library: observed once, here
    assert text3d(capsys, "search", index, "--like", outside / "mine.glb", "--top", "5", "--json",
                  tmp_path / "outside.json")[0] == 0
    found = score_json(tmp_path / "outside.json")["assets"]
    assert {"glb/textured_png.glb", "copy_of_textured.glb"} <= {a["name"] for a in found[:5]}
    assert found[0]["likeness"] == pytest.approx(1.0, abs=1e-5)


def test_fewer_candidates_still_give_each_result_its_exact_score(library, tmp_path, capsys):
    _, index = library
    assert text3d(capsys, "search", index, PROMPT, "--top", "1000", "--exhaustive", "--json", tmp_path / "all.json")[0] == 0
    status, out, _ = text3d(capsys, "search", index, PROMPT, "--top", "3", "--candidates", "5", "--json",
                            tmp_path / "few.json")
    assert status == 0
    few, everything = score_json(tmp_path / "few.json"), _scores(score_json(tmp_path / "all.json"))
    assert few["judged"] <= 5 and len(few["assets"]) == 3
    for asset in few["assets"]:
        assert asset["report"]["score"] == pytest.approx(everything[asset["name"]]["score"], abs=1e-9)
    assert "judged with the exact formula" in out


def test_csv_quotes_what_a_spreadsheet_would_run(tmp_path, capsys):
    folder, index = tmp_path / "lib", tmp_path / "index"
    folder.mkdir()
    (folder / "=HYPERLINK(1).ply").write_bytes(coloured_box().export(file_type="ply"))
    (folder / "@sum.ply").write_bytes(coloured_box((20, 20, 200)).export(file_type="ply"))
    assert text3d(capsys, "index", folder, "--index", index, *TINY)[0] == 0
    status, out, _ = text3d(capsys, "search", index, PROMPT, "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert status == 0 and rows[0][:3] == ["rank", "name", "score"]
    assert {r[1] for r in rows[1:]} == {"'=HYPERLINK(1).ply", "'@sum.ply"}


def test_the_results_page_shows_each_result_in_the_viewer_in_a_browser(library, tmp_path, capsys):
    """Opened offline in Chromium: every result's mesh loads in the viewer, nothing is fetched
    from outside the page, a stranger's file name is text, and the page is not blank."""
    from tests.browser import launch, offline_page
    from text3d.web.viewer import viewer_js_path

    folder, _ = library
    lib, index = tmp_path / "lib", tmp_path / "index"
    shutil.copytree(folder / "glb", lib)
    hostile = lib / "<img src=x onerror=document.title='pwned'>.glb"
    shutil.copy(lib / "textured_png.glb", hostile)
    assert text3d(capsys, "index", lib, "--index", index, *TINY)[0] == 0
    status, out, _ = text3d(capsys, "search", index, PROMPT, "--html", tmp_path / "page", "--top", "5")
    assert status == 0 and "HTML page:" in out
    assert viewer_js_path() is not None, "run scripts/fetch_viewer.sh (make setup) first"
    with launch() as browser, offline_page(browser, width=1300, height=1200) as page:
        page.goto((tmp_path / "page" / "index.html").as_uri())
        page.wait_for_function("Array.from(document.querySelectorAll('model-viewer')).every(v => v.loaded)",
                               timeout=60_000)
        viewers = page.eval_on_selector_all("model-viewer", "vs => vs.length")
        cards = page.eval_on_selector_all("article.card h2", "hs => hs.map(h => h.textContent)")
        title = page.title()
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        blocked, errors = list(page.blocked), list(page.errors)
    assert viewers == 5 and len(cards) == 5 and "pwned" not in title
    assert blocked == [] and errors == []
    assert any("<img src=x onerror=" in card for card in cards)  # shown as text
    from PIL import Image
    import numpy as np

    shot = np.asarray(Image.open(tmp_path / "page.png").convert("L"), dtype=np.float64)
    assert shot.std() > 10  # not a blank page
