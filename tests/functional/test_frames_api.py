"""The pictures of an output over HTTP (``/v1/jobs/{id}/outputs/{index}/{role}``), and the dashboard's posters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.app.relay import Relay
from handlers.domain.jobs import Job, JobStatus, Output
from handlers.media.checks import check_facts
from handlers.media.facts import open_media
from handlers.media.frames import FRAME_ROLES, frames_of
from handlers.net.server import BackgroundServer
from handlers.sandbox.media import render_video
from tests.support.fakes import FakeProvider, local_relay
from tests.support.media_jobs import picture_size

KEY, OTHER = "key-1", "key-2"
BEARER = {"Authorization": f"Bearer {KEY}"}
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "p", "duration": 2}


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    relay = local_relay(tmp_path, FakeProvider(), RELAY_API_KEYS=f"{KEY},beta:{OTHER}")
    yield relay
    relay.close()


def described_output(relay: Relay, job_id: str, *, pictures: bool = True) -> Output:
    """A real video stored for ``job_id``, read and pictured as the copy step does."""
    stored = relay.blobs.put_stream(f"jobs/{job_id}/output-0.mp4",
                                    [render_video(seconds=2, width=640, height=360, audio=False)],
                                    content_type="video/mp4")
    output = Output(uri=stored.uri, key=stored.key, size=stored.size, sha256=stored.sha256)
    if not pictures:
        return output
    with open_media(relay.blobs.local_path(stored.key) or "", size=stored.size) as media:
        facts, taken = media.facts, frames_of(media).pictures()
    frames = {role: relay.blobs.put_stream(output.frame_key(role), [data], content_type="image/jpeg").uri
              for role, data in taken.items()}
    return replace(output, media=facts.as_dict(), checks=tuple(c.as_dict() for c in check_facts(facts, REQUEST)),
                   frames=frames)


def put_published(relay: Relay, job_id: str, output: Output) -> Job:
    now = time.time()
    return relay.jobs.create(Job(id=job_id, request=REQUEST, fingerprint=job_id, created_at=now, updated_at=now,
                                 status=JobStatus.PUBLISHED, outputs=(output,)))


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    put_published(relay, "job_pictured", described_output(relay, "job_pictured"))
    put_published(relay, "job_unread", described_output(relay, "job_unread", pictures=False))
    keys = ApiKeys([KEY, f"beta:{OTHER}"])
    app = create_app(relay, keys, extra_routes=dashboard_routes(relay, keys, key=b"frames-test-session-key-32bytes"))
    with BackgroundServer(app) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.mark.parametrize(("role", "size"), [("poster", (640, 360)), ("poster-thumbnail", (320, 180)),
                                            ("last-frame", (640, 360)), ("last-frame-thumbnail", (320, 180))])
def test_each_picture_is_served_as_a_jpeg(client: httpx.Client, role: str, size: tuple[int, int]) -> None:
    answer = client.get(f"/v1/jobs/job_pictured/outputs/0/{role}", headers=BEARER)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert picture_size(answer.content) == size
    assert answer.headers["cache-control"].startswith("private, max-age=")


@pytest.mark.parametrize(("path", "message"), [
    ("/v1/jobs/job_pictured/outputs/0/thumbnail", "expected one of poster, poster-thumbnail, last-frame"),
    ("/v1/jobs/job_pictured/outputs/1/poster", "has no output 1"),
    ("/v1/jobs/job_unread/outputs/0/poster", "has no poster (its video was not read)"),
    ("/v1/jobs/job_nope/outputs/0/poster", "no job"),
])
def test_a_picture_that_is_not_there_answers_404_saying_why(client: httpx.Client, path: str, message: str) -> None:
    answer = client.get(path, headers=BEARER)
    assert answer.status_code == 404 and message in answer.json()["error"]["message"]


def test_pictures_need_a_key_of_the_job_s_tenant(client: httpx.Client) -> None:
    assert client.get("/v1/jobs/job_pictured/outputs/0/poster").status_code == 401
    other = client.get("/v1/jobs/job_pictured/outputs/0/poster", headers={"Authorization": f"Bearer {OTHER}"})
    assert other.status_code == 404 and other.json()["error"]["message"] == "no job 'job_pictured'"


class PresigningBlobs:
    """The folder store, plus the ``presign`` an S3 store has."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def presign(self, key: str, expires_in: int) -> str:
        return f"https://bucket.example/{key}?X-Amz-Expires={expires_in}"


def test_a_presigning_store_redirects_to_the_picture(relay: Relay, client: httpx.Client) -> None:
    relay.blobs = PresigningBlobs(relay.blobs)
    answer = client.get("/v1/jobs/job_pictured/outputs/0/last-frame", headers=BEARER)
    assert answer.status_code == 307
    assert answer.headers["location"] == ("https://bucket.example/jobs/job_pictured/output-0.last-frame.jpg"
                                          "?X-Amz-Expires=300")


def test_the_dashboard_rows_name_the_poster_and_its_thumbnail(client: httpx.Client) -> None:
    rows = {job["id"]: job for job in client.get("/dashboard/summary", headers=BEARER).json()["jobs"]}
    [pictured], [unread] = rows["job_pictured"]["outputs"], rows["job_unread"]["outputs"]
    assert (pictured["poster"], pictured["poster_thumbnail"]) == ("/v1/jobs/job_pictured/outputs/0/poster",
                                                                  "/v1/jobs/job_pictured/outputs/0/poster-thumbnail")
    assert "poster" not in unread and "poster_thumbnail" not in unread


def test_the_dashboard_details_show_media_checks_and_every_picture(client: httpx.Client) -> None:
    [output] = client.get("/dashboard/jobs/job_pictured", headers=BEARER).json()["outputs"]
    assert output["media"]["width"] == 640 and output["media"]["has_audio"] is False
    assert [(c["name"], c["ok"]) for c in output["checks"]] == [("duration", True), ("resolution", False),
                                                                ("audio", False)]
    assert output["frames"] == {role: f"/v1/jobs/job_pictured/outputs/0/{role}" for role in FRAME_ROLES}


def test_the_api_job_view_gives_the_pictures_routes(client: httpx.Client) -> None:
    [output] = client.get("/v1/jobs/job_pictured", headers=BEARER).json()["outputs"]
    assert output["url"] == "/v1/jobs/job_pictured/outputs/0"
    assert output["frame_urls"] == {role: f"/v1/jobs/job_pictured/outputs/0/{role}" for role in FRAME_ROLES}
    assert output["frames"]["poster"].startswith("file://") and output["media"]["duration"] == 2.0
