"""Where PyAV and Pillow are not installed (the Lambda layer leaves PyAV out), a copied video is published
without media facts, checks or pictures, and a result whose first bytes are not an MP4's still fails the job.

Each case runs in a fresh interpreter whose import system refuses ``av`` and ``PIL``, as the cold start
benchmark does for the layer's view."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from handlers.usecases.media import UNPLAYABLE_ATTEMPTS
from tests.conftest import ROOT
from tests.functional.conftest import VIDEO
from tests.support.clips import HTML_PAGE

_SCRIPT = """
import json, sys
class _Refused:
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in {'av', 'PIL'}:
            raise ModuleNotFoundError(f'{name} is not installed here', name=name)
sys.meta_path.insert(0, _Refused())
from pathlib import Path
from handlers.base.errors import DownloadFailed
from handlers.usecases import ingest, submit
from tests.support.fakes import FakeProvider, local_relay
from tests.support.media_server import MediaServer

folder, body = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()
with MediaServer() as server:
    server.add('/video.mp4', body, content_type='video/mp4')
    provider = FakeProvider(results=[server.url('/video.mp4')])
    relay = local_relay(folder, provider, EVOLINK_BASE_URL=server.url(''))
    job = submit(relay, {'model': 'seedance-2.0-text-to-video', 'prompt': 'p', 'duration': 4})
    provider.finish(job.task_id)
    for _ in range(6):
        try:
            job = ingest(relay, job.id, worker='test')
        except DownloadFailed:
            continue
        if job.terminal:
            break
    relay.close()
print(json.dumps({'status': job.status.value, 'error': job.error, 'outputs': [o.as_dict() for o in job.outputs],
                  'loaded': sorted(name for name in ('av', 'PIL') if name in sys.modules)}))
"""


def run_without_pyav(tmp_path: Path, body: bytes) -> dict[str, Any]:
    result = tmp_path / "result.bin"
    result.write_bytes(body)
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "relay"), str(result)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.timeout(180)
def test_a_video_is_published_without_facts_checks_or_pictures(tmp_path: Path) -> None:
    answer = run_without_pyav(tmp_path, VIDEO)
    [output] = answer["outputs"]
    assert answer["status"] == "published" and answer["loaded"] == []
    assert (output["media"], output["checks"], output["frames"], output["size"]) == (None, [], {}, len(VIDEO))


@pytest.mark.timeout(180)
def test_a_result_that_is_no_mp4_still_fails_the_job(tmp_path: Path) -> None:
    answer = run_without_pyav(tmp_path, HTML_PAGE)
    assert answer["status"] == "failed" and answer["outputs"] == []
    assert answer["error"]["code"] == "unplayable_output"
    assert f"{UNPLAYABLE_ATTEMPTS} of {UNPLAYABLE_ATTEMPTS}" in answer["error"]["message"]
