"""A dishonest miner for the end-to-end test: a real HTTP server on the miner's route that
answers every request with random bytes labelled as a Draco mesh.

    python tests/garbage_miner.py --devnet.db chain.db --wallet.name garbage \\
        --wallet.path wallets --axon.port 8123 [--netuid 1] [--seed 0]

It announces its address on the devnet like an honest miner and serves until SIGTERM.
It does not bother to check signatures (a dishonest miner may not): the validator must
score it 0 (a miner fault), never crash on it.
"""

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bittensor as bt  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.responses import Response  # noqa: E402

from text3d.chain.devnet import DevnetChain  # noqa: E402
from text3d.protocol.mesh_codec import MeshFormat  # noqa: E402
from text3d.protocol.wire import ROUTE, TextTo3DResponse  # noqa: E402


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
    wallet = bt.Wallet(name=args.wallet_name, hotkey="default", path=args.wallet_path)
    chain = DevnetChain.open(args.db)
    if chain.netuid != args.netuid or chain.uid_of(wallet.hotkey.ss58_address) is None:
        print(f"garbage miner: {args.wallet_name} is not registered on netuid {args.netuid}", file=sys.stderr)
        return 2
    app = FastAPI()

    @app.post(ROUTE)
    async def answer() -> Response:
        garbage = TextTo3DResponse(payload=rng.randbytes(args.payload_bytes), format=MeshFormat.DRACO, generation_time_s=0.01)
        return Response(garbage.payload, headers=garbage.headers())

    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    chain.serve_axon(wallet, "127.0.0.1", args.port)
    print(f"garbage miner serving on 127.0.0.1:{args.port}", flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
