"""A captioner that fails is the validator's fault: every failure of the captioning server
ends, within a bounded number of attempts, in either a retry that succeeds or
``CaptionerUnavailable`` -- never an empty caption, never a hang.

The server here is a real HTTP server on 127.0.0.1 whose answers each test scripts
(``tests.loopback.ScriptedHTTP``); the client under test is the production ``OpenAICaptioner``
with small timeouts and backoffs. The tests count the client's attempts, not the seconds.
"""

import asyncio
import base64
import io
import threading

import pytest
from PIL import Image

from tests.loopback import chat_completion, closed_port_url
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


def ok(body: dict) -> tuple[int, dict]:
    return chat_completion(f" a {colour_of(body)} thing\n")


def captioner(url: str, **overrides: object) -> OpenAICaptioner:
    settings = dict(base_url=url, timeout_s=1.0, connect_timeout_s=0.5, retries=2, backoff_s=0.02, max_backoff_s=0.1)
    settings.update(overrides)
    return OpenAICaptioner(CaptionerConfig(**settings))


# -- the happy path and the request we send --------------------------------------------


def test_one_caption_per_view_in_order_and_the_request_format(scripted_http):
    server = scripted_http(lambda n, path, body: ok(body))
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


def test_prompt_is_sent_only_when_asked_and_api_key_as_bearer(scripted_http):
    server = scripted_http(lambda n, path, body: ok(body))
    with captioner(server.url, include_prompt=True, instruction="Say what this is", api_key="s3cret") as client:
        client.caption([view("red")], prompt="a red chair")
    _, path, body, headers = server.requests[0]
    text = body["messages"][0]["content"][1]["text"]
    assert text.startswith("Say what this is") and "a red chair" in text
    assert headers["Authorization"] == "Bearer s3cret"


def test_caption_many_keeps_assets_apart_and_respects_the_concurrency_limit(scripted_http):
    server = scripted_http(lambda n, path, body: ("sleep", 0.05, ok(body)))
    assets = [[view(c) for c in COLOURS[i : i + 3]] for i in range(0, 6, 3)] + [[view("black")] * 4]
    with captioner(server.url, concurrency=3) as client:
        result = client.caption_many(assets, ["p1", "p2", "p3"])
    assert result == [[f"a {c} thing" for c in COLOURS[0:3]], [f"a {c} thing" for c in COLOURS[3:6]], ["a black thing"] * 4]
    assert server.max_in_flight == 3  # 10 views, never more than 3 at once


def test_many_threads_share_one_client_and_one_limit(scripted_http):
    server = scripted_http(lambda n, path, body: ("sleep", 0.02, ok(body)))
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


def test_acaption_works_from_a_foreign_event_loop(scripted_http):
    server = scripted_http(lambda n, path, body: ok(body))
    with captioner(server.url) as client:
        captions = asyncio.run(client.acaption([view("green"), view("blue")], "x"))
        many = asyncio.run(client.acaption_many([[view("red")], [view("white")]], ["a", "b"]))
    assert captions == ["a green thing", "a blue thing"]
    assert many == [["a red thing"], ["a white thing"]]


# -- readiness -------------------------------------------------------------------------


def test_readiness_waits_through_503_while_loading(scripted_http):
    server = scripted_http(lambda n, path, body: (503, b'{"error":"Loading model"}') if n < 3 else (200, b'{"status":"ok"}'))
    with captioner(server.url) as client:
        assert client.is_ready() is False
        client.wait_until_ready(timeout_s=5, poll_s=0.01)
    assert server.paths() == ["/health"] * 4


def test_readiness_falls_back_to_v1_models_without_health(scripted_http):
    server = scripted_http(lambda n, path, body: (404, b"") if path == "/health" else (200, b'{"data":[]}'))
    with captioner(server.url) as client:
        assert client.is_ready() is True
    assert server.paths() == ["/health", "/v1/models"]


def test_wait_until_ready_on_a_dead_server_raises_with_advice():
    with captioner(closed_port_url()) as client:
        with pytest.raises(CaptionerUnavailable, match="not ready after 0 s.*text3d llava"):
            client.wait_until_ready(timeout_s=0.3, poll_s=0.05)


def test_wait_until_ready_gives_up_on_a_server_that_never_finishes_loading(scripted_http):
    server = scripted_http(lambda n, path, body: (503, b'{"error":"Loading model"}'))
    with captioner(server.url) as client:
        with pytest.raises(CaptionerUnavailable, match="not ready"):
            client.wait_until_ready(timeout_s=0.3, poll_s=0.05)
    probes = server.paths()
    assert set(probes) == {"/health"} and 1 <= len(probes) <= 7  # one at once, then at most one per 0.05 s in 0.3 s


