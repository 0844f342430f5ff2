"""`text3d score` ranks a folder of meshes, lists a bad file as invalid instead of
crashing, lists files that are not meshes instead of skipping them silently, and writes
JSON and HTML reports; user errors are one sentence, no traceback."""

import json
from html.parser import HTMLParser

import pytest

from tests.loopback import chat_completion
from tests.meshes import coloured_sphere, red_cube
from text3d.cli.main import main
from text3d.reward.assets.loader import MESH_SUFFIXES
from text3d.protocol.mesh_codec import MeshFormat, encode_mesh

TINY = ["--models", "tiny", "--views", "2", "--resolution", "64"]


@pytest.fixture()
def folder(tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "cube.ply").write_bytes(encode_mesh(red_cube(), MeshFormat.PLY))
    (assets / "blob.drc").write_bytes(encode_mesh(coloured_sphere(2000), MeshFormat.DRACO))
    (assets / "broken.glb").write_bytes(b"glTF" + b"\x00" * 40)
    (assets / "notes.txt").write_text("not a mesh: listed as not scored")
    return assets


def test_folder_with_a_bad_file_prints_a_table_and_writes_reports(folder, tmp_path, capsys):
    out_json, out_html = tmp_path / "out" / "scores.json", tmp_path / "html"
    rc = main(["score", str(folder), "--prompt", "a red cube", "--references", "a cube", "a red box",
               "--json", str(out_json), "--html", str(out_html), "--captioner", "none", *TINY])
    assert rc == 0
    out = capsys.readouterr().out
    for name in ("cube.ply", "blob.drc", "broken.glb", "invalid", "CLIP only"):
        assert name in out
    assert "notes.txt: not a mesh file (.txt" in out

    document = json.loads(out_json.read_text())
    assert document["prompt"] == "a red cube" and document["references"] == ["a cube", "a red box"]
    by_name = {a["name"]: a for a in document["assets"]}
    assert set(by_name) == {"cube.ply", "blob.drc", "broken.glb"}
    broken = by_name["broken.glb"]["report"]
    assert broken["score"] == 0.0 and "cannot load broken.glb" in broken["invalid_reason"]
    assert document["complete"] is True
    assert document["not_scored"] == [{"name": "notes.txt", "reason": "not a mesh file (.txt; scored: "
                                       f"{' '.join(MESH_SUFFIXES)}, zip and tar archives)"}]
    assert by_name["broken.glb"]["rank"] == 3  # invalid assets rank last among equal scores
    assert len(by_name["cube.ply"]["report"]["views"]) == 2

    srcs: list[str] = []

    class Images(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                srcs.append(dict(attrs)["src"])

    Images().feed((out_html / "index.html").read_text())
    assert len(srcs) == 4 and all((out_html / s).is_file() for s in srcs)


def test_single_file(folder, capsys):
    assert main(["score", str(folder / "cube.ply"), "--prompt", "a red cube", *TINY]) == 0
    assert "cube.ply" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["score", "/nonexistent/text3d", "--prompt", "x"], "does not exist"),
        (["score", "{folder}/notes.txt", "--prompt", "x", "--views", "0"], "invalid option n_views"),
        (["score", "{folder}", "--prompt", "x", "--captioner", "ftp://host", *TINY], "must be an http(s) URL"),
    ],
)
def test_user_errors_are_one_sentence(folder, capsys, argv, message):
    argv = [a.format(folder=folder) for a in argv]
    assert main(argv) == 78  # a setting to change (EXIT_CONFIG), not a run-time failure
    err = capsys.readouterr().err
    assert message in err and err.startswith("text3d score: ") and "Traceback" not in err


def test_empty_folder(tmp_path, capsys):
    assert main(["score", str(tmp_path), "--prompt", "x"]) == 78
    assert "holds no mesh files" in capsys.readouterr().err


@pytest.fixture()
def shared_mpnet(mpnet, monkeypatch):
    """The CLI loads mpnet through the factory; hand it the session's copy instead of 438 MB again."""
    from text3d.reward import factory
    from text3d.reward.text import TextEmbedder

    monkeypatch.setattr(factory.TextEmbedder, "from_pretrained",
                        classmethod(lambda cls, *a, **k: TextEmbedder(mpnet.model, model_id=mpnet.model_id)))


def test_captioner_url_scores_with_captions(folder, tmp_path, capsys, shared_mpnet, scripted_http):
    server = scripted_http(lambda n, path, body: chat_completion("a small red cube"))
    out_json = tmp_path / "scores.json"
    rc = main(["score", str(folder / "cube.ply"), "--prompt", "a red cube", "--captioner", server.url,
               "--json", str(out_json), *TINY])
    assert rc == 0 and len(server.posts()) == 2  # one caption per view
    report = json.loads(out_json.read_text())["assets"][0]["report"]
    assert report["captioner"].startswith("openai:") and report["components"]["caption"] > 0.5
    assert [v["caption"] for v in report["views"]] == ["a small red cube"] * 2


