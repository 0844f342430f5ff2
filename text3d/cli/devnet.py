"""``text3d devnet init|register|stake|show``: administer a local SQLite devnet by hand.

For people running miners and validators on one machine without ``text3d demo``::

    text3d devnet init --devnet.db chain.db --netuid 1 --block-time-s 1 --weights-rate-limit 5
    text3d devnet register --devnet.db chain.db --wallet.name miner1 --create-wallet
    text3d devnet stake --devnet.db chain.db --wallet.name validator --amount 1000
    text3d devnet show --devnet.db chain.db

then start the neurons with ``--subtensor.network devnet --devnet.db chain.db``.

Wallets are bittensor 11 wallets (the same files ``btcli`` reads); ``--create-wallet``
creates missing keys without passwords or prompts. Exit status: 0 on success, 78 for a
configuration problem (a bad flag value, a missing wallet, an existing database), 1 when
the devnet database cannot be used.
"""

import argparse
import sys

from text3d.common.argparsing import plain

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("devnet", help="administer a local SQLite devnet chain", description=plain(__doc__),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    init = actions.add_parser("init", help="create a devnet database")
    _db_arg(init)
    init.add_argument("--netuid", type=int, default=1, help="the subnet's uid (default: 1)")
    init.add_argument("--block-time-s", type=float, default=12.0, help="seconds per block")
    init.add_argument("--weights-rate-limit", type=int, default=100, help="blocks between two weight settings")
    init.add_argument("--tempo", type=int, default=360, help="blocks between two emissions (default: 360)")
    init.add_argument("--max-uids", type=int, default=256, help="most neurons the subnet holds (default: 256)")
    init.add_argument("--max-validators", type=int, default=64,
                      help="most neurons with a validator permit, by stake (default: 64)")
    init.add_argument("--min-validator-stake", type=float, default=0.0, help="TAO needed for a validator permit")
    init.add_argument("--weights-version", type=int, default=0, help="lowest version_key accepted")
    init.add_argument("--max-weight-limit", type=float, default=1.0,
                      help="largest share of a validator's weights one uid may get, in (0, 1]")
    init.add_argument("--min-allowed-weights", type=int, default=1, help="fewest non-zero weights one setting may carry")
    init.add_argument("--overwrite", action="store_true", help="replace an existing database")

    for name, help_text in (("register", "register a wallet's hotkey"), ("stake", "add stake to a wallet's hotkey")):
        action = actions.add_parser(name, help=help_text)
        _db_arg(action)
        action.add_argument("--wallet.name", dest="wallet_name", required=True, help="wallet (coldkey) name")
        action.add_argument("--wallet.hotkey", dest="wallet_hotkey", default="default",
                            help="hotkey name inside the wallet (default: default)")
        action.add_argument("--wallet.path", dest="wallet_path", default="~/.bittensor/wallets/",
                            help="folder holding the wallets (default: ~/.bittensor/wallets/)")
        if name == "register":
            action.add_argument("--create-wallet", action="store_true", help="create the wallet (no password) if missing")
        else:
            action.add_argument("--amount", type=float, required=True, help="TAO to add (negative removes)")

    show = actions.add_parser("show", help="print the subnet's neurons and weights")
    _db_arg(show)
    parser.set_defaults(run=run)


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devnet.db", dest="db", required=True, help="the devnet's SQLite file")


def run(args: argparse.Namespace) -> int:
    from text3d.chain.devnet import DevnetChain
    from text3d.protocol.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError, Text3dError

    try:
        if args.action == "init":
            chain = DevnetChain.create(
                args.db,
                args.netuid,
                overwrite=args.overwrite,
                block_time_s=args.block_time_s,
                weights_rate_limit=args.weights_rate_limit,
                tempo=args.tempo,
                max_uids=args.max_uids,
                max_validators=args.max_validators,
                min_validator_stake_tao=args.min_validator_stake,
                weights_version=args.weights_version,
                max_weight_limit=args.max_weight_limit,
                min_allowed_weights=args.min_allowed_weights,
            )
            print(f"created devnet netuid {chain.netuid} at {chain.db_path}")
            return EXIT_OK
        chain = DevnetChain.open(args.db)
        if args.action == "show":
            _show(chain)
            return EXIT_OK
        wallet = _wallet(args)
        hotkey = wallet.hotkey.ss58_address
        if args.action == "register":
            uid = chain.register(hotkey, wallet.coldkeypub.ss58_address)
            print(f"registered {args.wallet_name}/{args.wallet_hotkey} ({hotkey}) as uid {uid} on netuid {chain.netuid}")
        else:
            stake = chain.add_stake(hotkey, args.amount)
            print(f"{args.wallet_name}/{args.wallet_hotkey} ({hotkey}) now stakes {stake:g} TAO")
        return EXIT_OK
    except (ConfigError, FileExistsError, ValueError) as exc:  # HotkeyNotRegistered is a ConfigError
        print(f"text3d devnet: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (Text3dError, OSError) as exc:
        print(f"text3d devnet: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _wallet(args: argparse.Namespace):
    """The bittensor 11 wallet the flags name, both keys loaded (the devnet records the coldkey)."""
    import bittensor
    from bittensor.keyfiles import KeyfileError

    from text3d.ops.registration import ensure_wallet
    from text3d.protocol.errors import ConfigError

    if getattr(args, "create_wallet", False):
        wallet = ensure_wallet(args.wallet_name, args.wallet_hotkey, args.wallet_path)
    else:
        wallet = bittensor.Wallet(name=args.wallet_name, hotkey=args.wallet_hotkey, path=args.wallet_path)
    try:
        wallet.hotkey, wallet.coldkeypub  # noqa: B018 -- load both keys now, fail with one sentence
    except (OSError, ValueError, KeyfileError) as exc:
        hint = "pass --create-wallet to create it"
        if args.action != "register":
            hint = "create it with `text3d devnet register --create-wallet`"
        raise ConfigError(
            f"wallet {args.wallet_name}/{args.wallet_hotkey} under {args.wallet_path} cannot be read ({exc}); {hint}"
        ) from exc
    return wallet


def _show(chain) -> None:
    from rich.console import Console
    from rich.table import Table

    params = chain.params()
    weights = chain.weights()
    table = Table(title=f"devnet netuid {chain.netuid} at block {chain.block()} ({params.block_time_s:g} s/block)")
    for column in ("uid", "hotkey", "stake (TAO)", "permit", "axon", "last update", "weights set"):
        table.add_column(column)
    for neuron in chain.neurons():
        row = weights.get(neuron.uid, {})
        table.add_row(
            str(neuron.uid),
            neuron.hotkey,
            f"{neuron.stake:g}",
            "yes" if neuron.validator_permit else "",
            f"{neuron.axon_ip}:{neuron.axon_port}" if neuron.axon_port else "-",
            str(neuron.last_update or "-"),
            ", ".join(f"{uid}:{w:.3f}" for uid, w in sorted(row.items())) or "-",
        )
    Console().print(table)
