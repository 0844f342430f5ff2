"""``text3d miner status``: a miner's standing from the chain and its answers from its own logs.

Pinned:
- the devnet gives incentive and emission the way a real chain reports them: the stake-weighted
  consensus of the permitted validators' weights, summing to 1 over the subnet, and emission in
  proportion (validators without a permit count for nothing);
- the miner's own request lines parse, in plain text and in ``--logging.json``, with and without
  the generation time; other lines are ignored;
- the command, run on a devnet with a log folder, prints the uid, stake, incentive with its rank,
  emission, the answers by status, generation times and the validators that asked (matched to
  their uid by the logged hotkey prefix); ``--json`` gives the same as one object;
- a log line carrying terminal escapes (a caller's claimed hotkey is a stranger's text) is
  printed escaped, never raw;
- a wallet without a hotkey is one sentence and exit status 78.
"""

from __future__ import annotations

import json
import time

import pytest

from text3d.chain.devnet import MINER_SHARE, DevnetChain
from text3d.cli.main import main
from text3d.miner.status import parse_request_line
from text3d.ops.registration import ensure_wallet


def _line(message: str, when: float | None = None) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(when or time.time()))
    return f"{stamp} INFO    text3d.miner: {message}\n"


@pytest.fixture
def devnet(tmp_path):
    chain = DevnetChain.create(tmp_path / "chain.db", 1, block_time_s=1.0, weights_rate_limit=0, tempo=100)
    names = ("big", "small", "m1", "m2", "m3")
    wallets = {name: ensure_wallet(name, "default", tmp_path / "wallets") for name in names}
    uids = {name: chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address) for name, w in wallets.items()}
    chain.add_stake(wallets["big"].hotkey.ss58_address, 3000.0)
    chain.add_stake(wallets["small"].hotkey.ss58_address, 1000.0)
    return {"chain": chain, "wallets": wallets, "uids": uids, "root": tmp_path}


def test_devnet_incentive_is_the_stake_weighted_consensus(devnet):
    chain, wallets, uids = devnet["chain"], devnet["wallets"], devnet["uids"]
    m1, m2, m3 = uids["m1"], uids["m2"], uids["m3"]
    assert chain.set_weights(wallets["big"], [m1, m2], [0.75, 0.25], 10**9)[0]
    assert chain.set_weights(wallets["small"], [m2, m3], [0.5, 0.5], 10**9)[0]
    neurons = {n.uid: n for n in chain.neurons()}
    # (3000 x [0.75, 0.25, 0] + 1000 x [0, 0.5, 0.5]) / 4000 = [0.5625, 0.3125, 0.125]
    expected = {m1: 0.5625, m2: 0.3125, m3: 0.125}
    for uid, share in expected.items():
        assert neurons[uid].incentive == pytest.approx(share, abs=1e-4)
        assert neurons[uid].emission == pytest.approx(share * MINER_SHARE * 100, abs=1e-2)
    assert sum(n.incentive for n in neurons.values()) == pytest.approx(1.0, abs=1e-6)


def test_request_lines_parse_in_text_and_json():
    text = parse_request_line(_line("request from 5Grwva12ab34 prompt 0123456789: 200 draco 108439 bytes (1.25s) gen 1.10s"))
    assert (text.caller, text.status, text.seconds, text.generation_s, text.payload_bytes) == (
        "5Grwva12ab34", 200, 1.25, 1.10, 108439)
    old = parse_request_line(_line("request from 5Grwva12ab34 prompt 0123456789: 200 ply 99 bytes (0.50s)"))
    assert old.generation_s is None and old.payload_bytes == 99  # lines written before the generation time
    refused = parse_request_line(_line("request from - prompt -: 403 hotkey is not registered on this subnet (0.00s)"))
    assert refused.caller == "-" and refused.status == 403 and refused.payload_bytes is None
    as_json = parse_request_line(json.dumps({
        "time": "2026-12-04T10:00:00.000+00:00", "level": "INFO", "logger": "text3d.miner", "role": "miner",
        "message": "request from 5Grwva12ab34 prompt 0123456789: 503 queue full (0.01s)"}))
    assert as_json.status == 503 and as_json.time_unix == pytest.approx(1796378400.0)
    assert parse_request_line(_line("miner 5Grw serving POST /v1/text3d on 0.0.0.0:8091")) is None
    assert parse_request_line('{"logger": "text3d.validator", "message": "request from a prompt b: 200 x (1s)"}') is None


