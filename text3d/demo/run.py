"""The demo's script: a devnet, a captioner, two miners, a gateway and a validator, then the results.

``run_demo(config, console)`` does, in order: create the local subnet in the work
folder; start the LLaVA server (tiny or real), the two miners and the organic gateway
(``text3d.demo.gateway``: its address and a demo key are printed at once, each on a line of
its own: ``gateway: http://127.0.0.1:PORT/`` and ``gateway key: KEY``); wait until both
miners announce their axons on the devnet and the captioner is healthy; run the
validator -- also the gateway's worker -- for at least ``steps`` steps and until its weights
are on chain (tiny random models often score a whole step 0, and no weights are set before a
miner scored), while one prompt goes through the gateway and its mesh is saved; then stop it
with a Ctrl-C; print the leaderboard and write ``leaderboard.html`` beside the validator's last
step report. With ``keep_running`` everything stays up after that until Ctrl-C, so a person can
use the gateway's page. Every child process is stopped on the way out, whatever happened.
"""

import os
import signal
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text3d.demo.gateway import DemoGateway, ask, start_gateway
from text3d.demo.leaderboard import last_step_report, leaderboard_rows, read_averages, render_table, write_html
from text3d.demo.processes import ChildFailed, ChildProcess, ProcessGroup, wait_until
from text3d.ops.net import free_port
from text3d.common.paths import source_root
from text3d.demo.subnet import LocalSubnet, TinySettings

__all__ = ["DemoConfig", "DemoResult", "run_demo"]

MINERS = ("miner1", "miner2")
# Tiny random models often score a whole step 0 (every view matches a reject text), and a
# validator sets no weights before some miner scored: allow this many steps beyond the asked.
EXTRA_STEPS = 10


@dataclass(frozen=True)
class DemoConfig:
    workdir: Path
    models: str = "real"  # real | tiny
    device: str = "auto"
    steps: int = 3  # at least this many validator steps, then until weights are on chain
    step_interval_s: float = 1.0
    captioner: bool = True  # start a LLaVA server and caption the views
    startup_timeout_s: float = 600.0  # miners loading models + captioner loading
    run_timeout_s: float = 900.0  # the validator's steps
    debug: bool = False
    keep_running: bool = False  # after the results, keep everything up until Ctrl-C


@dataclass(frozen=True)
class DemoResult:
    weights: dict[int, float]
    averages: dict[int, float]
    leaderboard_html: Path
    step_report: Path | None
    logs_dir: Path
    gateway_url: str | None = None
    gateway_key: str | None = None
    gateway_asset: Path | None = None


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source_root()), env.get("PYTHONPATH", "")) if p)
    return env


def _start_captioner(config: DemoConfig, subnet: LocalSubnet) -> Any:
    """A started (not yet ready) ``LlamaServer``; raises ``LlavaSetupError`` when it cannot be had."""
    from text3d.ops.llava import LlamaServer, LlamaServerConfig, download_llava, find_llama_server

    if config.models == "tiny":
        from text3d.reward.tiny_llava import ensure_tiny_llava

        binary = find_llama_server()  # before the tiny model: it also caches the vocabulary
        model_path, mmproj_path = ensure_tiny_llava()
        slots = 2
    else:
        model_path, mmproj_path = download_llava("7b")
        binary = find_llama_server()
        slots = 4
    subnet.logs_dir.mkdir(parents=True, exist_ok=True)
    server_config = LlamaServerConfig(binary=binary, model_path=model_path, mmproj_path=mmproj_path,
                                      port=free_port(), slots=slots)
    return LlamaServer(server_config, log_path=subnet.logs_dir / "llava.log").start()


