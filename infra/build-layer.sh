#!/usr/bin/env bash
# Build the Lambda layers of serverless.yml (`layers:`): the runtime dependencies of the `handlers`
# package as wheels for the Lambda platform (CPython 3.11 on arm64, Amazon Linux 2).
#
#   infra/build-layer.sh          # both layers; then: npx --prefix infra osls deploy --stage prod
#   infra/build-layer.sh deps     # .layer/deps/python  from infra/layer-requirements.txt (every function)
#   infra/build-layer.sh media    # .layer/media/python from infra/media-layer-requirements.txt (PyAV;
#                                 # only the functions that read or join videos, see serverless.yml)
#
# Lambda allows 250 MB unzipped for a function and all its layers together. After building, the
# script adds up what the largest function unpacks (its package, handlers/, plus both layers) and
# fails if that is over the limit (LIMIT_BYTES, default 262144000 = 250 MiB).
#
# Needs python3 with pip and access to PyPI; works on any OS/CPU (nothing is compiled).
# It downloads wheels, so the test suite never runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LAYERS_DIR=${LAYERS_DIR:-.layer}
LIMIT_BYTES=${LIMIT_BYTES:-262144000}

usage() {
    echo "usage: infra/build-layer.sh [deps] [media]   (no argument: both)" >&2
    exit 2
}

requirements_of() {
    case "$1" in
        deps) echo infra/layer-requirements.txt ;;
        media) echo infra/media-layer-requirements.txt ;;
        *) echo "error: unknown layer '$1'; the layers are: deps, media" >&2; usage ;;
    esac
}

# Bytes the files under the given paths take unzipped (what Lambda counts), leaving out bytecode.
unzipped_bytes() {
    "$PYTHON" - "$@" <<'EOF'
import os, sys
total = 0
for top in sys.argv[1:]:
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        total += sum(os.lstat(os.path.join(folder, f)).st_size for f in files if not f.endswith(".pyc"))
print(total)
EOF
}

mib() {
    "$PYTHON" -c "import sys; print(f'{int(sys.argv[1]) / 2**20:.1f} MiB')" "$1"
}

build() {
    local layer=$1 requirements target
    requirements=$(requirements_of "$layer")
    target="$LAYERS_DIR/$layer/python"
    rm -rf "${LAYERS_DIR:?}/$layer"
    mkdir -p "$target"
    # Every layer resolves shared dependencies to the versions `deps` pins.
    "$PYTHON" -m pip install \
        --disable-pip-version-check --no-input --quiet \
        --no-warn-conflicts --root-user-action=ignore \
        --platform manylinux2014_aarch64 \
        --implementation cp --python-version 3.11 --abi cp311 \
        --only-binary=:all: --no-compile \
        --constraint infra/layer-requirements.txt \
        --target "$target" \
        --requirement "$requirements"

    # Nothing in a layer needs these at run time.
    find "$target" -type d -name '__pycache__' -prune -exec rm -rf {} +
    find "$target" -type d \( -name tests -o -name test \) -path '*/PIL/*' -prune -exec rm -rf {} + 2>/dev/null || true
    rm -rf "$target/bin"
    if [ -d "$target/av" ]; then  # PyAV's Cython sources and type stubs; its FFmpeg is in .so files, kept whole
        find "$target/av" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' -o -name '*.c' -o -name '*.h' \) -delete
    fi
    if [ "$layer" = media ]; then
        drop_what_deps_has
    fi
    echo "layer $layer: $target, $(mib "$(unzipped_bytes "$target")") unzipped"
}

# A function that has both layers would find a package twice: keep `deps`'s copy only.
drop_what_deps_has() {
    local media="$LAYERS_DIR/media/python" deps="$LAYERS_DIR/deps/python" entry
    if [ ! -d "$deps" ]; then
        echo "error: $deps is missing; build the deps layer first (infra/build-layer.sh deps media)" >&2
        exit 1
    fi
    for entry in "$media"/*; do
        if [ -e "$deps/$(basename "$entry")" ]; then
            echo "layer media: dropping $(basename "$entry"), which the deps layer has"
            rm -rf "$entry"
        fi
    done
}

if [ $# -eq 0 ]; then
    layers=(deps media)
else
    layers=("$@")
fi
for layer in "${layers[@]}"; do
    requirements_of "$layer" >/dev/null
done
for layer in deps media; do  # deps first: media is trimmed against it
    for wanted in "${layers[@]}"; do
        if [ "$wanted" = "$layer" ]; then
            build "$layer"
            break
        fi
    done
done

# The largest function (ingest, reconcile) unpacks handlers/ and both layers.
for layer in deps media; do
    if [ ! -d "$LAYERS_DIR/$layer/python" ]; then
        echo "note: $LAYERS_DIR/$layer is not built yet, so the size check below leaves it out" >&2
    fi
done
function_bytes=$(unzipped_bytes handlers)
deps_bytes=$(unzipped_bytes "$LAYERS_DIR/deps")
media_bytes=$(unzipped_bytes "$LAYERS_DIR/media")
total=$((function_bytes + deps_bytes + media_bytes))
echo "function package (handlers/) $(mib "$function_bytes") + deps $(mib "$deps_bytes") + media $(mib "$media_bytes")" \
     "= $(mib "$total"); the limit for a function and its layers is $(mib "$LIMIT_BYTES")"
if [ "$total" -gt "$LIMIT_BYTES" ]; then
    echo "error: a function with both layers would unpack $(mib "$total") ($total bytes), over the limit of" \
         "$(mib "$LIMIT_BYTES") ($LIMIT_BYTES bytes; Lambda allows 250 MiB for a function and its layers);" \
         "see docs/deploy.md, \"Layers\"" >&2
    exit 1
fi
