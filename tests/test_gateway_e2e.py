"""The gateway end to end on the devnet, with real processes: a gateway, validator workers and two
tiny miners, the page in headless Chromium.

Rules pinned here:
- a prompt posted with a key (``text3d request``) comes back as a mesh that decodes, with its
  score, evidence and views; the miners' logs show ordinary signed requests from the validator,
  shaped exactly like its synthetic ones;
- the page: type a prompt, click, the viewer loads the winning mesh and draws it (the viewer's
  pixels are not blank), at 1280 and 600 px wide, with nothing wider than the window; markup in
  the prompt is shown as text;
- a worker that dies mid-job: the job is handed to another worker when its lease passes and
  finishes there;
- a gateway killed mid-job and restarted: the queued job, the running job, the key and its usage
  are all still there, and the running job's result is uploaded to the restarted gateway.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.devnet_miner import child_env
from text3d.common.paths import source_root
from text3d.demo import LocalSubnet, ProcessGroup, wait_until
from text3d.demo.processes import ChildProcess
from text3d.gateway.client import GatewayClient
from text3d.gateway.quotas import Limits
from text3d.gateway.store import open_store
from text3d.ops.net import free_port
from text3d.protocol.mesh_codec import decode_mesh

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

MINERS = ("miner1", "miner2")
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@dataclass
class Stack:
    subnet: LocalSubnet
    group: ProcessGroup
    root: Path
    port: int = 0
    key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_gateway(self, name: str, port: int, store: Path, *extra: str) -> ChildProcess:
        child = self.group.start(name, self.subnet.gateway_argv(port, store=store,
                                                                 extra=["--gateway.min_free_mb", "0", *extra]))
        wait_until(lambda: _healthy(port), timeout_s=120, what=f"{name} on port {port}",
                   check=lambda: self._alive(child))
        return child

    def start_worker(self, name: str, gateway_port: int) -> ChildProcess:
        folder = self.root / name
        return self.group.start(name, self.subnet.validator_argv(name, max_steps=0, step_interval_s=600, extra=[
            "--gateway.url", f"http://127.0.0.1:{gateway_port}", "--gateway.wait_s", "3", "--gateway.poll_s", "1",
            "--validator.state_path", str(folder / "state.json"), "--validator.reports_dir", str(folder / "reports")]))

    def _alive(self, child: ChildProcess) -> None:
        if not child.running():
            raise AssertionError(f"{child.name} exited:\n{child.log_tail()}")


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _key(store_path: Path, name: str) -> str:
    store = open_store(store_path)
    try:
        return store.create_key(name, Limits(per_minute=30, per_day=1000, concurrency=8))[1]
    finally:
        store.close()


def _wait_for(client: GatewayClient, job_id: str, status: str, timeout_s: float) -> dict:
    """Poll every 20 ms until the job is ``status`` (a job that ends otherwise fails the test)."""
    seen: list[dict] = []

    def reached() -> bool:
        seen.append(client.status(job_id))
        assert seen[-1]["status"] not in ("done", "failed") or seen[-1]["status"] == status, seen[-1]
        return seen[-1]["status"] == status

    wait_until(reached, timeout_s=timeout_s, what=f"job {job_id} to be {status}", poll_s=0.02)
    return seen[-1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-e2e")
    subnet = LocalSubnet.create(root / "subnet", validators=("validator", "validator2", "validator3"), miners=MINERS)
    with ProcessGroup(subnet.logs_dir, cwd=source_root(), env=child_env()) as group:
        stack = Stack(subnet, group, root)
        for name in MINERS:
            group.start(name, subnet.miner_argv(name, free_port()))
        stack.port = free_port()
        store = root / "gateway.sqlite3"
        stack.start_gateway("gateway", stack.port, store)
        created = subprocess.run([sys.executable, "-m", "text3d.cli.main", "gateway", "keys", "create", "--name",
                                  "e2e", "--per-minute", "30", "--gateway.store", str(store)],
                                 env=child_env(), capture_output=True, text=True, timeout=120)
        assert created.returncode == 0, created.stderr
        stack.key = created.stdout.strip()
        wait_until(lambda: subnet.serving(MINERS), timeout_s=300, what="the miners' axons", check=group.check_alive)
        stack.start_worker("validator", stack.port)
        yield stack


def test_a_prompt_comes_back_as_a_mesh_with_score_and_views_and_miners_see_ordinary_requests(stack, tmp_path):
    prompt = "a red wooden chair"
    out = tmp_path / "chair.ply"
    done = subprocess.run([sys.executable, "-m", "text3d.cli.main", "request", prompt, "-o", str(out), "--gateway",
                           stack.url, "--key", stack.key, "--seed", "7", "--views", str(tmp_path / "views"), "--json"],
                          env=child_env(), capture_output=True, text=True, timeout=400, cwd=source_root())
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout.strip().splitlines()[-1])
    assert job["status"] == "done" and job["format"] == "ply" and job["seed"] == 7
    mesh = decode_mesh(out.read_bytes())
    assert len(mesh.faces) > 0 and mesh.visual.vertex_colors.shape[0] == len(mesh.vertices)
    views = sorted((tmp_path / "views").glob("view_*.png"))
    assert len(views) == 2 and all(Image.open(v).size == (64, 64) for v in views)  # the tiny rig: 2 views, 64 px
    evidence = job["evidence"]
    assert 0.0 <= job["score"] <= 1.0 and evidence["score"] == pytest.approx(job["score"])
    miner_uids = {stack.subnet.uids[name] for name in MINERS}
    assert {c["uid"] for c in evidence["candidates"]} == miner_uids and evidence["winner_uid"] in miner_uids
    assert len(evidence["views"]) == 2 and evidence["validator"] == stack.subnet.hotkey_of("validator")

    validator = stack.subnet.hotkey_of("validator")[:12]
    tag = hashlib.sha256(prompt.encode()).hexdigest()[:10]
    line = re.compile(r"request from (\w{12}) prompt ([0-9a-f]{10}): 200 draco \d+ bytes \(\d+\.\d\ds\)")
    for name in MINERS:
        requests = [m.groups() for m in line.finditer((stack.subnet.logs_dir / f"{name}.log").read_text())]
        assert (validator, tag) in requests, (name, requests)  # the organic request, signed by the validator
        assert any(t != tag for _, t in requests)  # beside synthetic ones, logged the same way


@pytest.mark.parametrize("width", [1280, 600])
def test_the_page_makes_an_asset_and_draws_it(stack, tmp_path, width):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("TEXT3D_SHOTS", tmp_path))
    prompt = "a <b>red</b> wooden chair & table"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(stack.url + "/")
            assert page.evaluate("() => !!customElements.get('model-viewer')"), "the viewer's script did not load"
            page.fill("#key", stack.key)
            page.fill("#prompt", prompt)
            page.click("#go")
            page.wait_for_function("() => { const v = document.querySelector('#viewer'); return v && v.loaded; }",
                                   timeout=300_000)
            page.wait_for_timeout(2000)  # a few frames of the turning model
            viewer_png = shots / f"gateway-viewer-{width}.png"
            page.locator("#viewer").screenshot(path=str(viewer_png))
            page.screenshot(path=str(shots / f"gateway-page-{width}.png"), full_page=True)
            measured = page.evaluate("""() => ({scroll: document.documentElement.scrollWidth, inner: innerWidth,
                asked: document.querySelector('#asked').textContent,
                injected: document.querySelectorAll('#asked b, #evidence b').length,
                score: document.querySelector('#score').textContent,
                views: Array.from(document.querySelectorAll('#views img')).filter(i => i.complete && i.naturalWidth > 0).length,
                rows: document.querySelectorAll('#evidence tbody tr').length,
                download: document.querySelector('#download').getAttribute('href')})""")
        finally:
            browser.close()
    assert not errors, errors
    assert measured["scroll"] <= measured["inner"] == width, measured
    assert prompt in measured["asked"] and measured["injected"] == 0, measured  # markup shown as text
    assert 0.0 <= float(measured["score"]) <= 1.0 and measured["views"] == 2 and measured["rows"] == 2, measured
    assert measured["download"].startswith("blob:"), measured
    pixels = np.asarray(Image.open(viewer_png).convert("RGB")).astype(int)
    background = np.median(pixels.reshape(-1, 3), axis=0)
    drawn = np.abs(pixels - background).sum(axis=2) > 60
    assert drawn.mean() > 0.005, f"the viewer looks blank: {drawn.mean():.4%} of its pixels differ from the background"


def test_a_worker_that_dies_mid_job_hands_the_job_on(stack):
    port, store = free_port(), stack.root / "handed-on.sqlite3"
    stack.start_gateway("gateway-handed-on", port, store, "--gateway.lease_s", "8")
    key = _key(store, "handed-on")
    doomed = stack.start_worker("validator2", port)
    with GatewayClient(f"http://127.0.0.1:{port}", key) as client:
        job = client.submit("a blue ceramic teapot")
        _wait_for(client, job["id"], "running", timeout_s=300)
        os.killpg(doomed.pid, signal.SIGSTOP)  # frozen between its claim and its upload ...
        assert client.status(job["id"])["status"] == "running"
        os.killpg(doomed.pid, signal.SIGKILL)  # ... and gone without a word
        doomed.popen.wait(timeout=30)
        stack.group.stop(doomed)
        stack.start_worker("validator3", port)
        done = client.wait(job["id"], timeout_s=300, poll_s=0.5)
    assert done["attempts"] == 2 and done["evidence"]["validator"] == stack.subnet.hotkey_of("validator3")
    log = (stack.subnet.logs_dir / "gateway-handed-on.log").read_text()
    assert "handed on" in log or "1 jobs handed on" in log


def test_a_gateway_restarted_mid_job_loses_nothing(stack):
    port, store = free_port(), stack.root / "restarted.sqlite3"
    gateway = stack.start_gateway("gateway-restarted", port, store)
    key = _key(store, "restarted")
    url = f"http://127.0.0.1:{port}"

    def restart(old: ChildProcess) -> ChildProcess:
        os.killpg(old.pid, signal.SIGKILL)
        old.popen.wait(timeout=30)
        stack.group.stop(old)
        return stack.start_gateway("gateway-restarted", port, store)

    with GatewayClient(url, key) as client:
        queued = client.submit("a green glass bottle", format="glb")
        gateway = restart(gateway)  # killed with a queued job
        assert client.status(queued["id"])["status"] == "queued"
        worker = stack.start_worker("validator2", port)
        client.wait(queued["id"], timeout_s=300, poll_s=0.5)
        running = client.submit("a yellow toy car", format="draco")
        _wait_for(client, running["id"], "running", timeout_s=120)
        os.killpg(worker.pid, signal.SIGSTOP)  # the worker holds the job ...
        gateway = restart(gateway)  # ... while the gateway dies and comes back
        os.killpg(worker.pid, signal.SIGCONT)
        done = client.wait(running["id"], timeout_s=300, poll_s=0.5)
        assert done["attempts"] == 1 and client.mesh(running["id"]).startswith(b"DRACO")
        usage = client.submit("a third object")  # the key still works, its usage counted across restarts
        assert usage["status"] == "queued"
    assert "upload failed" in worker.log_tail(200) or "done" in worker.log_tail(200)


def _runs_on_the_demo() -> str:
    """The shell block of docs/gateway.md marked ``<!-- runs-on-the-demo -->``."""
    text = (source_root() / "docs" / "gateway.md").read_text()
    found = re.search(r"<!-- runs-on-the-demo -->\s*```sh\n(.*?)```", text, re.S)
    assert found, "docs/gateway.md lost its runnable curl block"
    return found.group(1)


def test_the_demo_keeps_the_gateway_up_until_ctrl_c_and_the_docs_curl_examples_run_on_it(tmp_path):
    import threading

    import psutil

    workdir = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "text3d.cli.main", "demo", "--models", "tiny", "--workdir", str(workdir),
         "--validator-steps", "1", "--no-captioner", "--keep-running"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env(COLUMNS="200"), cwd=source_root())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(line.startswith("everything keeps running") for line in lines), timeout_s=400,
                   what="the demo to keep running", check=lambda: None if demo.poll() is None else
                   pytest.fail(f"the demo exited with {demo.returncode}:\n{''.join(lines)[-3000:]}"))
        address = [m.group(1) for m in map(re.compile(r"^gateway: (http://127\.0\.0\.1:\d+/)\n$").match, lines) if m]
        key = [m.group(1) for m in map(re.compile(r"^gateway key: (t3d_[A-Za-z0-9_-]{43})\n$").match, lines) if m]
        assert len(address) == 1 and len(key) == 1, "".join(lines)
        assert (workdir / "gateway_asset.glb").read_bytes().startswith(b"glTF")  # the demo's own prompt
        page = httpx.get(address[0])
        assert page.status_code == 200 and "model-viewer" in page.text
        ran = subprocess.run(["bash", "-e", "-c", _runs_on_the_demo()], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300, env=dict(os.environ, GATEWAY=address[0].rstrip("/"), KEY=key[0]))
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert json.loads((tmp_path / "status.json").read_text())["status"] == "done"
        assert (tmp_path / "chair.glb").read_bytes().startswith(b"glTF")
        assert (tmp_path / "view0.png").read_bytes().startswith(b"\x89PNG")
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(timeout=120) == 0, "".join(lines)[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    reader.join(timeout=10)
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if str(workdir) in " ".join(p.info["cmdline"] or [])]
    assert left == [], "the demo left processes behind"
