"""``text3d register``: create a wallet if asked and register its hotkey on a subnet with ``btcli``.

    text3d register --netuid 42 --wallet.name text3d-miner --create --dry-run   # print the commands only
    text3d register --netuid 42 --wallet.name text3d-miner --create             # testnet (the default network)
    text3d register --netuid 42 --wallet.name text3d-validator --create --stake 10

Every step is a command of the pinned SDK's own ``btcli`` (bittensor 11), printed before it
runs and all of them printed, without running anything, by ``--dry-run``:

    btcli wallet create -w NAME -H HOTKEY --wallet-path PATH --no-password   (only with --create)
    btcli tx burned-register --netuid N --network NET -w NAME -H HOTKEY --wallet-path PATH -y --json
    btcli tx add-stake --netuid N --network NET -w NAME -H HOTKEY --wallet-path PATH --amount TAO -y --json

Inputs are checked before any wallet is touched: the netuid is a whole number above 0,
the network is test, finney or local, the wallet exists or ``--create`` is given. Wallets
are created only on test and local, without a password (so nothing prompts); a mainnet
wallet deserves a password: create it yourself with ``btcli wallet create``. Registering
on finney spends real TAO and needs ``--yes``.

A failed step is one sentence (too little balance, registration closed, no such netuid,
rate limit, chain unreachable), read from btcli's ``--json`` answer. Exit status: 0 done
(or already registered), 78 for a bad input, 1 when a btcli step failed, 2 for a
malformed command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from text3d.common.argparsing import plain

__all__ = ["add_parser", "run", "RegisterPlan", "check_inputs", "plan_commands", "explain_failure", "NETWORKS"]

NETWORKS = ("test", "finney", "local")
WALLET_DEFAULT_PATH = "~/.bittensor/wallets"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "register", help="create a wallet and register its hotkey on a subnet (btcli)", description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--netuid", required=True, metavar="N", help="subnet uid to register on")
    parser.add_argument("--subtensor.network", dest="network", default="test", metavar="{test,finney,local}",
                        help="chain to register on (default: test; local = ws://127.0.0.1:9944)")
    parser.add_argument("--wallet.name", dest="wallet_name", required=True, metavar="NAME", help="wallet (coldkey) name")
    parser.add_argument("--wallet.hotkey", dest="wallet_hotkey", default="default", metavar="HOTKEY",
                        help="hotkey name inside the wallet (default: default)")
    parser.add_argument("--wallet.path", dest="wallet_path", default=WALLET_DEFAULT_PATH, metavar="PATH",
                        help=f"folder holding the wallets (default: {WALLET_DEFAULT_PATH})")
    parser.add_argument("--create", action="store_true",
                        help="create the wallet (or its hotkey) when missing: no password, test and local only")
    parser.add_argument("--stake", metavar="TAO", default=None,
                        help="after registering, stake this much TAO on the hotkey (validators need stake for a permit)")
    parser.add_argument("--dry-run", action="store_true", help="print every btcli command and run none")
    parser.add_argument("--yes", action="store_true", help="confirm spending real TAO on finney")
    parser.add_argument("--btcli", default=None, metavar="PATH", help="the btcli to run (default: the venv's own)")
    parser.set_defaults(run=run)
    return parser


@dataclass(frozen=True)
class RegisterPlan:
    """Checked inputs of one registration."""

    btcli: str
    netuid: int
    network: str
    wallet_name: str
    wallet_hotkey: str
    wallet_path: Path
    create: bool
    stake_tao: float | None

    @property
    def coldkey_present(self) -> bool:
        folder = self.wallet_path / self.wallet_name
        return (folder / "coldkey").is_file() or (folder / "coldkeypub.txt").is_file()

    @property
    def hotkey_present(self) -> bool:
        return (self.wallet_path / self.wallet_name / "hotkeys" / self.wallet_hotkey).is_file()

    @property
    def wallet_args(self) -> list[str]:
        return ["-w", self.wallet_name, "-H", self.wallet_hotkey, "--wallet-path", str(self.wallet_path)]


def _default_btcli() -> str | None:
    beside = Path(sys.executable).parent / "btcli"  # the pinned SDK's own, in the same venv
    if beside.is_file():
        return str(beside)
    return shutil.which("btcli")


def check_inputs(args: argparse.Namespace) -> RegisterPlan:
    """The plan for ``args``, or ``ConfigError`` (one sentence naming the flag) before anything is touched."""
    from text3d.protocol.errors import ConfigError

    raw = str(args.netuid).strip()
    if not raw.isdigit():
        raise ConfigError(f"--netuid {args.netuid!r} is not a subnet number: give a whole number such as 42 "
                          f"(list them with `btcli subnets list --network {args.network if args.network in NETWORKS else 'test'}`)")
    netuid = int(raw)
    if netuid == 0:
        raise ConfigError("--netuid 0 is the root network, not a subnet: give the subnet's own netuid")
    if netuid > 65535:
        raise ConfigError(f"--netuid {netuid} is out of range: netuids go up to 65535")
    if args.network not in NETWORKS:
        raise ConfigError(f"--subtensor.network {args.network!r} is not one of {', '.join(NETWORKS)}: use test for "
                          "the testnet, finney for mainnet, local for a subtensor on ws://127.0.0.1:9944")
    for flag, value in (("--wallet.name", args.wallet_name), ("--wallet.hotkey", args.wallet_hotkey)):
        if not value or "/" in value or value.startswith(".") or value.strip() != value:
            raise ConfigError(f"{flag} {value!r} is not a usable name: use letters, digits, - or _")
    stake = None
    if args.stake is not None:
        try:
            stake = float(args.stake)
        except ValueError:
            stake = -1.0
        if not stake > 0 or stake != stake or stake == float("inf"):
            raise ConfigError(f"--stake {args.stake!r} is not an amount of TAO: give a positive number such as 10")
    btcli = args.btcli or _default_btcli()
    if not btcli or not (Path(btcli).is_file() and os.access(btcli, os.X_OK)):
        raise ConfigError(f"btcli not found{f' at {btcli}' if btcli else ''}: run `make setup` (bittensor 11 ships it "
                          "in .venv/bin) or point --btcli at it")
    plan = RegisterPlan(
        btcli=str(btcli), netuid=netuid, network=args.network, wallet_name=args.wallet_name,
        wallet_hotkey=args.wallet_hotkey, wallet_path=Path(os.path.expanduser(args.wallet_path)).absolute(),
        create=bool(args.create), stake_tao=stake,
    )
    missing = not plan.coldkey_present or not plan.hotkey_present
    if missing and not plan.create:
        what = "wallet" if not plan.coldkey_present else "hotkey"
        raise ConfigError(
            f"{what} {plan.wallet_name}/{plan.wallet_hotkey} does not exist under {plan.wallet_path}: add --create to "
            f"create it, or fix --wallet.name, --wallet.hotkey or --wallet.path"
        )
    if missing and plan.network == "finney":
        raise ConfigError(
            f"--create makes password-less keys, not for mainnet: create the wallet with a password first "
            f"(`btcli wallet create -w {plan.wallet_name} -H {plan.wallet_hotkey}`), then register without --create"
        )
    if plan.network == "finney" and not (args.yes or args.dry_run):
        raise ConfigError("registering on finney burns real TAO: check the commands with --dry-run, then add --yes")
    return plan


def plan_commands(plan: RegisterPlan) -> list[list[str]]:
    """Every btcli command the registration runs, in order (flags checked against bittensor 11.3's ``--help``)."""
    commands: list[list[str]] = []
    if not plan.coldkey_present:
        commands.append([plan.btcli, "wallet", "create", *plan.wallet_args, "--no-password"])
    elif not plan.hotkey_present:
        commands.append([plan.btcli, "wallet", "new-hotkey", *plan.wallet_args])
    chain = ["--netuid", str(plan.netuid), "--network", plan.network]
    commands.append([plan.btcli, "tx", "burned-register", *chain, *plan.wallet_args, "-y", "--json"])
    if plan.stake_tao is not None:
        commands.append([plan.btcli, "tx", "add-stake", *chain, *plan.wallet_args, "--amount", f"{plan.stake_tao:g}",
                         "-y", "--json"])
    return commands


# -- btcli's answers -----------------------------------------------------------------------


def _json_objects(text: str) -> list[dict]:
    """Every top-level JSON object in ``text`` (btcli prints pretty JSON, possibly after other lines)."""
    decoder = json.JSONDecoder()
    found, index = [], 0
    while (start := text.find("{", index)) != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        if isinstance(value, dict):
            found.append(value)
        index = end
    return found


def _facts(payloads: Sequence[dict]) -> tuple[set[str], set[str], str]:
    """Chain error names, error codes and the first message in btcli's JSON answers."""
    names: set[str] = set()
    codes: set[str] = set()
    messages: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("name"), str):
                names.add(node["name"])
            if isinstance(node.get("code"), str):
                codes.add(node["code"])
            for key in ("message", "error"):
                if isinstance(node.get(key), str) and node[key]:
                    messages.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for payload in payloads:
        walk(payload)
    return names, codes, messages[0] if messages else ""


