"""Wallets for the neurons: open one and refuse to start unregistered; create test wallets.

Both neurons need the same fail-fast check at start-up: a miner or validator whose
hotkey is not registered can do nothing useful, and saying so in one sentence beats
serving requests that every peer will refuse. ``ensure_wallet`` creates the keys of a
local or test wallet without passwords or prompts (``text3d devnet register --create-wallet``).
"""

from pathlib import Path
from typing import TYPE_CHECKING

from text3d.chain.base import ChainAdapter
from text3d.protocol.errors import ConfigError, HotkeyNotRegistered

if TYPE_CHECKING:
    import bittensor

__all__ = ["open_registered", "ensure_wallet"]


def open_registered(
    wallet_name: str, wallet_hotkey: str, wallet_path: str | Path, chain: ChainAdapter
) -> "bittensor.Wallet":
    """The bittensor 11 wallet ``wallet_path/wallet_name`` with hotkey ``wallet_hotkey``, its hotkey loaded.

    Only the hotkey is read: it is what the neurons sign with, and a neuron machine need
    not hold the coldkey. Raises ``ConfigError`` when the hotkey file is missing or
    unreadable, ``HotkeyNotRegistered`` when the hotkey holds no uid on ``chain.netuid``,
    and ``ChainUnavailable`` when the chain cannot be asked.
    """
    import bittensor
    from bittensor.keyfiles import KeyfileError

    wallet = bittensor.Wallet(name=wallet_name, hotkey=wallet_hotkey, path=str(wallet_path))
    try:
        hotkey = wallet.hotkey.ss58_address
    except (OSError, ValueError, KeyfileError) as exc:
        raise ConfigError(
            f"wallet {wallet_name}/{wallet_hotkey} under {wallet_path} has no readable hotkey ({exc}); create it with "
            f"`text3d devnet register --create-wallet` on the devnet or "
            f"`btcli wallet create -w {wallet_name} -H {wallet_hotkey}` on subtensor"
        ) from exc
    if chain.uid_of(hotkey) is None:
        raise HotkeyNotRegistered(
            f"hotkey {hotkey} ({wallet_name}/{wallet_hotkey}) is not registered on netuid {chain.netuid}; register it "
            f"first (`text3d devnet register` on the devnet, `btcli tx burned-register --netuid {chain.netuid}` on subtensor)"
        )
    return wallet


def ensure_wallet(wallet_name: str, wallet_hotkey: str, wallet_path: str | Path) -> "bittensor.Wallet":
    """The wallet, with any missing key created unencrypted and without prompts; never overwrites.

    A coldkey is created only when neither ``coldkey`` nor ``coldkeypub.txt`` exists, a
    hotkey only when its file is missing. Unencrypted keys are for the devnet and tests
    (anyone who reads the files can use them). Raises ``OSError`` when the folder is not
    writable.
    """
    import bittensor

    wallet = bittensor.Wallet(name=wallet_name, hotkey=wallet_hotkey, path=str(wallet_path))
    if not (wallet.coldkey_file.exists_on_device() or wallet.coldkeypub_file.exists_on_device()):
        wallet.create_new_coldkey(use_password=False, suppress=True, overwrite=False)
    if not wallet.hotkey_file.exists_on_device():
        wallet.create_new_hotkey(use_password=False, suppress=True, overwrite=False)
    return wallet
