"""The README's devnet commands, run as written: two miners, a validator, weights on the devnet.

Rules pinned here:
- the README says once how to activate the venv (``source .venv/bin/activate``), and its
  devnet block is the one in docs/devnet.md (the guide cannot drift from the README);
- those commands, run one by one in a fresh folder with the venv on PATH (``&`` lines in
  the background), give: two miners that log one line per request, a validator that logs
  one line per step, and the validator's weights on the devnet, shown by the block's last
  command; log files without colour codes or repeated lines.

The only changes to the commands: ``HOME`` is the test's folder (the wallets land there,
not in the real ``~/.bittensor``) and the two axon ports are replaced by free ones (8091
and 8092 may be taken on a shared machine). Tiny models, CPU, 127.0.0.1 only.
"""

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from text3d.chain.devnet import DevnetChain
from text3d.demo.processes import ChildFailed, wait_until
from text3d.ops.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def code_blocks(markdown: str) -> list[list[str]]:
    """The ```bash blocks of a markdown text, as commands (continuation lines joined, comments dropped)."""
    blocks = []
    for body in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        commands, pending = [], ""
        for raw in body.splitlines():
            line = raw.strip()
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            line = (pending + line).strip()
            pending = ""
            line = re.sub(r"\s+#\s.*$", "", line)  # "cmd   # what it does"
            if line and not line.startswith("#"):
                commands.append(line)
        blocks.append(commands)
    return blocks


def devnet_block(markdown: str) -> list[str]:
    (block,) = [b for b in code_blocks(markdown) if any(c.startswith("text3d devnet init") for c in b)]
    return [c for c in block if c != "source .venv/bin/activate"]


def test_readme_devnet_commands_run_as_written(tmp_path):
    readme = (REPO / "README.md").read_text()
    assert ["source .venv/bin/activate"] in code_blocks(readme), "the README must say how to activate the venv"
    commands = devnet_block(readme)
    assert commands == devnet_block((REPO / "docs" / "devnet.md").read_text()), "README and docs/devnet.md differ"
    assert sum(c.endswith("&") for c in commands) == 3 and commands[-1] == "text3d devnet show --devnet.db chain.db"

    ports = {"8091": str(free_port()), "8092": str(free_port())}
    env = dict(os.environ, HOME=str(tmp_path), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", VIRTUAL_ENV=str(REPO / ".venv"),
               PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)  # the venv's own install, as a user's shell would have it
    background: list[subprocess.Popen] = []
    try:
        for index, command in enumerate(commands):
            for default, port in ports.items():
                command = command.replace(f"--axon.port {default}", f"--axon.port {port}")
            if command.endswith("&"):
                out = open(tmp_path / f"terminal-{index}.txt", "wb")
                background.append(subprocess.Popen(["bash", "-c", command[:-1]], cwd=tmp_path, env=env, stdout=out,
                                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                   start_new_session=True))
                continue
            done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"

        chain = DevnetChain.open(tmp_path / "chain.db")
        uids = {n.hotkey: n.uid for n in chain.neurons()}
        validator_uid = max(chain.neurons(), key=lambda n: n.stake).uid
        def alive() -> None:
            for process in background:
                assert process.poll() is None, _terminals(tmp_path)

        try:  # a hang guard: the validator's first weights come after one step
            wait_until(lambda: bool(chain.weights().get(validator_uid)), timeout_s=300, what="weights on the devnet",
                       poll_s=1.0, check=alive)
        except ChildFailed as exc:
            raise AssertionError(f"{exc}\n{_terminals(tmp_path)}") from None
        shown = subprocess.run(["bash", "-c", commands[-1]], cwd=tmp_path, env=dict(env, COLUMNS="250"),
                               capture_output=True, text=True, timeout=120)
    finally:
        for process in background:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in background:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)

    weights = chain.weights()[validator_uid]
    assert len(uids) == 3 and sum(weights.values()) == pytest.approx(1.0, abs=1e-3)
    assert shown.returncode == 0 and any(f"{uid}:" in shown.stdout for uid in weights), shown.stdout

    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["miner1.log", "miner2.log", "validator.log"]  # wallet names
    for name in ("miner1", "miner2"):
        text = (logs / f"{name}.log").read_text()
        assert re.search(r"INFO +text3d\.miner: request from \S+ prompt [0-9a-f]{10}: 200 draco \d+ bytes \(\d+\.\d+s\)",
                         text), text
    validator = (logs / "validator.log").read_text()
    assert re.search(r"INFO +text3d\.validator: step 1: \d miners \(", validator), validator  # from the first step on
    assert re.search(r"step \d+: 2 miners \(.*ok [12].*weights: set at block \d+ for \d+ uids", validator), validator
    for log in logs.iterdir():
        lines = log.read_text().splitlines()
        assert not ANSI.search("\n".join(lines)), log
        assert all(a != b for a, b in zip(lines, lines[1:])), f"a line written twice in {log}"


def _terminals(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(folder.glob("terminal-*")))
