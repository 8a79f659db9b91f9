"""The dashboard's routes on a real socket: sign-in, session cookies and their revocation, the summary,
the job details, the stored videos."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import COUNT_CAP, dashboard_routes
from handlers.api.session import COOKIE_NAME, SessionTokens
from handlers.app.relay import Relay
from handlers.domain.events import event_id
from handlers.domain.jobs import Job, JobStatus, Output
from handlers.net.server import BackgroundServer
from handlers.sandbox.media import render_video
from tests.support.fakes import FakeProvider, local_relay

KEY = "key-1"
DIGEST = hashlib.sha256(KEY.encode()).hexdigest()
BEARER = {"Authorization": f"Bearer {KEY}"}
SESSION_KEY = b"dashboard-test-session-key-32by"
NOW = time.time()


@pytest.fixture(scope="module")
def video() -> bytes:
    return render_video(seconds=2, width=320, height=180, audio=False, label="dash")


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    relay = local_relay(tmp_path, FakeProvider())
    yield relay
    relay.close()


def put_job(relay: Relay, job_id: str, status: JobStatus, *, age: float, outputs: tuple[Output, ...] = (),
            error: dict[str, str] | None = None) -> Job:
    """A job written straight into the store, finished 3 s after it was created ``age`` seconds ago."""
    created = NOW - age
    job = relay.jobs.create(Job(id=job_id, request={"model": "m", "duration": 2}, fingerprint=job_id,
                                created_at=created, updated_at=created, model="seedance-2.0-text-to-video"))
    return relay.jobs.update(replace(job, updated_at=created + 3, status=status, progress=100, finished_at=created + 3,
                                        outputs=outputs, error=error))


def store_video(relay: Relay, job_id: str, data: bytes, content_type: str = "video/mp4") -> Output:
    stored = relay.blobs.put_stream(f"jobs/{job_id}/output-0.mp4", [data], content_type=content_type)
    return Output(uri=stored.uri, key=stored.key, size=stored.size, sha256=stored.sha256,
                  content_type=content_type)


@pytest.fixture
def jobs(relay: Relay, video: bytes) -> dict[str, Job]:
    return {"published": put_job(relay, "job_published", JobStatus.PUBLISHED, age=60,
                                 outputs=(store_video(relay, "job_published", video),)),
            "failed": put_job(relay, "job_failed", JobStatus.FAILED, age=30,
                              error={"code": "service_error", "message": "the provider failed the task"})}


def serve(relay: Relay) -> BackgroundServer:
    keys = ApiKeys([KEY])
    return BackgroundServer(create_app(relay, keys, extra_routes=dashboard_routes(relay, keys, key=SESSION_KEY)))


@pytest.fixture
def client(relay: Relay, jobs: dict[str, Job]) -> Iterator[httpx.Client]:
    with serve(relay) as url, httpx.Client(base_url=url) as client:
        yield client


def session_cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE_NAME}={token}"}


def sign_in(client: httpx.Client, **request: Any) -> httpx.Response:
    response = client.post("/session", **request)
    client.cookies.clear()
    return response


def test_the_summary_needs_a_key_or_a_session(client: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, session_cookie("v2.9999999999.abc.def")):
        response = client.get("/dashboard/summary", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "unauthorized"


def test_the_summary_lists_recent_jobs_newest_first_with_counts_and_queues(client: httpx.Client) -> None:
    summary = client.get("/dashboard/summary", headers=BEARER).json()
    failed, published = summary["jobs"]
    assert (failed["id"], published["id"]) == ("job_failed", "job_published")
    assert failed["error"] == {"code": "service_error", "message": "the provider failed the task"}
    assert published["outputs"] == [{"index": 0, "url": "/v1/jobs/job_published/outputs/0",
                                     "content_type": "video/mp4", "size": published["outputs"][0]["size"]}]
    took = datetime.fromisoformat(published["finished_at"]) - datetime.fromisoformat(published["created_at"])
    assert published["duration"] == 2 and took.total_seconds() == pytest.approx(3)
    assert "uri" not in str(summary) and "metadata" not in published
    assert summary["counts"]["published"] == {"count": 1, "more": False}
    assert summary["counts"]["processing"] == {"count": 0, "more": False}
    assert [(q["name"], q["kind"]) for q in summary["queues"]] == [("ingest", "ingest"), ("default", "subscriber")]
    server_time = datetime.fromisoformat(summary["server_time"])
    assert summary["server_time"].endswith("Z") and abs(server_time.timestamp() - time.time()) < 5
    assert summary["dead_letters"] == 0


def test_the_summary_filters_by_status(client: httpx.Client) -> None:
    summary = client.get("/dashboard/summary?status=failed", headers=BEARER).json()
    assert [job["id"] for job in summary["jobs"]] == ["job_failed"] and summary["status"] == "failed"
    assert summary["counts"]["published"]["count"] == 1, "counts stay whole under a filter"
    assert client.get("/dashboard/summary?status=processing", headers=BEARER).json()["jobs"] == []


def test_an_unknown_status_filter_is_refused_with_the_accepted_ones(client: httpx.Client) -> None:
    response = client.get("/dashboard/summary?status=done", headers=BEARER)
    problem = response.json()["error"]["errors"][0]
    assert response.status_code == 400 and problem["field"] == "status"
    assert "accepted, queued, waiting, submitted, processing" in problem["message"]


class CountingJobs:
    """The relay's job store, recording which of its methods the summary calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.inner, name)


