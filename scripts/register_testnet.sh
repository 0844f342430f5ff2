#!/usr/bin/env bash
# Create (if needed) a miner and a validator wallet and register both on Bittensor's
# testnet subnet NETUID with bittensor 11's own `btcli` (installed by `make setup`).
#
#   scripts/register_testnet.sh NETUID [MINER_WALLET] [VALIDATOR_WALLET]
#
# Registration burns testnet TAO: get some from the Bittensor community faucet first
# (`btcli wallet balance -w NAME --network test` shows what you have). The validator
# also needs stake to earn a validator permit:
#   btcli tx add-stake --network test --netuid NETUID -w VALIDATOR --hotkey default --amount 10
set -euo pipefail

usage() { echo "usage: $0 NETUID [MINER_WALLET] [VALIDATOR_WALLET]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 3 ]] || usage
NETUID="$1"
[[ "$NETUID" =~ ^[0-9]+$ ]] || usage
MINER="${2:-text3d-miner}"
VALIDATOR="${3:-text3d-validator}"
WALLET_PATH="${WALLET_PATH:-$HOME/.bittensor/wallets}"
BTCLI="${BTCLI:-$(dirname "$0")/../.venv/bin/btcli}"
command -v "$BTCLI" >/dev/null 2>&1 || BTCLI=btcli

for name in "$MINER" "$VALIDATOR"; do
  if [[ ! -f "$WALLET_PATH/$name/coldkey" ]]; then
    echo "Creating wallet $name (write down the mnemonics btcli prints; keep a password for mainnet)"
    "$BTCLI" wallet create -w "$name" -H default --wallet-path "$WALLET_PATH"
  fi
done

for name in "$MINER" "$VALIDATOR"; do
  echo "Registering $name/default on testnet subnet $NETUID"
  "$BTCLI" tx burned-register --netuid "$NETUID" --network test -w "$name" -H default --wallet-path "$WALLET_PATH"
done

cat <<MSG
Done. Next:
  stake the validator:  $BTCLI tx add-stake --network test --netuid $NETUID -w $VALIDATOR --hotkey default --amount 10
  run the miner:        .venv/bin/text3d miner --netuid $NETUID --subtensor.network test --wallet.name $MINER --wallet.hotkey default --axon.port 8091
  run the validator:    .venv/bin/text3d validator --netuid $NETUID --subtensor.network test --wallet.name $VALIDATOR --wallet.hotkey default --captioner http://127.0.0.1:8080
MSG
