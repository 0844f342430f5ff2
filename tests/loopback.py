"""Real components on 127.0.0.1 for transport tests: wallets, a miner app under uvicorn, scripted servers.

The one home of the suite's loopback HTTP servers; a test file does not write its own.

- ``make_wallet(root, name)``: a real bittensor 11 wallet (password-less keyfiles on disk).
- ``hand_metagraph([...])``: the project's ``Metagraph`` from (hotkey, stake, permit) rows.
- ``ServedApp``: any ASGI app served by a real uvicorn server on a free loopback port, in a
  background thread with its own event loop (``with ServedApp(app) as served: served.port``).
- ``ScriptedHTTP``: a plain HTTP/1.1 server whose every answer the test scripts (an OpenAI-style
  captioner or prompt writer, a peer's Date header); it records each request. The conftest
  fixture ``scripted_http`` starts them and stops them after the test.
- ``chat_completion(text)``: the ``(status, body)`` an OpenAI-compatible chat server answers.
- ``closed_port_url()``: ``http://127.0.0.1:PORT`` where nothing listens.
- ``tiny_mesh_payload()``: a small coloured mesh encoded as Draco, what an honest miner sends.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np
import trimesh

from text3d.chain.base import Metagraph, NeuronInfo
from text3d.ops.net import free_port
from text3d.protocol.mesh_codec import MeshFormat, encode_mesh

__all__ = ["make_wallet", "hand_metagraph", "ServedApp", "ScriptedHTTP", "chat_completion", "closed_port_url",
           "tiny_mesh", "tiny_mesh_payload", "free_socket"]


def make_wallet(root: str | Path, name: str) -> Any:
    """A wallet ``name``/default under ``root``, created once without passwords."""
    import bittensor as bt

    wallet = bt.Wallet(name=name, hotkey="default", path=str(root))
    if not Path(root, name, "hotkeys", "default").exists():
        wallet.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
        wallet.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
    return wallet


def hand_metagraph(rows: Sequence[tuple[str, float, bool]], *, ports: Sequence[int] | None = None) -> Metagraph:
    """``rows``: (hotkey, stake, validator_permit) by uid; axons at 127.0.0.1:ports[uid] when given."""
    neurons = tuple(
        NeuronInfo(
            uid=uid,
            hotkey=hotkey,
            coldkey=f"cold-{uid}",
            stake=float(stake),
            validator_permit=bool(permit),
            axon_ip="127.0.0.1" if ports else "0.0.0.0",
            axon_port=int(ports[uid]) if ports else 0,
            last_update=0,
        )
        for uid, (hotkey, stake, permit) in enumerate(rows)
    )
    return Metagraph(netuid=1, block=1, neurons=neurons)


def free_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (a free port by default): hand it to a server, or hold a port taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


class ServedApp:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a background thread; stops on exit."""

    def __init__(self, app: Any, *, limit_concurrency: int | None = None) -> None:
        self.app = app
        self.limit_concurrency = limit_concurrency
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread = threading.Thread(target=self._run, name="served-app", daemon=True)

    def _run(self) -> None:
        import uvicorn

        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off",
                                limit_concurrency=self.limit_concurrency, http="h11")  # as neurons.miner serves
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._server.serve(sockets=[self.sock]))

    def __enter__(self) -> "ServedApp":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not (self._server is not None and self._server.started):
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()


# An answer: ``(status, body)`` (a dict or list body is sent as JSON, str as UTF-8), "drop" (close the
# connection without a word), or ``("sleep", seconds, answer)`` (answer late).
Answer = Union[tuple, str]
Script = Callable[[int, str, Any], Answer]


def chat_completion(text: str, status: int = 200, **extra: Any) -> tuple[int, dict]:
    """What an OpenAI-compatible ``/v1/chat/completions`` answers with ``text`` as the reply."""
    return status, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}], **extra}


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


class ScriptedHTTP:
    """An HTTP server on 127.0.0.1 answering as ``script(n, path, body)`` says (the network edge only).

    ``n`` counts requests from 0; ``body`` is the decoded JSON of a POST (raw bytes when it is
    not JSON) and None for a GET. Every request is kept in ``requests`` as ``(method, path,
    body, headers)``; ``in_flight`` and ``max_in_flight`` count concurrent ones. Answers carry
    the standard ``Date`` header. Use as a context manager or call ``stop()``.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[tuple[str, str, Any, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="scripted-http", daemon=True)
        self._thread.start()
        self._stopped = False

    def posts(self, path: str | None = "/v1/chat/completions") -> list[Any]:
        """Bodies of the POSTs to ``path`` (to any path with None), in arrival order."""
        return [body for method, p, body, _ in self.requests if method == "POST" and path in (None, p)]

    def paths(self) -> list[str]:
        return [path for _, path, _, _ in self.requests]

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent (a script may call it from a request)."""
        with self.lock:
            if self._stopped:
                return
            self._stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "ScriptedHTTP":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self._answer("GET", None)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                self._answer("POST", body)

            def _answer(self, method: str, body: Any) -> None:
                with server.lock:
                    n = len(server.requests)
                    server.requests.append((method, self.path, body, dict(self.headers)))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    answer = server.script(n, self.path, body)
                    while isinstance(answer, tuple) and answer[0] == "sleep":
                        time.sleep(answer[1])
                        answer = answer[2]
                    if answer == "drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    status, payload = answer
                    if isinstance(payload, (dict, list)):
                        payload = json.dumps(payload)
                    data = payload.encode() if isinstance(payload, str) else bytes(payload)
                    self.send_response(status)  # adds the Date header
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout under test)
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

        return Handler


def tiny_mesh(subdivisions: int = 2) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    mesh.visual.vertex_colors = np.tile(np.array([200, 60, 40, 255], dtype=np.uint8), (len(mesh.vertices), 1))
    return mesh


def tiny_mesh_payload(fmt: MeshFormat = MeshFormat.DRACO) -> bytes:
    return encode_mesh(tiny_mesh(), fmt)