def succeeded(stdout: str) -> bool:
    """True when btcli's JSON answer reports success (``{"success": true, ...}``)."""
    return any(payload.get("success") is True for payload in _json_objects(stdout))


def already_registered(stdout: str, stderr: str) -> bool:
    names, codes, message = _facts(_json_objects(stdout) + _json_objects(stderr))
    return "HotKeyAlreadyRegisteredInSubNet" in names or "already registered" in message.lower()


def explain_failure(step: str, plan: RegisterPlan, returncode: int, stdout: str, stderr: str) -> str:
    """One sentence for a failed btcli ``step`` ("register", "stake", "create"), from its JSON answer."""
    names, codes, message = _facts(_json_objects(stdout) + _json_objects(stderr))
    lines = stderr.strip().splitlines()
    text = (message or (lines[-1] if lines else "")).strip()
    low = text.lower()
    net, netuid, wallet = plan.network, plan.netuid, plan.wallet_name
    fund = ("get testnet TAO from the faucet (docs/testnet.md)" if net == "test" else "transfer TAO to it")
    if "insufficient_balance" in codes or "balance" in low and ("low" in low or "insufficient" in low or "not enough" in low):
        need = "the registration cost" if step == "register" else f"{plan.stake_tao:g} TAO of stake plus the fee"
        return (f"wallet {wallet}'s coldkey has too little TAO on {net} to pay {need}: {fund}, check it with "
                f"`btcli wallet balance -w {wallet} --network {net}`, then run again")
    if "SubNetRegistrationDisabled" in names or "disabled" in codes or "registration" in low and "disabled" in low:
        return (f"registration is closed on netuid {netuid} ({net}): the subnet owner has turned it off; try again "
                "later or check --netuid")
    if "subnet_not_exists" in codes or "SubnetNotExists" in names or "does not exist" in low and "subnet" in low:
        return (f"netuid {netuid} does not exist on {net}: check --netuid (`btcli subnets list --network {net}` lists "
                "them)")
    if "rate_limited" in codes or any("TooManyRegistrations" in n for n in names):
        return (f"netuid {netuid} has taken all the registrations it allows for now ({next(iter(names), 'rate limit')}): "
                "run the same command again in a few minutes")
    if "RegistrationPriceLimitExceeded" in names or "limit_exceeded" in codes:
        return f"the registration cost on netuid {netuid} is above btcli's spend cap: raise it (`btcli config`) or wait"
    if "could not reach" in low or "connect call failed" in low or "could not connect" in low:
        where = "ws://127.0.0.1:9944 (start your local subtensor)" if net == "local" else f"the {net} chain"
        return f"cannot reach {where}: check the network connection and --subtensor.network, then run again"
    if "wrong password" in low or "password" in low and "decrypt" in low:
        return (f"the password of wallet {wallet}'s coldkey was refused: run again and type it, or set "
                "BT_WALLET_PASSWORD for unattended runs")
    if "no wallet named" in low or "no such file" in low and "wallet" in low:
        return f"btcli cannot find wallet {wallet} under {plan.wallet_path}: check --wallet.name and --wallet.path"
    detail = text or f"exit status {returncode}"
    return f"btcli failed to {step} {wallet}/{plan.wallet_hotkey} on netuid {netuid} ({net}): {detail}"