def test_the_counts_are_one_capped_count_per_status_not_pages(relay: Relay, jobs: dict[str, Job]) -> None:
    counting = CountingJobs(relay.jobs)
    relay.jobs = counting
    with serve(relay) as url, httpx.Client(base_url=url) as client:
        assert client.get("/dashboard/summary", headers=BEARER).status_code == 200
    assert counting.calls.count("page") == 1 and counting.calls.count("count") == len(JobStatus)


def test_counts_past_the_cap_say_there_are_more(relay: Relay) -> None:
    for n in range(COUNT_CAP + 1):
        put_job(relay, f"job_{n:04d}", JobStatus.FAILED, age=n)
    with serve(relay) as url, httpx.Client(base_url=url) as client:
        counts = client.get("/dashboard/summary?limit=1", headers=BEARER).json()["counts"]
    assert counts["failed"] == {"count": COUNT_CAP, "more": True}
    assert counts["published"] == {"count": 0, "more": False}


def test_a_job_s_details_carry_its_request_metadata_outputs_error_and_events(client: httpx.Client,
                                                                             relay: Relay) -> None:
    job = relay.jobs.get("job_published")
    published = event_id(job.id, "completed")
    relay.jobs.update(replace(job, updated_at=job.updated_at, metadata={"order": 17}, event_ids=(published,)))
    details = client.get("/dashboard/jobs/job_published", headers=BEARER).json()
    assert details["request"] == {"model": "m", "duration": 2} and details["metadata"] == {"order": 17}
    (output,) = details["outputs"]
    assert output["url"] == "/v1/jobs/job_published/outputs/0" and len(output["sha256"]) == 64
    assert details["events"] == [{"id": published, "type": "io.seedance-relay.job.completed"}]
    failed = client.get("/dashboard/jobs/job_failed", headers=BEARER).json()
    assert failed["error"] == {"code": "service_error", "message": "the provider failed the task"}
    assert failed["events"] == [] and "uri" not in str(details)


def test_a_job_s_details_need_credentials_and_an_existing_job(client: httpx.Client) -> None:
    assert client.get("/dashboard/jobs/job_failed").status_code == 401
    token = sign_in(client, data={"api_key": KEY}).cookies[COOKIE_NAME]
    assert client.get("/dashboard/jobs/job_failed", headers=session_cookie(token)).status_code == 200
    response = client.get("/dashboard/jobs/job_nope", headers=BEARER)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_the_summary_counts_dead_letters_of_every_subscriber_queue(client: httpx.Client, relay: Relay) -> None:
    queue = relay.bus.subscriber("default")
    queue.send({"type": "io.seedance-relay.job.completed"})
    while queue.depth()["dead"] == 0:
        for message in queue.receive():
            queue.retry_later(message, 0)
    summary = client.get("/dashboard/summary", headers=BEARER).json()
    assert summary["queues"][1]["dead"] == 1 and summary["dead_letters"] == 1


