"""`text3d score` ranks a folder of meshes, lists a bad file as invalid instead of
crashing, and writes JSON and HTML reports; user errors are one sentence, no traceback."""

import json
from html.parser import HTMLParser

import pytest

from neurons.cli import main
from protocol.mesh_codec import MeshFormat, encode_mesh
from tests.meshes import coloured_sphere, red_cube

TINY = ["--models", "tiny", "--views", "2", "--resolution", "64"]


@pytest.fixture()
def folder(tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "cube.ply").write_bytes(encode_mesh(red_cube(), MeshFormat.PLY))
    (assets / "blob.drc").write_bytes(encode_mesh(coloured_sphere(2000), MeshFormat.DRACO))
    (assets / "broken.glb").write_bytes(b"glTF" + b"\x00" * 40)
    (assets / "notes.txt").write_text("not a mesh, not listed")
    return assets


def test_folder_with_a_bad_file_prints_a_table_and_writes_reports(folder, tmp_path, capsys):
    out_json, out_html = tmp_path / "out" / "scores.json", tmp_path / "html"
    rc = main(["score", str(folder), "--prompt", "a red cube", "--references", "a cube", "a red box",
               "--json", str(out_json), "--html", str(out_html), "--captioner", "none", *TINY])
    assert rc == 0
    out = capsys.readouterr().out
    for name in ("cube.ply", "blob.drc", "broken.glb", "invalid", "CLIP only"):
        assert name in out
    assert "notes.txt" not in out

    document = json.loads(out_json.read_text())
    assert document["prompt"] == "a red cube" and document["references"] == ["a cube", "a red box"]
    by_name = {a["name"]: a for a in document["assets"]}
    assert set(by_name) == {"cube.ply", "blob.drc", "broken.glb"}
    broken = by_name["broken.glb"]["report"]
    assert broken["score"] == 0.0 and "cannot decode broken.glb" in broken["invalid_reason"]
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
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.startswith("text3d score: ") and "Traceback" not in err


def test_empty_folder(tmp_path, capsys):
    assert main(["score", str(tmp_path), "--prompt", "x"]) == 1
    assert "holds no mesh files" in capsys.readouterr().err


class _FakeVisionServer:
    """An OpenAI-compatible /v1/chat/completions stub on 127.0.0.1 (the network edge only)."""

    def __init__(self, answer: str | None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server_self = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                server_self.requests += 1
                if answer is None:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def shared_mpnet(mpnet, monkeypatch):
    """The CLI loads mpnet through the factory; hand it the session's copy instead of 438 MB again."""
    from reward import factory
    from reward.text import TextEmbedder

    monkeypatch.setattr(factory.TextEmbedder, "from_pretrained",
                        classmethod(lambda cls, *a, **k: TextEmbedder(mpnet.model, model_id=mpnet.model_id)))


def test_captioner_url_scores_with_captions(folder, tmp_path, capsys, shared_mpnet):
    server = _FakeVisionServer("a small red cube")
    try:
        out_json = tmp_path / "scores.json"
        rc = main(["score", str(folder / "cube.ply"), "--prompt", "a red cube", "--captioner", server.url,
                   "--json", str(out_json), *TINY])
    finally:
        server.close()
    assert rc == 0 and server.requests == 2  # one caption per view
    report = json.loads(out_json.read_text())["assets"][0]["report"]
    assert report["captioner"].startswith("openai:") and report["components"]["caption"] > 0.5
    assert [v["caption"] for v in report["views"]] == ["a small red cube"] * 2


def test_captioner_failure_is_a_clear_error_not_a_zero(folder, capsys, shared_mpnet):
    server = _FakeVisionServer(None)  # rejects every request
    try:
        rc = main(["score", str(folder), "--prompt", "a red cube", "--captioner", server.url, *TINY])
    finally:
        server.close()
    captured = capsys.readouterr()
    assert rc == 1 and "captioning server" in captured.err and "Traceback" not in captured.err
    assert "cube.ply" not in captured.out  # no table of zeros


def test_missing_real_weights_say_how_to_get_them(folder, capsys, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))  # offline, nothing cached
    assert main(["score", str(folder / "cube.ply"), "--prompt", "a red cube", "--models", "real"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("text3d score: CLIP weights ViT-L-14") and "--models tiny" in err and "Traceback" not in err