def test_captioner_failure_is_a_clear_error_not_a_zero(folder, capsys, shared_mpnet, scripted_http):
    server = scripted_http(lambda n, path, body: (401, b""))  # rejects every request
    rc = main(["score", str(folder), "--prompt", "a red cube", "--captioner", server.url, *TINY])
    captured = capsys.readouterr()
    assert rc == 1 and "captioning server" in captured.err and "Traceback" not in captured.err
    assert "cube.ply" not in captured.out  # no table of zeros


def test_missing_real_weights_say_how_to_get_them(folder, capsys, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))  # offline, nothing cached
    assert main(["score", str(folder / "cube.ply"), "--prompt", "a red cube", "--models", "real"]) == 78
    err = capsys.readouterr().err
    # our one sentence is the last line (open_clip may log its own download failure first)
    last = err.strip().splitlines()[-1]
    assert last.startswith("text3d score: CLIP weights ViT-L-14") and "--models tiny" in last and "Traceback" not in err


# -- hostile names, planted links, interruption -------------------------------------------


def test_markup_and_control_characters_are_printed_escaped(tmp_path, capsys):
    """A prompt or file name with rich markup (``[/]`` crashed the table printer) or terminal
    escapes (``\\x1b]0;...\\x07`` retitles a terminal) is printed as visible text."""
    assets = tmp_path / "assets"
    evil = assets / "evil\x1b]0;pwned\x07[bold]x["  # + "/].ply": the file's name reads "...[bold]x[/].ply"
    evil.mkdir(parents=True)
    (evil / "].ply").write_bytes(encode_mesh(red_cube(), MeshFormat.PLY))
    (assets / "bad\x1b[2J.glb").write_bytes(b"glTF" + b"\0" * 40)
    rc = main(["score", str(assets), "--prompt", "a cube [/] [bold red]x[/bold red] \x1b[31m", *TINY])
    captured = capsys.readouterr()
    assert rc == 0
    assert "\x1b" not in captured.out and "\x07" not in captured.out and "\x1b" not in captured.err
    assert "a cube [/] [bold red]x[/bold red] \\x1b[31m" in captured.out  # the prompt, in the title
    assert "\\x1b]0;pwned" in captured.out and "bad\\x1b[2J.glb" in captured.out  # names (cells may wrap)


def test_the_progress_bar_is_quiet_when_stderr_is_not_a_terminal(folder, capsys):
    assert main(["score", str(folder), "--prompt", "a red cube", *TINY]) == 0
    assert "asset/s" not in capsys.readouterr().err


def test_planted_links_in_the_output_folder_are_replaced_not_followed(folder, tmp_path):
    victim, victim_dir = tmp_path / "victim.txt", tmp_path / "victim_dir"
    victim.write_text("keep me")
    victim_dir.mkdir()
    html_dir = tmp_path / "html"
    html_dir.mkdir()
    (html_dir / "index.html").symlink_to(victim)
    (html_dir / "000_blob.drc").symlink_to(victim_dir)  # where the first asset's views go
    json_path = tmp_path / "scores.json"
    json_path.symlink_to(victim)
    assert main(["score", str(folder), "--prompt", "a red cube", "--html", str(html_dir), "--json", str(json_path),
                 *TINY]) == 0
    assert victim.read_text() == "keep me" and list(victim_dir.iterdir()) == []
    for path in (html_dir / "index.html", json_path, html_dir / "000_blob.drc"):
        assert not path.is_symlink()
    assert (html_dir / "000_blob.drc" / "view_00.png").is_file()
    assert json.loads(json_path.read_text())["complete"] is True


def test_an_interrupted_run_keeps_what_it_finished(folder, tmp_path, monkeypatch, capsys):
    from text3d.reward.assets import loader as assets

    real_load, calls = assets.load_asset, []

    def interrupted_on_the_third(entry, *args, **kwargs):  # Ctrl-C while the third file loads
        calls.append(entry.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_load(entry, *args, **kwargs)

    monkeypatch.setattr(assets, "load_asset", interrupted_on_the_third)
    out_json, out_html = tmp_path / "scores.json", tmp_path / "html"
    rc = main(["score", str(folder), "--prompt", "a red cube", "--batch-size", "1", "--json", str(out_json),
               "--html", str(out_html), *TINY])
    assert rc == 130 and "interrupted after 2 of 3 assets" in capsys.readouterr().err
    document = json.loads(out_json.read_text())
    assert document["complete"] is False and [a["name"] for a in document["assets"]] == calls[:2]
    page = (out_html / "index.html").read_text()
    assert all(name in page for name in calls[:2]) and calls[2] not in page
