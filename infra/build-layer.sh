#!/usr/bin/env bash
# Build the `deps` Lambda layer (serverless.yml `layers.deps.path: .layer`):
# the runtime dependencies of the `handlers` package as wheels for the Lambda platform
# (CPython 3.11 on arm64, Amazon Linux 2), in .layer/python/.
#
#   infra/build-layer.sh            # then: npx --prefix infra osls deploy --stage prod
#
# Needs python3 with pip and access to PyPI; works on any OS/CPU (nothing is compiled).
# It downloads wheels, so the test suite never runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LAYER_DIR=${LAYER_DIR:-.layer}
REQUIREMENTS=infra/layer-requirements.txt
# Lambda's limit is 250 MB unzipped for function + layers together.
LIMIT_MB=${LIMIT_MB:-200}

rm -rf "$LAYER_DIR"
mkdir -p "$LAYER_DIR/python"

"$PYTHON" -m pip install \
    --disable-pip-version-check --no-input --quiet \
    --no-warn-conflicts --root-user-action=ignore \
    --platform manylinux2014_aarch64 \
    --implementation cp --python-version 3.11 --abi cp311 \
    --only-binary=:all: --no-compile \
    --target "$LAYER_DIR/python" \
    --requirement "$REQUIREMENTS"

# Nothing in the layer needs these at run time.
find "$LAYER_DIR/python" -type d -name '__pycache__' -prune -exec rm -rf {} +
find "$LAYER_DIR/python" -type d \( -name tests -o -name test \) -path '*/PIL/*' -prune -exec rm -rf {} + 2>/dev/null || true
rm -rf "$LAYER_DIR/python/bin"

size_mb=$(du -sm "$LAYER_DIR" | cut -f1)
echo "layer: $LAYER_DIR/python, ${size_mb} MB unzipped"
if [ "$size_mb" -gt "$LIMIT_MB" ]; then
    echo "error: the layer is over ${LIMIT_MB} MB; Lambda allows 250 MB for code and layers together" >&2
    exit 1
fi
