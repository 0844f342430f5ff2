"""``text3d generation-server``: one generator behind HTTP, with the miner's limits and honest deadlines.

Pinned: a ready server answers ``POST /v1/generate`` with the encoded mesh and the miner's
answer headers; before its generator has loaded it is alive (``/health``) but not ready
(``/ready`` and every request 503 with Retry-After); bodies are refused like the miner's
(413 from the declared length before the body is read, 413 at the cap for a chunked body,
415 compressed, 400 for bad JSON or an out-of-range seed, each one short sentence); a token,
when set, is needed on every route but ``/health`` (401 otherwise); a request that cannot
finish within its ``timeout_s`` is refused (503) without reaching the generator, and every
200 arrives within the time it was given; ``main`` refuses a non-loopback address without a
token, the miner's pool flags, a backend that does not import and a taken port, each with
exit 78 and one sentence; ``text3d generation-server`` runs a backend by import path,
becomes ready, answers, and stops on SIGTERM with exit 0.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from text3d.ops.net import free_port
from text3d.miner.pool import GENERATE_ROUTE, TOKEN_HEADER
from text3d.miner.generation_server import main
from text3d.protocol.errors import EXIT_CONFIG
from text3d.protocol.mesh_codec import decode_mesh
from text3d.protocol.wire import HEADER_FORMAT, HEADER_GENERATION_TIME, MAX_REQUEST_BYTES, TextTo3DRequest
from tests.generation_fixtures import TimedGenerator, primitive_faces, served_generation_server
from tests.loopback import free_socket
from text3d.common.paths import source_root
from text3d.demo.processes import wait_until

PRIMITIVES = "text3d.generation.primitives:PrimitiveGenerator"


def body(prompt="a red cube", seed=1, timeout_s=10.0) -> bytes:
    return TextTo3DRequest(prompt=prompt, seed=seed, timeout_s=timeout_s).to_body()


def post(port, content, headers=None, timeout=30.0):
    return httpx.post(f"http://127.0.0.1:{port}{GENERATE_ROUTE}", content=content, timeout=timeout,
                      headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip


def assert_refusal(response, status, says):
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert says in detail and len(detail) <= 160 and "\n" not in detail, detail


def raw_exchange(port, head: bytes, timeout_s=5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_a_ready_server_answers_the_encoded_mesh():
    with served_generation_server() as (served, service, _):
        response = post(served.port, body("a red cube"))
        assert response.status_code == 200, response.text
        assert response.headers[HEADER_FORMAT] == "draco" and float(response.headers[HEADER_GENERATION_TIME]) >= 0
        mesh = decode_mesh(response.content)
        assert len(mesh.faces) == primitive_faces("box", 1) and mesh.visual.vertex_colors[0, 0] > 150  # a red box
        ready = httpx.get(f"http://127.0.0.1:{served.port}/ready")
        assert ready.status_code == 200 and ready.json()["ready"] is True and ready.json()["answered"] == 1
        assert httpx.get(f"http://127.0.0.1:{served.port}/health").json()["ready"] is True


def test_before_the_generator_loads_it_is_alive_but_not_ready():
    with served_generation_server(ready=False) as (served, service, _):
        health = httpx.get(f"http://127.0.0.1:{served.port}/health")
        assert health.status_code == 200 and health.json() == {"ready": False, "detail": "loading the generator"}
        assert httpx.get(f"http://127.0.0.1:{served.port}/ready").status_code == 503
        refused = post(served.port, body())
        assert_refusal(refused, 503, "not ready: loading the generator")
        assert refused.headers["retry-after"] == "5"


def test_bodies_are_refused_like_the_miners():
    generator = TimedGenerator()
    with served_generation_server(generator) as (served, _, _):
        # a declared 5 MB body is refused before it is sent: the answer comes without a byte of it
        head = (f"POST {GENERATE_ROUTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {5 * 1024 * 1024}\r\n\r\n").encode()  # fmt: skip
        assert raw_exchange(served.port, head).startswith(b"HTTP/1.1 413")

        def chunks():
            for _ in range(8):
                yield b"x" * 1024

        assert_refusal(post(served.port, chunks()), 413, f"request body over {MAX_REQUEST_BYTES} bytes")
        assert_refusal(post(served.port, body(), {"Content-Encoding": "gzip"}), 415, "compressed")
        assert_refusal(post(served.port, b"{not json"), 400, "not UTF-8 JSON")
        bad_seed = json.dumps({"prompt": "a cube", "seed": 2**40, "timeout_s": 5.0}).encode()
        assert_refusal(post(served.port, bad_seed), 400, "request field seed")
        assert_refusal(post(served.port, json.dumps({"prompt": "", "seed": 1}).encode()), 400, "request field prompt")
    assert generator.batches == []  # nothing refused ever reached the generator


def test_a_token_guards_every_route_but_health():
    with served_generation_server(token="s3cret") as (served, _, _):
        assert_refusal(post(served.port, body()), 401, f"missing or wrong {TOKEN_HEADER}")
        assert_refusal(post(served.port, body(), {TOKEN_HEADER: "s3cre"}), 401, f"missing or wrong {TOKEN_HEADER}")
        assert httpx.get(f"http://127.0.0.1:{served.port}/ready").status_code == 401
        assert httpx.get(f"http://127.0.0.1:{served.port}/ready", headers={TOKEN_HEADER: "s3cret"}).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{served.port}/health").status_code == 200
        assert post(served.port, body(), {TOKEN_HEADER: "s3cret"}).status_code == 200


def test_what_cannot_finish_in_time_is_never_started():
    generator = TimedGenerator(cost_s=0.6)
    with served_generation_server(generator, max_batch_size=1, window_s=0.0) as (served, service, _):
        assert post(served.port, body("warm up", timeout_s=20.0)).status_code == 200  # times one batch: ~0.6 s
        refused = post(served.port, body("hurry", timeout_s=0.3))
        assert_refusal(refused, 503, "cannot finish this request before its deadline")
        assert "hurry" not in generator.prompts  # refused on the estimate, never started

        async def burst():
            async with httpx.AsyncClient(timeout=30.0) as client:
                async def one(i):
                    answer = await client.post(f"http://127.0.0.1:{served.port}{GENERATE_ROUTE}",
                                               content=body(f"burst {i}", seed=i, timeout_s=2.0))  # fmt: skip
                    return answer.status_code
                return await asyncio.gather(*(one(i) for i in range(8)))

        statuses = asyncio.run(burst())
    assert set(statuses) == {200, 503} and statuses.count(200) <= 4, statuses  # one at a time, 0.6 s each, 2 s budget
    started_bursts = [p for p in generator.prompts if p.startswith("burst")]
    assert len(started_bursts) == statuses.count(200)  # every started request was answered in time


@pytest.mark.parametrize("argv, says", [
    (["--server.ip", "0.0.0.0"], "--server.ip 0.0.0.0 is not a loopback address: set a shared token"),
    (["--generation.endpoints", "http://127.0.0.1:9"], "--generation.endpoints and --generation.ray_address are the "
                                                       "miner's"),
    (["--generation.backend", "generation.nowhere:X"], "--generation.backend 'generation.nowhere:X': no module"),
])  # fmt: skip
def test_main_refuses_bad_settings_with_exit_78_and_one_sentence(argv, says, capsys):
    assert main(["--server.port", str(free_port()), *argv]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"text3d generation-server: {says}") and "\n" not in err, err


def test_a_taken_port_names_the_servers_flag(capsys):
    taken = free_socket()
    try:
        port = taken.getsockname()[1]
        assert main(["--generation.backend", PRIMITIVES, "--server.port", str(port)]) == EXIT_CONFIG
        assert f"--server.port {port} is already in use" in capsys.readouterr().err
    finally:
        taken.close()


@pytest.mark.integration
def test_the_command_serves_a_backend_by_import_path_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen(
        [sys.executable, "-m", "text3d.cli.main", "generation-server", "--generation.backend", PRIMITIVES,
         "--server.port", str(port)],
        cwd=source_root(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        def ready() -> bool:
            assert child.poll() is None, child.stdout.read()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout_s=120, what="the generation server ready", poll_s=0.2)  # a hang guard
        answer = post(port, body("a blue donut"))
        assert answer.status_code == 200 and len(decode_mesh(answer.content).faces) > 100
    finally:
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=60)
    assert child.returncode == 0, out
    assert "generation server ready on http://127.0.0.1" in out and "PrimitiveGenerator" in out
