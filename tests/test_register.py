"""``text3d register``: the exact btcli commands, and bad input stops it before any wallet is touched.

Rules pinned here:
- ``--dry-run`` prints every btcli command in order, exactly, and runs none of them;
- every flag those commands use exists in the pinned SDK's own ``btcli ... --help``;
- a bad netuid, network, name or stake, a missing wallet without ``--create``, ``--create``
  or a missing ``--yes`` on finney: exit 78 with one sentence, no wallet file written,
  btcli never run;
- btcli's ``--json`` failures become one sentence each: too little balance, registration
  closed, no such netuid, rate limit, chain unreachable; "already registered" is success;
- with the real btcli, ``--create`` makes a wallet without any prompt, and an unreachable
  local chain (nothing on 127.0.0.1:9944) is one sentence and exit 1. Nothing but loopback
  is ever contacted.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from text3d.cli.main import main as cli_main
from tests.loopback import make_wallet

REPO = Path(__file__).resolve().parent.parent
BTCLI = str(Path(sys.executable).parent / "btcli")


def fake_btcli(tmp_path: Path, *, stdout: str = "", stderr: str = "", rc: int = 0) -> tuple[Path, Path]:
    """An executable standing in for btcli: records its argv, prints the canned answer."""
    calls = tmp_path / "btcli-calls.jsonl"
    script = tmp_path / "btcli"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.stdout.write({stdout!r}); sys.stderr.write({stderr!r}); sys.exit({rc})\n"
    )
    script.chmod(0o755)
    return script, calls


def calls_of(calls: Path) -> list[list[str]]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def register(*argv: str) -> int:
    return cli_main(["register", *argv])


# -- --dry-run ---------------------------------------------------------------------------------


def test_dry_run_prints_the_exact_btcli_commands_for_a_new_wallet(tmp_path, capsys):
    wallets = tmp_path / "wallets"
    code = register("--netuid", "42", "--wallet.name", "text3d-validator", "--wallet.path", str(wallets),
                    "--create", "--stake", "10", "--dry-run")
    out = capsys.readouterr().out
    assert code == 0
    commands = [line for line in out.splitlines() if not line.startswith("#")]
    assert commands == [
        f"{BTCLI} wallet create -w text3d-validator -H default --wallet-path {wallets} --no-password",
        f"{BTCLI} tx burned-register --netuid 42 --network test -w text3d-validator -H default "
        f"--wallet-path {wallets} -y --json",
        f"{BTCLI} tx add-stake --netuid 42 --network test -w text3d-validator -H default "
        f"--wallet-path {wallets} --amount 10 -y --json",
    ]
    assert not wallets.exists()  # a dry run touches nothing


def test_dry_run_skips_creation_for_an_existing_wallet_and_adds_only_a_missing_hotkey(tmp_path, capsys):
    wallets = tmp_path / "wallets"
    make_wallet(wallets, "miner")
    assert register("--netuid", "7", "--wallet.name", "miner", "--wallet.path", str(wallets), "--dry-run",
                    "--subtensor.network", "local") == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"{BTCLI} tx burned-register --netuid 7 --network local -w miner -H default --wallet-path {wallets} -y --json"
    ]
    assert register("--netuid", "7", "--wallet.name", "miner", "--wallet.hotkey", "second", "--wallet.path",
                    str(wallets), "--create", "--dry-run") == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        f"{BTCLI} wallet new-hotkey -w miner -H second --wallet-path {wallets}")


def test_every_flag_used_exists_in_the_pinned_btcli(tmp_path, capsys):
    register("--netuid", "42", "--wallet.name", "v", "--wallet.path", str(tmp_path / "w"), "--create",
             "--stake", "10", "--dry-run")
    commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    make_wallet(tmp_path / "w2", "v")
    register("--netuid", "42", "--wallet.name", "v", "--wallet.hotkey", "h2", "--wallet.path", str(tmp_path / "w2"),
             "--create", "--dry-run")
    commands += [shlex.split(line) for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert {tuple(c[1:3]) for c in commands} == {("wallet", "create"), ("wallet", "new-hotkey"),
                                                 ("tx", "burned-register"), ("tx", "add-stake")}
    for command in commands:
        helped = subprocess.run([BTCLI, *command[1:3], "--help"], capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, COLUMNS="200", NO_COLOR="1"))
        assert helped.returncode == 0, helped.stderr
        for flag in (token for token in command[3:] if token.startswith("-")):
            assert f" {flag} " in helped.stdout or f"{flag}," in helped.stdout or f",{flag} " in helped.stdout, (
                f"btcli {' '.join(command[1:3])} has no {flag}")


# -- input checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "says"), [
    (["--netuid", "abc"], "--netuid 'abc' is not a subnet number"),
    (["--netuid", "-3"], "--netuid '-3' is not a subnet number"),
    (["--netuid", "0"], "--netuid 0 is the root network"),
    (["--netuid", "42", "--subtensor.network", "mainnet"], "--subtensor.network 'mainnet' is not one of test, finney, local"),
    (["--netuid", "42", "--stake", "lots"], "--stake 'lots' is not an amount of TAO"),
    (["--netuid", "42", "--stake", "-5"], "--stake '-5' is not an amount of TAO"),
    (["--netuid", "42", "--wallet.hotkey", "../x"], "--wallet.hotkey '../x' is not a usable name"),
    (["--netuid", "42"], "does not exist under"),  # no wallet and no --create
    (["--netuid", "42", "--subtensor.network", "finney", "--create"], "--create makes password-less keys"),
])
def test_bad_input_stops_before_any_wallet_is_touched(tmp_path, capsys, argv, says):
    btcli, calls = fake_btcli(tmp_path)
    wallets = tmp_path / "wallets"
    code = register("--wallet.name", "fresh", "--wallet.path", str(wallets), "--btcli", str(btcli), *argv)
    err = capsys.readouterr().err
    assert code == 78, err
    assert err.startswith("text3d register: ") and says in err and err.count("\n") == 1 and "Traceback" not in err
    assert not wallets.exists() and calls_of(calls) == []


def test_finney_needs_yes_and_a_missing_btcli_is_one_sentence(tmp_path, capsys):
    wallets = tmp_path / "wallets"
    make_wallet(wallets, "miner")
    btcli, calls = fake_btcli(tmp_path)
    assert register("--netuid", "42", "--subtensor.network", "finney", "--wallet.name", "miner", "--wallet.path",
                    str(wallets), "--btcli", str(btcli)) == 78
    assert "burns real TAO" in capsys.readouterr().err and calls_of(calls) == []
    assert register("--netuid", "42", "--wallet.name", "miner", "--wallet.path", str(wallets), "--btcli",
                    str(tmp_path / "nope")) == 78
    assert "btcli not found" in capsys.readouterr().err


def test_a_missing_required_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        register("--wallet.name", "x")
    assert exit_info.value.code == 2


# -- btcli's answers ---------------------------------------------------------------------------

def chain_error(name: str, code: str, message: str = "the chain said no") -> str:
    return json.dumps({"success": False, "message": "extrinsic failed",
                       "error": {"message": message, "name": name, "code": code, "remediation": "..."}}, indent=2)


@pytest.mark.parametrize(("stdout", "stderr", "says"), [
    (chain_error("NotEnoughBalanceToStake", "insufficient_balance"), "",
     "wallet miner's coldkey has too little TAO on test to pay the registration cost"),
    ("", chain_error("SubNetRegistrationDisabled", "disabled"), "registration is closed on netuid 42 (test)"),
    ("", json.dumps({"message": "subnet 42 does not exist", "name": "SubnetNotExists", "code": "subnet_not_exists"}),
     "netuid 42 does not exist on test: check --netuid"),
    (chain_error("TooManyRegistrationsThisInterval", "rate_limited"), "", "run the same command again in a few minutes"),
    ("", json.dumps({"error": "could not reach test: could not connect to any endpoint: [Errno -2] Name or service "
                              "not known", "help": "check the endpoint"}), "cannot reach the test chain"),
])
def test_btcli_failures_become_one_sentence(tmp_path, capsys, stdout, stderr, says):
    wallets = tmp_path / "wallets"
    make_wallet(wallets, "miner")
    btcli, calls = fake_btcli(tmp_path, stdout=stdout, stderr=stderr, rc=1)
    code = register("--netuid", "42", "--wallet.name", "miner", "--wallet.path", str(wallets), "--btcli", str(btcli))
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("text3d register: ") and says in err and err.count("\n") == 1, err
    assert [c[:2] for c in calls_of(calls)] == [["tx", "burned-register"]]


def test_already_registered_is_success_and_staking_follows(tmp_path, capsys):
    wallets = tmp_path / "wallets"
    make_wallet(wallets, "validator")
    btcli, calls = fake_btcli(tmp_path, stdout=chain_error("HotKeyAlreadyRegisteredInSubNet", "already_exists"), rc=1)
    code = register("--netuid", "42", "--wallet.name", "validator", "--wallet.path", str(wallets), "--btcli",
                    str(btcli), "--stake", "10")
    out = capsys.readouterr().out
    assert "already registered on netuid 42" in out
    assert [c[:2] for c in calls_of(calls)] == [["tx", "burned-register"], ["tx", "add-stake"]]
    assert code == 1  # the fake answers the stake with the same refusal: that one is a failure


def test_success_prints_what_to_run_next(tmp_path, capsys):
    wallets = tmp_path / "wallets"
    make_wallet(wallets, "miner")
    btcli, _ = fake_btcli(tmp_path, stdout=json.dumps({"success": True, "message": "ok", "data": {"uid": 5}}))
    assert register("--netuid", "42", "--wallet.name", "miner", "--wallet.path", str(wallets), "--btcli", str(btcli)) == 0
    out = capsys.readouterr().out
    assert "registered miner/default on netuid 42 (test)" in out
    assert f"text3d miner --netuid 42 --subtensor.network test --wallet.name miner --wallet.hotkey default " \
           f"--wallet.path {wallets}" in out and "text3d doctor --role miner" in out


# -- the real btcli, loopback only -------------------------------------------------------------


def test_real_btcli_creates_a_wallet_without_prompts_and_names_an_unreachable_chain(tmp_path):
    wallets = tmp_path / "wallets"
    done = subprocess.run(
        [sys.executable, "-m", "text3d.cli.main", "register", "--netuid", "3", "--subtensor.network", "local",
         "--wallet.name", "fresh", "--wallet.path", str(wallets), "--create"],
        cwd=REPO, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
        env=dict(os.environ, COLUMNS="120", BT_FALLBACK_ENDPOINTS="none"),
    )
    assert (wallets / "fresh" / "coldkey").is_file() and (wallets / "fresh" / "hotkeys" / "default").is_file()
    assert "write down the mnemonics" in done.stdout
    assert done.returncode == 1, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("text3d register: cannot reach ws://127.0.0.1:9944"), done.stderr
    assert "Traceback" not in done.stderr
