"""Shared pieces of the asset-library tests: the tiny model flags and a CLI runner.

``TINY`` are the flags every library test indexes and scores with (tiny random CLIP, two
views at 64 px: seconds, not minutes, on a shared 2-core machine); ``text3d(*argv)`` runs
the real command line in this process and returns (exit status, stdout, stderr).
"""

import json
from pathlib import Path

from text3d.cli.main import main

__all__ = ["TINY", "text3d", "score_json", "index_rows", "ColourCaptionServer"]

TINY = ["--models", "tiny", "--views", "2", "--resolution", "64"]


def text3d(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``text3d ARGV`` (the real CLI) and return (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def score_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def index_rows(index: Path, columns=("name", "status", "reason")) -> dict[str, dict]:
    """Every row of an index by name (the columns asked for)."""
    from text3d.library.store import AssetStore

    table = AssetStore.open(index).scan(list(columns)).drop_columns(["_offset"])
    return {row["name"]: row for row in table.to_pylist()}


class ColourCaptionServer:
    """An OpenAI-compatible ``/v1/chat/completions`` stub on 127.0.0.1 (the network edge only)
    whose caption depends on the picture: "a mostly red object" by the view's mean colour, so
    assets get different captions and caption scores differ between them."""

    def __init__(self) -> None:
        import base64
        import io
        import json as _json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import numpy as np
        from PIL import Image

        server_self = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = _json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server_self.requests += 1
                url = body["messages"][0]["content"][0]["image_url"]["url"]
                pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"),
                                    dtype=np.float64)
                mean = pixels.reshape(-1, 3).mean(axis=0)
                name = ("red", "green", "blue")[int(np.argmax(mean))] if np.ptp(mean) > 8 else "grey"
                answer = f"a mostly {name} object, brightness {int(mean.mean()) // 32}"
                data = _json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