@pytest.mark.parametrize(("limit", "count"), [("1", 1), ("100", 2)])
def test_limit_bounds_the_recent_jobs(client: httpx.Client, limit: str, count: int) -> None:
    assert len(client.get(f"/dashboard/summary?limit={limit}", headers=BEARER).json()["jobs"]) == count


@pytest.mark.parametrize("limit", ["0", "101", "ten", "-1"])
def test_a_limit_out_of_range_is_refused(client: httpx.Client, limit: str) -> None:
    response = client.get(f"/dashboard/summary?limit={limit}", headers=BEARER)
    assert response.status_code == 400 and response.json()["error"]["errors"][0]["field"] == "limit"


@pytest.mark.parametrize("body", [{"data": {"api_key": KEY}}, {"json": {"api_key": KEY}}])
def test_a_valid_key_opens_a_session_cookie_and_redirects_home(client: httpx.Client, body: dict[str, Any]) -> None:
    response = sign_in(client, **body)
    cookie = response.headers["set-cookie"]
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert cookie.startswith(f"{COOKIE_NAME}=v2.") and KEY not in cookie
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", "max-age=43200"} <= flags and "secure" not in flags


def test_the_cookie_is_secure_when_the_browser_came_over_https(client: httpx.Client) -> None:
    response = sign_in(client, data={"api_key": KEY}, headers={"X-Forwarded-Proto": "https"})
    assert "secure" in response.headers["set-cookie"].lower().split("; ")


@pytest.mark.parametrize("body", [{"data": {"api_key": "wrong"}}, {"data": {}}, {"data": {"api_key": " "}},
                                  {"json": {"api_key": "key-"}}, {"json": {"api_key": 1}}])
def test_a_wrong_key_gets_401_and_no_cookie(client: httpx.Client, body: dict[str, Any]) -> None:
    response = sign_in(client, **body)
    assert response.status_code == 401 and "set-cookie" not in response.headers
    assert KEY not in response.text and "wrong" not in response.text


def test_a_refused_form_sign_in_answers_with_the_styled_page_its_form_and_an_error(client: httpx.Client) -> None:
    response = sign_in(client, data={"api_key": "wrong"})
    page = response.text
    assert response.status_code == 401 and response.headers["content-type"].startswith("text/html")
    assert '<link rel="stylesheet" href="/dashboard/static/dashboard.css">' in page
    assert '<main id="sign-in" class="narrow">' in page and '<form method="post" action="/session">' in page
    assert '<p id="sign-in-error" class="refusal" role="alert">That key was not accepted.' in page
    assert '<main id="board" hidden>' in page and "<script>" not in page
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_the_sign_in_form_says_where_the_key_is(client: httpx.Client) -> None:
    page = client.get("/").text
    assert "<code>.relay/api-key</code>" in page and "/seedance-relay/&lt;stage&gt;/api-keys" in page
    assert '<p id="sign-in-error" class="refusal" role="alert" hidden>' in page


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}])
def test_a_sign_in_from_another_site_is_refused(client: httpx.Client, headers: dict[str, str]) -> None:
    response = sign_in(client, data={"api_key": KEY}, headers=headers)
    assert response.status_code == 403 and "set-cookie" not in response.headers


def test_a_sign_in_from_the_page_itself_is_accepted(client: httpx.Client) -> None:
    headers = {"Origin": str(client.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    assert sign_in(client, data={"api_key": KEY}, headers=headers).status_code == 303


def test_the_session_reads_the_summary_and_the_videos(client: httpx.Client, video: bytes) -> None:
    token = sign_in(client, data={"api_key": KEY}).cookies[COOKIE_NAME]
    assert client.get("/dashboard/summary", headers=session_cookie(token)).status_code == 200
    response = client.get("/v1/jobs/job_published/outputs/0", headers=session_cookie(token))
    assert response.status_code == 200 and response.content == video


@pytest.mark.parametrize("forge", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),                       # tampered signature
    lambda t: t.replace("v2.", "v2.1", 1),                                             # tampered expiry
    lambda t: SessionTokens(b"another-server-key-of-32-bytes!!").issue(DIGEST),        # someone else's key
    lambda t: SessionTokens(SESSION_KEY, clock=lambda: time.time() - 13 * 3600).issue(DIGEST),  # expired
    lambda t: "",
])
def test_a_forged_or_expired_session_is_refused(client: httpx.Client, forge: Any) -> None:
    token = sign_in(client, data={"api_key": KEY}).cookies[COOKIE_NAME]
    assert client.get("/dashboard/summary", headers=session_cookie(forge(token))).status_code == 401


