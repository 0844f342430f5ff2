"""A captioner that fails is the validator's fault: every failure of the captioning server
ends, within a bounded time, in either a retry that succeeds or ``CaptionerUnavailable`` --
never an empty caption, never a hang.

The server here is a real HTTP server on 127.0.0.1 whose answers each test scripts; the
client under test is the production ``OpenAICaptioner`` with small timeouts and backoffs.
"""

import asyncio
import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest
from PIL import Image

from text3d.reward.caption import Captioner, CaptionerConfig, OpenAICaptioner
from text3d.reward.errors import CaptionerUnavailable, ValidatorFault

COLOURS = ["red", "green", "blue", "white", "black", "yellow", "cyan", "magenta"]


def view(colour: str, size_px: int = 8) -> Image.Image:
    return Image.new("RGB", (size_px, size_px), colour)


def colour_of(body: dict) -> str:
    """Decode the PNG the client sent and name its colour (the fake 'model' output)."""
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    rgb = image.getpixel((0, 0))
    for name in COLOURS:
        if Image.new("RGB", (1, 1), name).getpixel((0, 0)) == rgb:
            return name
    return str(rgb)


def ok(body: dict) -> tuple[int, bytes]:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f" a {colour_of(body)} thing\n"}}]}
    return 200, json.dumps(answer).encode()


