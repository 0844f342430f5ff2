"""A dishonest miner for the end-to-end test: a real, signed Axon that answers every
``TextTo3D`` request with random bytes labelled as a Draco mesh.

    python tests/garbage_miner.py --devnet.db chain.db --wallet.name garbage \
        --wallet.path wallets --axon.port 8123 [--netuid 1] [--seed 0]

It announces its axon on the devnet like an honest miner and serves until SIGTERM.
The validator must score it 0 (a miner fault), never crash on it.
"""

import argparse
import base64
import random
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bittensor as bt  # noqa: E402

from neurons.chain.devnet import DevnetChain  # noqa: E402
from protocol.synapse import TextTo3D  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devnet.db", dest="db", required=True)
    parser.add_argument("--netuid", type=int, default=1)
    parser.add_argument("--wallet.name", dest="wallet_name", required=True)
    parser.add_argument("--wallet.path", dest="wallet_path", required=True)
    parser.add_argument("--axon.port", dest="port", type=int, required=True)
    parser.add_argument("--payload-bytes", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    lock = threading.Lock()  # the axon answers from worker threads

    def forward(synapse: TextTo3D) -> TextTo3D:
        with lock:
            garbage = rng.randbytes(args.payload_bytes)
        synapse.mesh_b64 = base64.b64encode(garbage).decode("ascii")
        synapse.mesh_format = "draco"
        synapse.generation_time_s = 0.01
        return synapse

    wallet = bt.Wallet(name=args.wallet_name, hotkey="default", path=args.wallet_path)
    chain = DevnetChain.open(args.db)
    if chain.netuid != args.netuid or chain.uid_of(wallet.hotkey.ss58_address) is None:
        print(f"garbage miner: {args.wallet_name} is not registered on netuid {args.netuid}", file=sys.stderr)
        return 2
    axon = bt.Axon(wallet=wallet, ip="127.0.0.1", port=args.port, external_ip="127.0.0.1", external_port=args.port)
    axon.attach(forward_fn=forward)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    axon.start()
    chain.serve_axon(wallet, "127.0.0.1", args.port)
    print(f"garbage miner serving on 127.0.0.1:{args.port}", flush=True)
    stop.wait()
    axon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