# -- faults ----------------------------------------------------------------------------


def test_server_down_at_start_raises_captioner_unavailable_fast():
    url = closed_port_url()
    with captioner(url) as client:
        with pytest.raises(CaptionerUnavailable) as info:
            client.caption([view("red"), view("blue")], "p")
    assert isinstance(info.value, ValidatorFault)  # our fault: no miner's score may change
    assert url in str(info.value) and "3 attempts" in str(info.value) and "ConnectError" in str(info.value)


def test_503_while_loading_then_ok_is_retried_to_success(scripted_http):
    server = scripted_http(lambda n, path, body: (503, b'{"error":"loading"}') if n < 2 else ok(body))
    with captioner(server.url, concurrency=1) as client:
        assert client.caption([view("cyan")], "p") == ["a cyan thing"]
    assert len(server.posts()) == 3


def test_server_dying_mid_batch_fails_the_whole_batch(scripted_http):
    state = {"server": None}

    def script(n, path, body):
        if n == 2:  # third request: the server process "dies"
            threading.Thread(target=state["server"].stop, daemon=True).start()
            return "drop"
        return ("sleep", 0.05, ok(body)) if n < 2 else "drop"

    server = scripted_http(script)
    state["server"] = server
    with captioner(server.url, concurrency=2) as client:
        with pytest.raises(CaptionerUnavailable):
            client.caption([view(c) for c in COLOURS], "p")  # never a partial list
    assert len(server.posts()) <= len(COLOURS) * 3  # each view tried at most retries + 1 times


def test_dropped_connection_once_is_retried_to_success(scripted_http):
    server = scripted_http(lambda n, path, body: "drop" if n == 0 else ok(body))
    with captioner(server.url, concurrency=1) as client:
        assert client.caption([view("yellow")], "p") == ["a yellow thing"]


def test_slow_responses_past_the_timeout_raise_within_a_bound(scripted_http):
    server = scripted_http(lambda n, path, body: ("sleep", 1.5, ok(body)))
    with captioner(server.url, timeout_s=0.2, retries=1) as client:
        with pytest.raises(CaptionerUnavailable, match="failed 2 attempts .last: no answer within 0.2 s"):
            client.caption([view("red")], "p")
    assert len(server.posts()) == 2  # the client's own timeout ended each attempt, not the late answer


def test_one_slow_answer_then_a_fast_one_succeeds(scripted_http):
    server = scripted_http(lambda n, path, body: ("sleep", 0.6, ok(body)) if n == 0 else ok(body))
    with captioner(server.url, timeout_s=0.2, concurrency=1) as client:
        assert client.caption([view("magenta")], "p") == ["a magenta thing"]


def test_400_for_a_bad_image_is_not_retried(scripted_http):
    server = scripted_http(lambda n, path, body: (400, b'{"error":{"message":"failed to decode image"}}'))
    with captioner(server.url, retries=5, backoff_s=0.5) as client:
        with pytest.raises(CaptionerUnavailable, match="HTTP 400.*failed to decode image"):
            client.caption([view("red")], "p")
    assert len(server.posts()) == 1  # no retry, so no backoff: retrying cannot help


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b'{"object": "chat.completion"}', b'{"choices": []}', b'{"choices":[{"message":{"content":"  "}}]}'],
    ids=["malformed-json", "no-choices", "empty-choices", "empty-caption"],
)
def test_unusable_answers_are_retried_then_raise(scripted_http, payload):
    server = scripted_http(lambda n, path, body: (200, payload))
    with captioner(server.url, retries=2) as client:
        with pytest.raises(CaptionerUnavailable, match="failed 3 attempts"):
            client.caption([view("red")], "p")
    assert len(server.posts()) == 3


def test_malformed_json_once_then_ok_succeeds(scripted_http):
    server = scripted_http(lambda n, path, body: (200, b"<html>proxy error") if n == 0 else ok(body))
    with captioner(server.url) as client:
        assert client.caption([view("white")], "p") == ["a white thing"]


# -- lifecycle and config --------------------------------------------------------------


def test_close_is_idempotent_and_a_closed_client_refuses_work(scripted_http):
    server = scripted_http(lambda n, path, body: ok(body))
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