def test_status_on_a_devnet_with_its_logs(devnet, capsys):
    chain, wallets, uids, root = devnet["chain"], devnet["wallets"], devnet["uids"], devnet["root"]
    assert chain.set_weights(wallets["big"], [uids["m1"], uids["m2"]], [0.6, 0.4], 10**9)[0]
    chain.serve_axon(wallets["m1"], "127.0.0.1", 8091)
    big = wallets["big"].hotkey.ss58_address[:12]
    logs = root / "logs"
    logs.mkdir()
    old = time.time() - 3 * 86400
    (logs / "m1.log.1").write_text(_line(f"request from {big} prompt 0123456789: 200 draco 5000 bytes (9.00s) gen 9.00s",
                                         old))  # three days old: outside the window
    (logs / "m1.log").write_text("".join([
        _line(f"request from {big} prompt 0123456789: 200 draco 1000 bytes (1.00s) gen 0.90s"),
        _line(f"request from {big} prompt 0123456789: 200 draco 3000 bytes (3.00s) gen 2.90s"),
        _line(f"request from {big} prompt 0123456789: 503 the answer could not be finished before the caller's "
              "deadline (12.00s)"),
        _line("request from - prompt -: 403 hotkey is not registered on this subnet (0.00s)"),
        _line("step 3 uid 1 5Grw: ok score 0.5 avg 0.1, 1.00s, 100 bytes"),  # not a request line
    ]))
    flags = ["--netuid", "1", "--subtensor.network", "devnet", "--devnet.db", str(chain.db_path), "--wallet.name", "m1",
             "--wallet.path", str(root / "wallets"), "--logging.dir", str(logs)]
    assert main(["miner", "status", *flags]) == 0
    out = capsys.readouterr().out
    assert f"uid        {uids['m1']}  (serving 127.0.0.1:8091)" in out
    assert "incentive  0.6000  (rank 1 of 3 miners)" in out
    assert f"emission   {0.6 * MINER_SHARE * 100:,.4f} in the last tempo" in out
    assert "4 requests: 200 answered: 2, 403 caller refused: 1, 503 busy or late: 1" in out
    assert "generation p50 0.90 s, p95 2.90 s, max 2.90 s (2 answers" in out
    validator_row = [line for line in out.splitlines() if line.strip().startswith(f"{uids['big']}  ")]
    assert validator_row and "3,000.00" in validator_row[0] and "yes" in validator_row[0], out

    assert main(["miner", "status", *flags, "--json", "--since-h", "100"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["uid"] == uids["m1"] and data["requests"] == 5 and data["by_status"]["200"] == 3
    assert data["callers"][0]["uid"] == uids["big"] and data["answer_bytes"]["max"] == 5000


def test_terminal_escapes_in_a_log_are_printed_escaped(devnet, capsys):
    chain, root = devnet["chain"], devnet["root"]
    log = root / "miner.log"
    log.write_text(_line("request from \x1b]0;pwned\x07 prompt 0123456789: 200 draco 10 bytes (1.00s)"))
    assert main(["miner", "status", "--netuid", "1", "--subtensor.network", "devnet", "--devnet.db", str(chain.db_path),
                 "--wallet.name", "m2", "--wallet.path", str(root / "wallets"), "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;pw" in out


def test_a_wallet_without_a_hotkey_is_one_sentence(devnet, capsys):
    rc = main(["miner", "status", "--netuid", "1", "--subtensor.network", "devnet", "--devnet.db",
               str(devnet["chain"].db_path), "--wallet.name", "nobody", "--wallet.path", str(devnet["root"] / "none")])
    err = capsys.readouterr().err
    assert rc == 78 and err.startswith("text3d miner status: no readable hotkey nobody/default") and "Traceback" not in err


def test_a_signed_caller_cannot_forge_a_line_in_the_miners_log(tmp_path, caplog):
    """The attack: a JSON key with a newline comes back in the 400's detail; logged raw, it would write a
    request line of the caller's choosing ("... request from <someone> ...: 200 ...") that
    ``text3d miner status`` would count. The refusal stays one line, the newline escaped."""
    import asyncio
    import logging
    from concurrent.futures import ThreadPoolExecutor

    import bittensor as bt
    import httpx

    from text3d.miner.app import MinerService, create_app
    from text3d.miner.caller_policy import CallerPolicy
    from text3d.miner.nonce_store import SqliteNonceStore
    from text3d.miner.queue import GenerationQueue
    from text3d.protocol.wire import ROUTE
    from tests.loopback import hand_metagraph, make_wallet

    validator, miner = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "miner")
    metagraph = hand_metagraph([(validator.hotkey.ss58_address, 100.0, True), (miner.hotkey.ss58_address, 0.0, False)])
    queue = GenerationQueue(lambda p, s: [], ThreadPoolExecutor(max_workers=1), max_batch_size=1, window_s=0.0,
                            max_queue=1, max_in_flight_per_caller=1)
    service = MinerService(hotkey=miner.hotkey.ss58_address, policy=CallerPolicy(), queue=queue,
                           nonce_store=SqliteNonceStore(tmp_path / "n.sqlite"), max_timeout_s=5.0,
                           deadline_margin_s=0.1, metagraph=metagraph)
    forged = '\n2026-12-04T10:00:00 INFO    text3d.miner: request from 5Forged prompt 0123456789: 200 draco 9 bytes (1.00s)'
    body = json.dumps({"prompt": "a chair", "seed": 1, "timeout_s": 5.0, forged: 1}).encode()
    headers = bt.http_auth.sign(validator, method="POST", path=ROUTE, body=body, receiver_ss58=miner.hotkey.ss58_address)

    async def ask() -> int:
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://miner") as client:
            return (await client.post(ROUTE, content=body, headers={**headers, "Content-Type": "application/json"})).status_code

    caplog.set_level(logging.INFO, logger="text3d")
    assert asyncio.run(ask()) == 400
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request from")]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert [parse_request_line(line) for line in caplog.text.splitlines() if "5Forged" in line and
            parse_request_line(line) is not None and parse_request_line(line).caller == "5Forged"] == []
