#!/usr/bin/env bash
# Run the media tests against the PyAV and Pillow that the Lambda layers pin
# (infra/media-layer-requirements.txt, infra/layer-requirements.txt) instead of the virtualenv's
# newer ones: the wheels for this machine, put in front of the virtualenv's packages, with numpy
# hidden (the layers ship none). Run it after changing handlers/media or a pin.
#
#   infra/check-media-layer.sh                      # the media tests
#   infra/check-media-layer.sh tests/unit/test_media_assemble.py -x
#
# It downloads two wheels from PyPI, so the test suite never runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
if [ ! -x "$PYTHON" ]; then
    echo "error: $PYTHON is not there; make the virtualenv first (make venv) or set PYTHON" >&2
    exit 1
fi
pins=$(grep -hE '^(av|pillow)==' infra/media-layer-requirements.txt infra/layer-requirements.txt)
if [ "$(echo "$pins" | wc -l)" -ne 2 ]; then
    echo "error: expected av==… in infra/media-layer-requirements.txt and pillow==… in" \
         "infra/layer-requirements.txt, found: $pins" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck disable=SC2086  # one argument per pin
"$PYTHON" -m pip install --disable-pip-version-check --no-input --quiet --root-user-action=ignore \
    --only-binary=:all: --no-deps --target "$work/site" $pins
cat > "$work/site/sitecustomize.py" <<'EOF'
import sys


class _NotInLayers:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "numpy":
            raise ModuleNotFoundError(f"{name} is not in the Lambda layers", name=name)


sys.meta_path.insert(0, _NotInLayers())
EOF

if [ $# -eq 0 ]; then
    set -- tests/unit/test_media*.py tests/functional/test_output_media.py tests/functional/test_storyboards.py
fi
PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - <<'EOF'
import av, PIL
print(f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}), Pillow {PIL.__version__}, from {av.__file__}")
EOF
PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m pytest -q -p no:cacheprovider "$@"