def test_a_session_never_authorises_a_state_change(client: httpx.Client) -> None:
    token = sign_in(client, data={"api_key": KEY}).cookies[COOKIE_NAME]
    body = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse", "duration": 4}
    response = client.post("/v1/jobs", json=body, headers=session_cookie(token))
    assert response.status_code == 401
    assert client.post("/v1/jobs", json=body, headers=BEARER).status_code == 202


def test_a_wrong_bearer_key_is_not_rescued_by_a_session(client: httpx.Client) -> None:
    token = sign_in(client, data={"api_key": KEY}).cookies[COOKIE_NAME]
    headers = {**session_cookie(token), "Authorization": "Bearer nope"}
    assert client.get("/dashboard/summary", headers=headers).status_code == 401


def test_signing_out_revokes_the_session_on_the_server(client: httpx.Client) -> None:
    """The old cookie, presented again after signing out, reads nothing."""
    token = sign_in(client, data={"api_key": KEY}).cookies[COOKIE_NAME]
    assert client.get("/dashboard/summary", headers=session_cookie(token)).status_code == 200
    assert client.post("/session/logout", headers=session_cookie(token)).status_code == 303
    for path in ("/dashboard/summary", "/dashboard/jobs/job_failed", "/v1/jobs/job_published/outputs/0"):
        response = client.get(path, headers=session_cookie(token))
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized", path


def test_signing_out_ends_only_that_session(client: httpx.Client) -> None:
    kept, ended = (sign_in(client, data={"api_key": KEY}).cookies[COOKIE_NAME] for _ in range(2))
    client.post("/session/logout", headers=session_cookie(ended))
    assert client.get("/dashboard/summary", headers=session_cookie(kept)).status_code == 200
    assert client.get("/dashboard/summary", headers=BEARER).status_code == 200


def test_a_session_revoked_by_one_process_is_refused_by_another(relay: Relay, jobs: dict[str, Job],
                                                                 tmp_path: Path) -> None:
    """Two relays over the same data folder stand for two processes: the revocation is stored, not kept in memory."""
    other = local_relay(tmp_path, FakeProvider())
    try:
        with serve(relay) as first, serve(other) as second, httpx.Client() as client:
            token = client.post(f"{first}/session", data={"api_key": KEY}).cookies[COOKIE_NAME]
            assert client.get(f"{second}/dashboard/summary", headers=session_cookie(token)).status_code == 200
            client.cookies.clear()
            client.post(f"{first}/session/logout", headers=session_cookie(token))
            assert client.get(f"{second}/dashboard/summary", headers=session_cookie(token)).status_code == 401
    finally:
        other.close()


@pytest.mark.parametrize("cookie", [None, "v2.9999999999.abc.def", ""])
def test_signing_out_without_a_valid_session_still_clears_the_cookie(client: httpx.Client,
                                                                     cookie: str | None) -> None:
    headers = session_cookie(cookie) if cookie is not None else {}
    response = client.post("/session/logout", headers=headers)
    assert response.status_code == 303 and "max-age=0" in response.headers["set-cookie"].lower()


def test_signing_out_clears_the_cookie(client: httpx.Client) -> None:
    response = client.post("/session/logout")
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert response.headers["set-cookie"].startswith(f'{COOKIE_NAME}="";') and "max-age=0" in response.headers[
        "set-cookie"].lower()


def test_the_page_is_static_and_under_a_strict_csp(client: httpx.Client) -> None:
    response = client.get("/")
    policy = response.headers["content-security-policy"]
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in policy and "media-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script src=\"/dashboard/static/dashboard.js\" defer></script>" in response.text
    assert "<script>" not in response.text and KEY not in response.text


@pytest.mark.parametrize(("name", "content_type"), [("dashboard.js", "text/javascript; charset=utf-8"),
                                                    ("dashboard.css", "text/css; charset=utf-8"),
                                                    ("favicon.svg", "image/svg+xml")])