def run_demo(config: DemoConfig, console: Any) -> DemoResult:
    """Run the demo; raises ``ChildFailed`` (with the log to read) when a step fails."""
    subnet = LocalSubnet.create(config.workdir, miners=MINERS)
    console.print(f"devnet at {subnet.chain.db_path}: " + ", ".join(f"{name} uid {uid}" for name, uid in subnet.uids.items()))
    tiny = TinySettings()
    device = config.device if config.device != "auto" or config.models == "real" else "cpu"
    server = None
    group = ProcessGroup(subnet.logs_dir, cwd=subnet.workdir, env=_child_env())
    previous = {signum: signal.signal(signum, _raise_interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    asking = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-gateway")
    result: DemoResult | None = None
    try:
        if config.captioner:
            server = _start_captioner(config, subnet)
        for name in MINERS:
            argv = subnet.miner_argv(name, free_port(), models=config.models, device=device, tiny=tiny,
                                     debug=config.debug)
            group.start(name, argv)
        gateway = start_gateway(group, subnet, timeout_s=config.startup_timeout_s, debug=config.debug)
        _line(console, f"gateway: {gateway.url}")
        _line(console, f"gateway key: {gateway.key}")
        console.print(f"started {', '.join(MINERS)}; waiting for their axons (logs in {subnet.logs_dir})")
        wait_until(lambda: subnet.serving(MINERS), timeout_s=config.startup_timeout_s,
                   what="the miners to serve their axons", check=group.check_alive)
        captioner_url = "none"
        if server is not None:
            server.wait_until_ready(config.startup_timeout_s)
            captioner_url = server.base_url
        validator = group.start("validator", subnet.validator_argv(
            captioner=captioner_url, max_steps=0 if config.keep_running else config.steps + EXTRA_STEPS,
            step_interval_s=config.step_interval_s, models=config.models, device=device, tiny=tiny, debug=config.debug,
            extra=["--gateway.url", gateway.url.rstrip("/"), "--gateway.wait_s", "5", "--gateway.poll_s", "1"],
        ))
        console.print(f"validator running at least {config.steps} steps, until its weights are on chain "
                      f"(captioner: {captioner_url}); one prompt goes through the gateway meanwhile")
        asked = asking.submit(ask, gateway, subnet.workdir, timeout_s=config.run_timeout_s)
        evidence = subnet.weights_after_evidence("validator")
        done = lambda: (subnet.saved_state()["step"] >= config.steps and _report_complete(subnet)  # noqa: E731
                        and evidence() and asked.done())
        wait_until(lambda: not validator.running() or done(), timeout_s=config.run_timeout_s,
                   what="the validator's steps and weights", check=lambda: group.check_alive(validator), poll_s=0.5)
        asset = _asked(asked, gateway, subnet, console) if asked.done() else None
        if config.keep_running and validator.running() and asset is not None:
            result = _report(subnet, subnet.weights_of("validator"), console, gateway, asset, config.models)
            _keep_running(group, gateway, console)
        elif validator.running():
            _interrupt(validator)
        elif validator.popen.returncode != 0:
            raise ChildFailed(f"the validator exited with code {validator.popen.returncode}; see "
                              f"{validator.log_path}:\n{validator.log_tail()}")
        if asset is None:
            raise ChildFailed(f"the prompt sent through the gateway did not finish; see {subnet.logs_dir / 'gateway.log'}"
                              f" and {validator.log_path}")
        if result is None and not done():
            raise ChildFailed(f"the validator ran {config.steps + EXTRA_STEPS} steps without setting weights from "
                              f"a positive score; see {validator.log_path}")
    finally:
        for signum in previous:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        try:
            asking.shutdown(wait=False, cancel_futures=True)
            group.stop_all()
            if server is not None:
                server.stop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if result is not None:  # --keep-running: reported while everything ran
        return result
    weights = subnet.weights_of("validator")
    if not weights:
        raise ChildFailed(f"the validator set no weights on the devnet; see {subnet.logs_dir / 'validator.log'}")
    return _report(subnet, weights, console, gateway, asset, config.models)


def _line(console: Any, text: str) -> None:
    """One plain line, never wrapped or styled: scripts and people copy these (addresses, keys)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _asked(asked: Future, gateway: DemoGateway, subnet: LocalSubnet, console: Any) -> Path:
    """The saved mesh of the prompt sent through the gateway; ``ChildFailed`` saying why there is none."""
    from text3d.gateway.client import GatewayRefused, GatewayUnreachable, JobFailed, JobTimedOut

    try:
        job, path = asked.result()
    except (GatewayRefused, GatewayUnreachable, JobFailed, JobTimedOut) as exc:
        raise ChildFailed(f"the prompt sent through the gateway failed: {exc}; see {subnet.logs_dir / 'gateway.log'}") from None
    evidence = job.get("evidence") or {}
    console.print(f"gateway asset: {path} ({job['prompt']!r}, score {job['score']:.3f}, best of "
                  f"{len(evidence.get('candidates', []))} miners); see it at {gateway.url}#{job['id']} with the key above",
                  markup=False, highlight=False, soft_wrap=True)
    return path


def _keep_running(group: ProcessGroup, gateway: DemoGateway, console: Any) -> None:
    """Until Ctrl-C (or a child dying): the subnet and the gateway stay up for a person to use."""
    _line(console, f"everything keeps running: open {gateway.url} and paste the key; Ctrl-C stops it all")
    try:
        while True:
            group.check_alive()
            time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping the demo")


def _report_complete(subnet: LocalSubnet) -> bool:
    """The last saved step's report folder is complete (``step.json`` is written last)."""
    step = int(subnet.saved_state()["step"])
    return (subnet.reports_dir / f"step_{step:06d}" / "step.json").is_file()


def _interrupt(child: ChildProcess, grace_s: float = 30.0) -> None:
    """Ctrl-C for one child (it finishes cleanly), then the usual stop if it lingers."""
    try:
        os.killpg(child.pid, signal.SIGINT)
        child.popen.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass


def _report(subnet: LocalSubnet, weights: dict[int, float], console: Any, gateway: DemoGateway | None = None,
            asset: Path | None = None, models: str = "real") -> DemoResult:
    averages = read_averages(subnet.state_path)
    names = {uid: name for name, uid in subnet.uids.items()}
    hotkeys = {n.uid: n.hotkey for n in subnet.chain.neurons()}
    rows = leaderboard_rows(names, hotkeys, weights, averages)
    title = f"text3d devnet leaderboard (netuid {subnet.netuid}, block {subnet.chain.block()})"
    console.print(render_table(rows, title))
    step_report = last_step_report(subnet.reports_dir)
    index = subnet.reports_dir / "index.html"
    page = write_html(rows, subnet.workdir / "leaderboard.html", title, step_report,
                      reports_index=index if index.is_file() else None)
    if step_report is not None:
        console.print(f"last step report (views, captions, scores): {step_report}")
    console.print(f"leaderboard page: {page}")
    _next_steps(subnet, page, index, console, tiny=models == "tiny", gateway=gateway)
    return DemoResult(weights, averages, page, step_report, subnet.logs_dir,
                      gateway.url if gateway else None, gateway.key if gateway else None, asset)


def _next_steps(subnet: LocalSubnet, page: Path, index: Path, console: Any, *, tiny: bool,
                gateway: DemoGateway | None = None) -> None:
    """What to open, and what to try next: the demo's last words."""
    from rich.text import Text

    lines = ["", "what to open (in a browser; the pages work offline):",
             f"  {page.as_uri()}   the leaderboard",
             f"  {index.as_uri()}   every step, each miner's history, the best meshes in 3D",
             f"  {subnet.logs_dir}/   the neurons' logs (validator.log: one line per miner per step)",
             *([f"  {gateway.url}   the gateway's page (with the gateway key above; `text3d demo --keep-running` "
                "keeps it up)"] if gateway else []),
             "what to try next:",
             f"  text3d miner status --netuid {subnet.netuid} --subtensor.network devnet --devnet.db "
             f"{subnet.chain.db_path} --wallet.name miner1 --wallet.path {subnet.wallets_dir} --log "
             f"{subnet.logs_dir / 'miner1.log'}",
             '  text3d generate "a red chair" -o chair.glb --models tiny && text3d score chair.glb --prompt "a red chair" '
             "--models tiny --html report/",
             "  the same subnet by hand, one command per neuron: docs/devnet.md; a miner or a validator on testnet: "
             "docs/testnet.md"]
    if tiny:
        lines.append("note: these came from the tiny random-weight models: the meshes are random blobs and the scores "
                     "say nothing about them. `make demo MODELS=real` (a GPU) runs Shap-E, CLIP and LLaVA for real.")
    for line in lines:
        console.print(Text(line))


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