class FakeServer:
    """A scriptable OpenAI-style server. ``script(n, path, body)`` returns (status, bytes),
    or the strings "drop" (close without answering) or ("sleep", seconds, then)."""

    def __init__(self, script: Callable[[int, str, dict | None], object]) -> None:
        self.script = script
        self.requests: list[tuple[str, dict | None, dict]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self, body: dict | None) -> None:
                with fake.lock:
                    n = len(fake.requests)
                    fake.requests.append((self.path, body, dict(self.headers)))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    action = fake.script(n, self.path, body)
                    while isinstance(action, tuple) and action[0] == "sleep":
                        time.sleep(action[1])
                        action = action[2]
                    if action == "drop":
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    status, payload = action
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def do_GET(self) -> None:
                self._handle(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                self._handle(json.loads(self.rfile.read(length)))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def posts(self) -> list[dict]:
        return [body for path, body, _ in self.requests if path == "/v1/chat/completions"]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers: list[FakeServer] = []

    def start(script: Callable[[int, str, dict | None], object]) -> FakeServer:
        servers.append(FakeServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def captioner(url: str, **overrides: object) -> OpenAICaptioner:
    settings = dict(base_url=url, timeout_s=1.0, connect_timeout_s=0.5, retries=2, backoff_s=0.02, max_backoff_s=0.1)
    settings.update(overrides)
    return OpenAICaptioner(CaptionerConfig(**settings))


def closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# -- the happy path and the request we send --------------------------------------------


def test_one_caption_per_view_in_order_and_the_request_format(serve):
    server = serve(lambda n, path, body: ok(body))
    with captioner(server.url, seed=7, max_tokens=33) as client:
        assert isinstance(client, Captioner)
        captions = client.caption([view(c) for c in COLOURS[:5]], prompt="a red chair")
    assert captions == [f"a {c} thing" for c in COLOURS[:5]]  # stripped, in order
    body = server.posts()[0]
    content = body["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url", "text"]
    assert content[1]["text"] == "Describe this 3D model"  # the prompt is NOT sent by default
    assert body["temperature"] == 0.0 and body["seed"] == 7 and body["max_tokens"] == 33
    assert body["stream"] is False


def test_prompt_is_sent_only_when_asked_and_api_key_as_bearer(serve):
    server = serve(lambda n, path, body: ok(body))
    with captioner(server.url, include_prompt=True, instruction="Say what this is", api_key="s3cret") as client:
        client.caption([view("red")], prompt="a red chair")
    path, body, headers = server.requests[0]
    text = body["messages"][0]["content"][1]["text"]
    assert text.startswith("Say what this is") and "a red chair" in text
    assert headers["Authorization"] == "Bearer s3cret"


def test_caption_many_keeps_assets_apart_and_respects_the_concurrency_limit(serve):
    server = serve(lambda n, path, body: ("sleep", 0.05, ok(body)))
    assets = [[view(c) for c in COLOURS[i : i + 3]] for i in range(0, 6, 3)] + [[view("black")] * 4]
    with captioner(server.url, concurrency=3) as client:
        result = client.caption_many(assets, ["p1", "p2", "p3"])
    assert result == [[f"a {c} thing" for c in COLOURS[0:3]], [f"a {c} thing" for c in COLOURS[3:6]], ["a black thing"] * 4]
    assert server.max_in_flight == 3  # 10 views, never more than 3 at once


def test_many_threads_share_one_client_and_one_limit(serve):
    server = serve(lambda n, path, body: ("sleep", 0.02, ok(body)))
    results: dict[int, list[str]] = {}
    with captioner(server.url, concurrency=2) as client:

        def work(i: int) -> None:
            results[i] = client.caption([view(COLOURS[i]), view(COLOURS[-1 - i])], prompt=str(i))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    assert results == {i: [f"a {COLOURS[i]} thing", f"a {COLOURS[-1 - i]} thing"] for i in range(4)}
    assert server.max_in_flight <= 2


def test_acaption_works_from_a_foreign_event_loop(serve):
    server = serve(lambda n, path, body: ok(body))
    with captioner(server.url) as client:
        captions = asyncio.run(client.acaption([view("green"), view("blue")], "x"))
        many = asyncio.run(client.acaption_many([[view("red")], [view("white")]], ["a", "b"]))
    assert captions == ["a green thing", "a blue thing"]
    assert many == [["a red thing"], ["a white thing"]]


# -- readiness -------------------------------------------------------------------------


def test_readiness_waits_through_503_while_loading(serve):
    server = serve(lambda n, path, body: (503, b'{"error":"Loading model"}') if n < 3 else (200, b'{"status":"ok"}'))
    with captioner(server.url) as client:
        assert client.is_ready() is False
        client.wait_until_ready(timeout_s=5, poll_s=0.01)
    assert [path for path, _, _ in server.requests] == ["/health"] * 4


def test_readiness_falls_back_to_v1_models_without_health(serve):
    server = serve(lambda n, path, body: (404, b"") if path == "/health" else (200, b'{"data":[]}'))
    with captioner(server.url) as client:
        assert client.is_ready() is True
    assert [path for path, _, _ in server.requests] == ["/health", "/v1/models"]


def test_wait_until_ready_on_a_dead_server_raises_quickly_with_advice():
    with captioner(closed_port_url()) as client:
        start = time.monotonic()
        with pytest.raises(CaptionerUnavailable, match="text3d llava"):
            client.wait_until_ready(timeout_s=0.3, poll_s=0.05)
        assert time.monotonic() - start < 3


# -- faults ----------------------------------------------------------------------------


def test_server_down_at_start_raises_captioner_unavailable_fast():
    url = closed_port_url()
    with captioner(url) as client:
        start = time.monotonic()
        with pytest.raises(CaptionerUnavailable) as info:
            client.caption([view("red"), view("blue")], "p")
        elapsed = time.monotonic() - start
    assert isinstance(info.value, ValidatorFault)  # our fault: no miner's score may change
    assert url in str(info.value) and "3 attempts" in str(info.value)
    assert elapsed < 2


def test_503_while_loading_then_ok_is_retried_to_success(serve):
    server = serve(lambda n, path, body: (503, b'{"error":"loading"}') if n < 2 else ok(body))
    with captioner(server.url, concurrency=1) as client:
        assert client.caption([view("cyan")], "p") == ["a cyan thing"]
    assert len(server.posts()) == 3


def test_server_dying_mid_batch_fails_the_whole_batch(serve):
    state = {"server": None}

    def script(n, path, body):
        if n == 2:  # third request: the server process "dies"
            threading.Thread(target=state["server"].stop, daemon=True).start()
            return "drop"
        return ("sleep", 0.05, ok(body)) if n < 2 else "drop"

    server = serve(script)
    state["server"] = server
    with captioner(server.url, concurrency=2) as client:
        start = time.monotonic()
        with pytest.raises(CaptionerUnavailable):
            client.caption([view(c) for c in COLOURS], "p")  # never a partial list
        assert time.monotonic() - start < 3


def test_dropped_connection_once_is_retried_to_success(serve):
    server = serve(lambda n, path, body: "drop" if n == 0 else ok(body))
    with captioner(server.url, concurrency=1) as client:
        assert client.caption([view("yellow")], "p") == ["a yellow thing"]


def test_slow_responses_past_the_timeout_raise_within_a_bound(serve):
    server = serve(lambda n, path, body: ("sleep", 1.5, ok(body)))
    with captioner(server.url, timeout_s=0.2, retries=1) as client:
        start = time.monotonic()
        with pytest.raises(CaptionerUnavailable, match="no answer within 0.2 s"):
            client.caption([view("red")], "p")
        assert time.monotonic() - start < 1.2  # 2 attempts x 0.2 s + backoff, not 1.5 s


def test_one_slow_answer_then_a_fast_one_succeeds(serve):
    server = serve(lambda n, path, body: ("sleep", 0.6, ok(body)) if n == 0 else ok(body))
    with captioner(server.url, timeout_s=0.2, concurrency=1) as client:
        assert client.caption([view("magenta")], "p") == ["a magenta thing"]


def test_400_for_a_bad_image_is_not_retried(serve):
    server = serve(lambda n, path, body: (400, b'{"error":{"message":"failed to decode image"}}'))
    with captioner(server.url, retries=5, backoff_s=0.5) as client:
        start = time.monotonic()
        with pytest.raises(CaptionerUnavailable, match="HTTP 400.*failed to decode image"):
            client.caption([view("red")], "p")
        assert time.monotonic() - start < 0.5  # no backoff: retrying cannot help
    assert len(server.posts()) == 1


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b'{"object": "chat.completion"}', b'{"choices": []}', b'{"choices":[{"message":{"content":"  "}}]}'],
    ids=["malformed-json", "no-choices", "empty-choices", "empty-caption"],
)
def test_unusable_answers_are_retried_then_raise(serve, payload):
    server = serve(lambda n, path, body: (200, payload))
    with captioner(server.url, retries=2) as client:
        start = time.monotonic()
        with pytest.raises(CaptionerUnavailable):
            client.caption([view("red")], "p")
        assert time.monotonic() - start < 1
    assert len(server.posts()) == 3


def test_malformed_json_once_then_ok_succeeds(serve):
    server = serve(lambda n, path, body: (200, b"<html>proxy error") if n == 0 else ok(body))
    with captioner(server.url) as client:
        assert client.caption([view("white")], "p") == ["a white thing"]


# -- lifecycle and config --------------------------------------------------------------


def test_close_is_idempotent_and_a_closed_client_refuses_work(serve):
    server = serve(lambda n, path, body: ok(body))
    client = captioner(server.url)
    client.caption([view("red")], "p")
    client.close()
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.caption([view("red")], "p")


def test_config_validates_and_normalises():
    assert CaptionerConfig(base_url="http://h:1/v1/").base_url == "http://h:1"
    with pytest.raises(ValueError):
        CaptionerConfig(base_url="h:1")
    with pytest.raises(ValueError):
        CaptionerConfig(concurrency=0)
    with pytest.raises(ValueError):
        captioner("http://127.0.0.1:1").caption_many([[view("red")]], [])