def test_the_page_assets_are_served_by_us(client: httpx.Client, name: str, content_type: str) -> None:
    response = client.get(f"/dashboard/static/{name}")
    assert response.status_code == 200 and response.headers["content-type"] == content_type


def test_an_unknown_asset_is_404(client: httpx.Client) -> None:
    assert client.get("/dashboard/static/..%2Fapp.py").status_code == 404


def test_an_output_streams_the_exact_stored_bytes(client: httpx.Client, video: bytes) -> None:
    response = client.get("/v1/jobs/job_published/outputs/0", headers=BEARER)
    assert response.status_code == 200 and response.content == video
    assert response.headers["content-type"] == "video/mp4" and response.headers["accept-ranges"] == "bytes"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("header", "start", "end"), [("bytes=100-1099", 100, 1100), ("bytes=-64", -64, None),
                                                      ("bytes=5000-", 5000, None)])
def test_a_range_request_gets_206_with_those_bytes(client: httpx.Client, video: bytes, header: str, start: int,
                                                   end: int | None) -> None:
    response = client.get("/v1/jobs/job_published/outputs/0", headers={**BEARER, "Range": header})
    expected = video[start:end]
    first = start % len(video)
    assert response.status_code == 206 and response.content == expected
    assert response.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(video)}"


def test_a_range_past_the_end_is_416(client: httpx.Client, video: bytes) -> None:
    response = client.get("/v1/jobs/job_published/outputs/0", headers={**BEARER, "Range": f"bytes={len(video)}-"})
    assert response.status_code == 416


@pytest.mark.parametrize("path", ["/v1/jobs/job_nope/outputs/0", "/v1/jobs/job_published/outputs/1",
                                  "/v1/jobs/job_failed/outputs/0"])
def test_a_missing_job_or_output_is_404(client: httpx.Client, path: str) -> None:
    response = client.get(path, headers=BEARER)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_an_output_needs_credentials(client: httpx.Client) -> None:
    assert client.get("/v1/jobs/job_published/outputs/0").status_code == 401


def test_an_output_whose_file_is_gone_is_404(client: httpx.Client, relay: Relay, tmp_path: Path) -> None:
    next((tmp_path / "relay" / "blobs").rglob("output-0.mp4")).unlink()
    assert client.get("/v1/jobs/job_published/outputs/0", headers=BEARER).status_code == 404


def test_an_output_that_is_not_media_is_only_ever_a_download(client: httpx.Client, relay: Relay) -> None:
    put_job(relay, "job_html", JobStatus.PUBLISHED, age=10,
            outputs=(store_video(relay, "job_html", b"<script>alert(1)</script>", "text/html"),))
    response = client.get("/v1/jobs/job_html/outputs/0", headers=BEARER)
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == "attachment"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"


class PresigningBlobs:
    """The folder store, plus the ``presign`` an S3 store has."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def presign(self, key: str, expires_in: int) -> str:
        return f"https://bucket.example/{key}?X-Amz-Expires={expires_in}"


class ElsewhereBlobs(PresigningBlobs):
    """A store that neither presigns nor has local files (its URIs are not ``file:``)."""

    def presign(self, key: str, expires_in: int) -> None:  # type: ignore[override]
        return None

    def local_path(self, key: str) -> None:
        return None

    def uri(self, key: str) -> str:
        return f"mem://{key}"


def test_a_presigning_store_redirects_to_a_short_lived_url(relay: Relay, jobs: dict[str, Job]) -> None:
    relay.blobs = PresigningBlobs(relay.blobs)
    with serve(relay) as url, httpx.Client(base_url=url) as client:
        response = client.get("/v1/jobs/job_published/outputs/0", headers=BEARER)
        page = client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "https://bucket.example/jobs/job_published/output-0.mp4?X-Amz-Expires=300"
    assert "media-src 'self' https:;" in page.headers["content-security-policy"]


def test_any_other_store_streams_the_whole_object(relay: Relay, jobs: dict[str, Job], video: bytes) -> None:
    relay.blobs = ElsewhereBlobs(relay.blobs)
    with serve(relay) as url, httpx.Client(base_url=url) as client:
        response = client.get("/v1/jobs/job_published/outputs/0", headers=BEARER)
    assert response.status_code == 200 and response.content == video
    assert response.headers["accept-ranges"] == "none"
