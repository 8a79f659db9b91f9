"""Every Lambda entry imports with only what its layers ship, as on AWS (tests/support/layers.py).

The ``deps`` layer goes to every function; the ``media`` layer (PyAV) only to the functions that read or
join videos. Each check runs in a fresh interpreter whose import system refuses the packages the
function's layers leave out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import cold_start
from bench._common import run_python
from handlers.sandbox.media import render_video
from tests.support.layers import functions, hidden_for, layer_packages, runtime_dependencies

FUNCTIONS = functions()
WITH_MEDIA = sorted(name for name, f in FUNCTIONS.items() if "media" in f.layers)
WITHOUT_MEDIA = sorted(name for name, f in FUNCTIONS.items() if "media" not in f.layers)

_HIDE = ("import sys\n"
         "class _NotInLayers:\n"
         "    def find_spec(self, name, path=None, target=None):\n"
         "        if name.partition('.')[0] in {hidden!r}:\n"
         "            raise ModuleNotFoundError(f'{{name}} is not in this function\\'s layers', name=name)\n"
         "sys.meta_path.insert(0, _NotInLayers())\n")


def run_as(function: str, code: str, *args: str) -> dict[str, object]:
    """Run ``code`` (which prints one JSON object) after importing ``function``'s entry module, with only its
    layers' packages importable."""
    entry = FUNCTIONS[function]
    prelude = _HIDE.format(hidden=sorted(hidden_for(entry)))
    script = f"{prelude}import importlib, json\nimportlib.import_module({entry.module!r})\n{code}"
    done = run_python(["-c", script, *args], timeout=120)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layer") / "clip.mp4"
    path.write_bytes(render_video(seconds=1, width=160, height=120, audio=True))
    return path


@pytest.mark.parametrize("module", cold_start.entry_modules())
def test_each_entry_imports_without_the_packages_the_deps_layer_leaves_out(module: str) -> None:
    """PyAV stays out of every entry's import, even where the media layer has it (the cold start bench's view)."""
    hidden = cold_start.not_in_layer()
    assert "av" in hidden
    milliseconds, _ = cold_start.sample(module, hidden)  # raises if the import fails in a fresh interpreter
    assert milliseconds > 0


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_imports_with_only_its_layers_and_loads_no_media_library(function: str) -> None:
    loaded = run_as(function, "print(json.dumps({n: n in sys.modules for n in ('av', 'PIL')}))")
    assert loaded == {"av": False, "PIL": False}


def test_the_media_layer_goes_to_ingest_only_and_deps_to_every_function() -> None:
    """ingest reads each copied video and runs ready storyboards (joining their shots) from their assembly
    messages; a submit or a reconciler pass that finds a storyboard ready only sends that message. No other
    function reads a video."""
    assert WITH_MEDIA == ["ingest"]
    assert all(f.layers[0] == "deps" for f in FUNCTIONS.values()), {n: f.layers for n, f in FUNCTIONS.items()}


def test_the_media_layer_ships_pyav_and_nothing_the_deps_layer_ships() -> None:
    deps, media = layer_packages("deps"), layer_packages("media")
    assert "av" in media and "av" not in deps
    assert media & deps == set()
    assert media <= runtime_dependencies(), "the media layer ships a package the project does not depend on"


@pytest.mark.parametrize("function", WITH_MEDIA)
def test_a_function_with_the_media_layer_reads_pictures_and_joins_videos(function: str, clip: Path) -> None:
    code = ("import pathlib, sys\n"
            "from handlers.usecases.media import media_reader_available\n"
            "from handlers.media.facts import read_facts\n"
            "from handlers.media.frames import extract_frames\n"
            "from handlers.media.assemble import assemble\n"
            "clip = pathlib.Path(sys.argv[1])\n"
            "facts, frames = read_facts(clip), extract_frames(clip)\n"
            "joined = assemble([clip, clip], clip.with_name(f'joined-{sys.argv[2]}.mp4'))\n"
            "print(json.dumps({'available': media_reader_available(), 'duration': facts.duration,\n"
            "                  'poster': frames.poster[:3].hex(), 'method': joined.method,\n"
            "                  'joined': joined.facts.duration}))\n")
    result = run_as(function, code, str(clip), function)
    assert result["available"] is True
    assert result["duration"] == pytest.approx(1.0, abs=1 / 24)
    assert result["poster"] == "ffd8ff"  # a JPEG
    assert result["method"] == "remux" and result["joined"] == pytest.approx(2.0, abs=2 / 24)


@pytest.mark.parametrize("function", WITHOUT_MEDIA)
def test_a_function_without_the_media_layer_knows_it_cannot_read_videos(function: str, clip: Path) -> None:
    """The use cases ask ``media_reader_available`` (and catch ImportError) to publish unread or fail clearly."""
    code = ("import sys\n"
            "from handlers.usecases.media import media_reader_available\n"
            "from handlers.media.facts import read_facts\n"
            "try:\n"
            "    read_facts(sys.argv[1])\n"
            "    missing = None\n"
            "except ImportError as exc:\n"
            "    missing = exc.name\n"
            "print(json.dumps({'available': media_reader_available(), 'missing': missing}))\n")
    assert run_as(function, code, str(clip)) == {"available": False, "missing": "av"}


@pytest.mark.parametrize("module", cold_start.entry_modules())
def test_an_entry_keeps_rich_out_of_structlog_even_where_rich_is_installed(module: str) -> None:
    """A package built with the CLI's dependencies carries rich; a Lambda entry still does not load it (its logs are
    JSON lines), and a later ``import rich`` in the same process works."""
    script = (f"import importlib, json, sys\nimportlib.import_module({module!r})\n"
              "loaded = 'rich' in sys.modules\nimport structlog.dev, rich.console\n"
              "print(json.dumps({'loaded': loaded, 'dev_sees_rich': structlog.dev.rich is not None}))")
    done = run_python(["-c", script], timeout=120)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"loaded": False, "dev_sees_rich": False}
