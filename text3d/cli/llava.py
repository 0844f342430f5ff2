"""``text3d llava``: run a local LLaVA captioning server (llama.cpp ``llama-server``).

    text3d llava --models tiny                 # tiny random pair, offline; for tests and demos
    text3d llava --download 7b                 # fetch LLaVA-1.5 7B gguf + mmproj, then serve
    text3d llava --models 13b -np 8 -c 16384   # serve a previously downloaded 13B
    text3d llava --model-path m.gguf --mmproj p.gguf
    text3d llava --models 7b --gpu-layers all  # every layer on the GPU (a CUDA build of llama-server)
    text3d llava --models 7b -- --flash-attn on --cache-type-k q8_0   # any other llama-server option
    text3d llava --models 7b --print-command   # the llama-server command line, without running it

The binary is, in order: ``$LLAMA_SERVER``, ``llama-server`` on PATH, else one built from
llama.cpp's source (once per machine: about 15 minutes on 2 cores; cached; for CUDA when a CUDA
toolkit and a GPU are there, else for the CPU). ``--gpu-layers`` is llama-server's ``-ngl``;
everything after ``--`` is handed to llama-server as written, except the options this command
sets itself (name those with this command's flags). The server listens on 127.0.0.1 and serves
the OpenAI-compatible API a validator's ``--captioner URL`` expects; match the validator's
``--captioner.concurrency`` to ``-np``. The command stays in the foreground until interrupted.

Exit status: 0 when stopped, 78 when the server cannot be set up (no binary, a missing or
wrong model: restarting will not help, so pm2 stops), 1 when the server failed at run time.
"""
# The library behind this command (binary discovery and build, downloads, the server process)
# is text3d.ops.llava; this module parses and calls only.

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from text3d.common.argparsing import plain
from text3d.ops.llava import (
    LLAVA15_CHAT_TEMPLATE,
    LLAVA_QUANTS,
    LLAVA_REPOS,
    LlamaServer,
    LlamaServerConfig,
    LlavaSetupError,
    download_llava,
    find_llama_server,
    tiny_llava_models,
)
from text3d.protocol.errors import EXIT_CONFIG

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("llava", help="run a local LLaVA captioning server (llama.cpp llama-server)",
                                   description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", choices=["tiny", *LLAVA_REPOS], default=None,
                        help="tiny: random test pair (offline); 7b/13b: downloaded LLaVA-1.5 (default 7b)")
    parser.add_argument("--download", choices=list(LLAVA_REPOS), default=None,
                        help="download LLaVA-1.5 of this size first (needs internet once), then serve it")
    parser.add_argument("--quant", choices=LLAVA_QUANTS, default="q4_k", help="language model quantisation")
    parser.add_argument("--model-path", dest="model", type=Path, metavar="GGUF",
                        help="serve this language model gguf file (with --mmproj)")
    parser.add_argument("--mmproj", type=Path, metavar="GGUF", help="serve this vision projector gguf (with --model-path)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    parser.add_argument("-np", "--slots", type=int, default=4, help="parallel slots (match captioner.concurrency)")
    parser.add_argument("-c", "--context", dest="context_tokens", type=int, default=None,
                        help="total context tokens shared by all slots (default 2048 per slot)")
    parser.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: llama-server's choice)")
    parser.add_argument("--chat-template", choices=["llava-1.5", "model"], default="llava-1.5",
                        help="llava-1.5: the Vicuna USER/ASSISTANT format (default); model: the gguf's own template")
    parser.add_argument("-ngl", "--gpu-layers", dest="gpu_layers", type=_gpu_layers, default=None, metavar="N|all|auto",
                        help="layers offloaded to the GPU (llama-server -ngl; needs a CUDA build; default: the server's, "
                             "auto)")
    parser.add_argument("--ready-timeout-s", type=float, default=300.0,
                        help="seconds to wait for the server to load the model (default: 300)")
    parser.add_argument("--no-serve", action="store_true", help="only fetch the binary and models, print their paths")
    parser.add_argument("--print-command", action="store_true", help="print the llama-server command line and exit")
    parser.add_argument("server_args", nargs="*", metavar="-- LLAMA-SERVER OPTIONS",
                        help="after --: other llama-server options, passed as written (e.g. -- --flash-attn on)")
    parser.set_defaults(run=run)


# Options this command sets itself: passed after -- they would fight with its own flags.
_MANAGED = {"-m": "--model-path", "--model": "--model-path", "--mmproj": "--mmproj", "--host": "--host",
            "--port": "--port", "-np": "-np", "--parallel": "-np", "-c": "-c", "--ctx-size": "-c", "-t": "-t",
            "--threads": "-t", "-ngl": "--gpu-layers", "--gpu-layers": "--gpu-layers", "--n-gpu-layers": "--gpu-layers",
            "--chat-template": "--chat-template", "--jinja": "--chat-template"}


def _gpu_layers(value: str) -> str:
    if value in ("all", "auto") or (value.isdigit() and int(value) <= 100_000):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not a number of layers, all or auto")


def server_options(args: argparse.Namespace) -> tuple[str, ...]:
    """The options after ``--``; ``LlavaSetupError`` for a stray word or an option this command sets itself."""
    extra = tuple(args.server_args or ())
    if extra and not extra[0].startswith("-"):
        raise LlavaSetupError(f"unexpected argument {extra[0]!r}: llama-server options go after -- "
                              "(text3d llava ... -- --flash-attn on)")
    for option in extra:
        name = option.split("=", 1)[0]
        if name in _MANAGED:
            raise LlavaSetupError(f"{name} after -- is set by text3d llava itself: use {_MANAGED[name]}")
    return extra


def _resolve_models(args: argparse.Namespace, binary: Path | None = None) -> tuple[Path, Path]:
    if args.model or args.mmproj:
        if not (args.model and args.mmproj):
            raise LlavaSetupError("--model-path and --mmproj go together")
        for path in (args.model, args.mmproj):
            if not path.is_file():
                raise LlavaSetupError(f"{path} does not exist")
        return args.model, args.mmproj
    if args.download:
        if args.models not in (None, args.download):
            raise LlavaSetupError(f"--download {args.download} contradicts --models {args.models}")
        return download_llava(args.download, args.quant)
    models = args.models or "7b"
    if models == "tiny":
        return tiny_llava_models(binary or find_llama_server())
    try:
        return download_llava(models, args.quant)
    except LlavaSetupError as exc:
        raise LlavaSetupError(f"{exc} (or use --models tiny for the offline test model)") from exc


def run(args: argparse.Namespace) -> int:
    from text3d.ops.llava import build_backend

    try:
        extra = server_options(args)
        if args.download or args.models in LLAVA_REPOS:  # fail fast on downloads before any build
            model_path, mmproj_path = _resolve_models(args)
            binary = find_llama_server()
        else:
            binary = find_llama_server()
            model_path, mmproj_path = _resolve_models(args, binary)
        backend = build_backend(binary)
        if args.no_serve:
            print(f"llama-server: {binary} ({backend} build)\nmodel: {model_path}\nmmproj: {mmproj_path}")
            return 0
        config = LlamaServerConfig(binary=binary, model_path=model_path, mmproj_path=mmproj_path, host=args.host,
                                   port=args.port, slots=args.slots, context_tokens=args.context_tokens,
                                   threads=args.threads, gpu_layers=args.gpu_layers, extra_args=extra,
                                   chat_template=LLAVA15_CHAT_TEMPLATE if args.chat_template == "llava-1.5" else None)
        if args.print_command:
            import shlex

            print(shlex.join(config.argv()))
            return 0
        if args.gpu_layers not in (None, "0") and backend == "cpu":
            print(f"text3d llava: {binary} is a CPU build: --gpu-layers {args.gpu_layers} offloads nothing. Build "
                  "for CUDA (a toolkit and a GPU, or TEXT3D_LLAMA_BACKEND=cuda with text3d/ops/llava/"
                  "build_llama_server.sh) or set LLAMA_SERVER to a CUDA build.", file=sys.stderr)
        server = LlamaServer(config).start()
    except LlavaSetupError as exc:  # no binary, no model, bad paths: restarting cannot fix it (pm2 stops on 78)
        print(f"text3d llava: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    stop = {"now": False}

    def _on_signal(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        server.wait_until_ready(args.ready_timeout_s)
        print(f"llava server ready at {server.base_url} ({backend} build of llama-server, log: {server.log_path}); "
              f"captioner.base_url={server.base_url} captioner.concurrency={args.slots}", flush=True)
        while not stop["now"] and server.is_running():
            time.sleep(0.5)
        if not stop["now"]:
            print(f"text3d llava: llama-server exited unexpectedly:\n{server.log_tail()}", file=sys.stderr)
            return 1
        return 0
    except LlavaSetupError as exc:
        print(f"text3d llava: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