# -- the command -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from text3d.protocol.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError

    try:
        plan = check_inputs(args)
    except ConfigError as exc:
        print(f"text3d register: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    commands = plan_commands(plan)
    if args.dry_run:
        print("# text3d register --dry-run: the btcli commands, in order (nothing was run):")
        for command in commands:
            print(shlex.join(command))
        return EXIT_OK
    for command in commands:
        step = {"create": "create", "new-hotkey": "create", "burned-register": "register", "add-stake": "stake"}[command[2]]
        print(f"$ {shlex.join(command)}", flush=True)
        if step == "create":  # let btcli print the mnemonics to the terminal: they are the only backup
            done = subprocess.run(command, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                print(f"text3d register: btcli could not create wallet {plan.wallet_name}/{plan.wallet_hotkey} under "
                      f"{plan.wallet_path} (exit status {done.returncode}); see its message above", file=sys.stderr)
                return EXIT_FAILURE
            print("write down the mnemonics above: they are the only way to recover these keys")
            continue
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if step == "register" and done.returncode != 0 and already_registered(done.stdout, done.stderr):
            print(f"{plan.wallet_name}/{plan.wallet_hotkey} is already registered on netuid {plan.netuid} ({plan.network})")
            continue
        if done.returncode != 0 or not succeeded(done.stdout):
            print(f"text3d register: {explain_failure(step, plan, done.returncode, done.stdout, done.stderr)}",
                  file=sys.stderr)
            return EXIT_FAILURE
        print(f"{'registered' if step == 'register' else f'staked {plan.stake_tao:g} TAO on'} "
              f"{plan.wallet_name}/{plan.wallet_hotkey} on netuid {plan.netuid} ({plan.network})")
    print(_next_steps(plan))
    return EXIT_OK


def _next_steps(plan: RegisterPlan) -> str:
    wallet = f"--wallet.name {plan.wallet_name} --wallet.hotkey {plan.wallet_hotkey}"
    if plan.wallet_path != Path(os.path.expanduser(WALLET_DEFAULT_PATH)).absolute():
        wallet += f" --wallet.path {plan.wallet_path}"
    chain = f"--netuid {plan.netuid} --subtensor.network {plan.network}"
    return (
        "next:\n"
        f"  check:      text3d doctor --role miner {chain} {wallet}\n"
        f"  miner:      text3d miner {chain} {wallet} --axon.port 8091\n"
        f"  validator:  text3d validator {chain} {wallet} --captioner http://127.0.0.1:8080"
        + ("" if plan.stake_tao else f"\n  (a validator needs stake first: text3d register {chain} {wallet} --stake 10)")
    )
