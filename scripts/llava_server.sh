#!/usr/bin/env bash
# Start a local LLaVA captioning server (llama.cpp llama-server) on 127.0.0.1.
# A thin wrapper around `text3d llava`; every option passes through, e.g.
#   scripts/llava_server.sh --models tiny --port 8080 -np 4
#   scripts/llava_server.sh --download 7b -np 8 -c 16384
# See `text3d llava --help`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$python" ]] || python="python3"
cd "$root"
exec "$python" -m text3d.cli.main llava "$@"
