#!/usr/bin/env bash
# Install the pages' JavaScript from the npm registry into $TEXT3D_CACHE/web, once per machine:
# the 3D viewer (Google's <model-viewer>, which bundles three.js) and Swagger UI (the gateway's
# API docs at /docs). Pages the project writes copy the viewer beside themselves (reports,
# `text3d score`, search results) or the gateway serves both: no page ever loads a script from
# a CDN. npm checks the registry's integrity hashes.
# Idempotent: a second run finds the pinned version and does nothing.
#
# Env: TEXT3D_CACHE (default ~/.cache/text3d), NPM (default npm).
set -euo pipefail

VERSION="${MODEL_VIEWER_VERSION:-4.4.0}"
SWAGGER_VERSION="${SWAGGER_UI_VERSION:-5.35.0}"
PREFIX="${TEXT3D_CACHE:-$HOME/.cache/text3d}/web"
FILE="$PREFIX/node_modules/@google/model-viewer/dist/model-viewer-umd.min.js"
SWAGGER="$PREFIX/node_modules/swagger-ui-dist/swagger-ui-bundle.js"
STAMP="$PREFIX/.model-viewer-$VERSION-swagger-$SWAGGER_VERSION"

if [[ -f "$FILE" && -f "$SWAGGER" && -f "$STAMP" ]]; then
  echo "$FILE"; exit 0
fi
command -v "${NPM:-npm}" >/dev/null || { echo "fetch_viewer: npm not found: install Node.js (apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$PREFIX"
echo "fetch_viewer: installing @google/model-viewer@$VERSION and swagger-ui-dist@$SWAGGER_VERSION from the npm registry into $PREFIX" >&2
"${NPM:-npm}" install --silent --no-save --no-audit --no-fund --ignore-scripts --prefix "$PREFIX" \
  "@google/model-viewer@$VERSION" "swagger-ui-dist@$SWAGGER_VERSION" >&2
for f in "$FILE" "$SWAGGER"; do
  [[ -f "$f" ]] || { echo "fetch_viewer: $f missing after npm install" >&2; exit 1; }
done
rm -f "$PREFIX"/.model-viewer-*
touch "$STAMP"
echo "$FILE"
