"""``text3d demo``: the whole subnet on this machine, on a local SQLite devnet.

    text3d demo --models tiny            # offline random-weight models, a minute or two on CPU
    text3d demo --models real            # Shap-E, CLIP, mpnet, LLaVA-1.5 (GPU recommended)
    text3d demo --workdir ./demo-run     # keep the chain, wallets, logs and reports there
    text3d demo --models tiny --keep-running   # then leave it all up: use the gateway's page

Creates a devnet and password-less wallets (a validator, two miners), starts the LLaVA
captioning server, the miners and the organic gateway as separate processes on 127.0.0.1
(printing ``gateway: http://127.0.0.1:PORT/`` and ``gateway key: KEY``, each on its own line),
runs the validator -- also the gateway's worker -- for a few steps until its weights are on
the devnet while one prompt goes through the gateway, then prints the leaderboard and the
path of an HTML page with the last step's views, captions and scores.

Exit status: 0 done (also after Ctrl-C with --keep-running), 78 for a setting to change
(missing real weights, a bad value), 1 when a neuron failed (its log is named), 130 when
interrupted.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from text3d.common.argparsing import plain
from text3d.protocol.errors import EXIT_CONFIG

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run a validator and two miners on a local devnet",
                                   description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", choices=("real", "tiny"), default="real",
                        help="real = production weights; tiny = offline random-weight models (fast)")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for chain, wallets, logs (default: a temp folder)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (tiny models default to cpu)")
    parser.add_argument("--validator-steps", type=int, default=3,
                        help="validator steps to run at least (more until weights are set; default: 3)")
    parser.add_argument("--no-captioner", action="store_true", help="skip the LLaVA server (CLIP-only scores)")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="limit for the validator's steps")
    parser.add_argument("--debug", action="store_true", help="debug logging in the neurons")
    parser.add_argument("--keep-running", action="store_true",
                        help="after the results, keep the subnet and the gateway up until Ctrl-C")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from text3d.ops.llava import LlavaSetupError
    from text3d.demo.processes import ChildFailed
    from text3d.demo.run import DemoConfig, run_demo
    from text3d.reward.errors import ChainUnavailable

    from text3d.protocol.errors import ConfigError

    console = Console(stderr=False)
    if args.validator_steps < 1:
        print("text3d demo: --validator-steps must be at least 1.", file=sys.stderr)
        return EXIT_CONFIG
    if args.models == "real":
        from text3d.demo.preflight import missing_real_models

        missing = missing_real_models()
        if missing:
            print("text3d demo: the real model weights are not on this machine; get them, or run "
                  "`text3d demo --models tiny` (offline random-weight models). Missing:\n  - " + "\n  - ".join(missing),
                  file=sys.stderr)
            return EXIT_CONFIG
    try:
        from text3d.common.device import resolve_device

        resolve_device(args.device)  # --device cuda without a GPU: one sentence here, not three child logs
    except ConfigError as exc:
        print(f"text3d demo: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="text3d-demo-"))
    config = DemoConfig(workdir=Path(workdir), models=args.models, device=args.device, steps=args.validator_steps,
                        captioner=not args.no_captioner, run_timeout_s=args.timeout_s, debug=args.debug,
                        keep_running=args.keep_running)
    console.print(f"text3d demo ({args.models} models) in {config.workdir}")
    try:
        run_demo(config, console)
    except KeyboardInterrupt:
        print(f"text3d demo: interrupted; all neurons stopped. Logs: {config.workdir / 'logs'}", file=sys.stderr)
        return 130
    except ConfigError as exc:  # e.g. --device cuda without a GPU
        print(f"text3d demo: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (ChildFailed, LlavaSetupError, ChainUnavailable, OSError) as exc:
        print(f"text3d demo failed: {exc}\nLogs: {config.workdir / 'logs'}", file=sys.stderr)
        return 1
    return 0
