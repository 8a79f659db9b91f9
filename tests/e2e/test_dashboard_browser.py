"""The dashboard in headless Chromium, over the real pipeline: sign in (and be refused), read the board,
open a job's details, filter by status, see times in the viewer's locale, play a video, sign out for good;
as an admin, see every tenant's jobs with a tenant column and filter, each tenant's credits, and queued
jobs' places in the queue.

Each behaviour is read from the DOM and checked again in a screenshot: its size, and the colours that
must (or must not) be in it, over the whole viewport or over one element.

Needs /usr/bin/chromium (``apt-get install -y --no-install-recommends chromium fonts-liberation
fonts-dejavu-core``); without it these tests fail and say so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.app.relay import Relay
from handlers.domain.contract import frame_size
from handlers.domain.jobs import Job, JobStatus
from handlers.net.server import BackgroundServer
from handlers.usecases.budget import take_hold
from tests.support.browser import CHROMIUM, INSTALL_HINT, Chromium, Page
from tests.support.pipeline import API_KEY, REQUEST, Pipeline, running_pipeline

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 1280, 720
REFRESH_SECONDS = 1.0
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
BADGE_RGB = {"published": (0x15, 0x80, 0x3D), "failed": (0xB9, 0x1C, 0x1C), "processing": (0x6D, 0x28, 0xD9)}
QUEUED_RGB = (0xA1, 0x62, 0x07)
TENANT_RGB = (0xE0, 0xE7, 0xFF)  # the tenant chip's background
ACCENT_RGB = (0x1D, 0x4E, 0xD8)  # the sign-in button
ALERT_RGB = (0xB9, 0x1C, 0x1C)  # the refused sign-in's message
WHITE = (0xFF, 0xFF, 0xFF)
# Before signing in, the page asks for the summary once and is told 401: Chromium logs that load.
EXPECTED_PROBLEM = "status of 401"
METADATA = {"order": "A-17", "customer": "dashboard test"}
# The relay also knows tenant acme (a budget of 300 credits a day), whose two jobs wait for the one slot
# (RELAY_MAX_IN_FLIGHT=1, held by the processing job), 120 credits held for each; an admin sees them.
ACME_KEY, ADMIN_KEY = "relay-acme-key-0123456789", "relay-admin-key-0123456789"
RELAY_ENV = {"RELAY_SUBSCRIBERS": "default:*,audit:failed", "RELAY_API_KEYS": f"{API_KEY},acme:{ACME_KEY}",
             "RELAY_BUDGETS": "acme=300/day", "RELAY_MAX_IN_FLIGHT": "1"}
ACME_HOLD = 120.0


@dataclass
class Site:
    url: str
    relay: Relay
    published: list[dict[str, object]]
    failed_id: str
    processing_id: str
    queued_ids: list[str]


def fake_id(label: str) -> str:
    return "job_" + hashlib.sha256(label.encode()).hexdigest()[:26]


def put_job(relay: Relay, label: str, status: JobStatus, *, age: float, tenant: str = "default",
            **changes: object) -> Job:
    now = relay.clock()
    job = relay.jobs.create(Job(id=fake_id(label), request=REQUEST, fingerprint=label, created_at=now - age,
                                updated_at=now - age, model=str(REQUEST["model"]), tenant=tenant))
    return relay.jobs.update(replace(job, updated_at=now, status=status, **changes))


def dead_letter(relay: Relay, subscriber: str) -> None:
    queue = relay.bus.subscriber(subscriber)
    queue.send({"type": "io.seedance-relay.job.failed", "note": "a consumer that keeps failing"})
    while queue.depth()["dead"] == 0:
        for message in queue.receive():
            queue.retry_later(message, 0)


def seed(pipeline: Pipeline, relay: Relay) -> tuple[list[dict[str, object]], str, str]:
    """Two published jobs through the real pipeline; a failed and a processing job; one dead letter."""
    submitted = [pipeline.submit({**REQUEST, "prompt": f"dashboard run {i}"}) for i in range(2)]
    published = [pipeline.wait_final(job["id"]) for job in submitted]
    failed = put_job(relay, "failed", JobStatus.FAILED, age=8, outcome="failed", finished_at=relay.clock() - 2,
                     metadata=METADATA,
                     error={"code": "content_policy_violation", "message": "the prompt was refused by the filter"})
    processing = put_job(relay, "processing", JobStatus.PROCESSING, age=20, progress=40, task_id="task-x")
    dead_letter(relay, "audit")
    return published, failed.id, processing.id


def seed_queue(relay: Relay, holder: str) -> list[str]:
    """``holder`` takes the one slot; two jobs of acme wait for it, each holding its estimate; oldest first."""
    now = relay.clock()
    assert relay.slots.acquire(holder, "default", now=now, until=now + 3600, cap=1, tenant_cap=None)
    queued = []
    for n, age in enumerate((12, 6), start=1):
        job_id = fake_id(f"acme queued {n}")
        hold = take_hold(relay.ledger, relay.settings.budgets, "acme", job_id, ACME_HOLD, now)
        queued.append(put_job(relay, f"acme queued {n}", JobStatus.QUEUED, age=age, tenant="acme",
                              credits_estimated=ACME_HOLD, credits_held=hold.held, hold_period=hold.period).id)
    return queued


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp_path = tmp_path_factory.mktemp("dashboard")
    with running_pipeline(tmp_path, relay_env=RELAY_ENV) as pipeline:
        assert pipeline.relay is not None and pipeline.relay.runtime.relay is not None
        relay = pipeline.relay.runtime.relay
        published, failed_id, processing_id = seed(pipeline, relay)
        queued_ids = seed_queue(relay, processing_id)
        keys = ApiKeys(relay.settings.api_keys, admins=[ADMIN_KEY])
        routes = dashboard_routes(relay, keys, refresh_seconds=REFRESH_SECONDS)
        with BackgroundServer(create_app(relay, keys, extra_routes=routes)) as url:
            yield Site(url, relay, published, failed_id, processing_id, queued_ids)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    if not Path(CHROMIUM).exists():
        pytest.fail(INSTALL_HINT)
    with Chromium(tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


@pytest.fixture
def page(browser: Chromium) -> Iterator[Page]:
    page = browser.new_page(WIDTH, HEIGHT)
    yield page
    page.close()


def sign_in(page: Page, site: Site, key: str = API_KEY) -> None:
    """Through the form, as a person would: type the key, press the button, wait for the board."""
    page.goto(site.url + "/")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    page.type("#api-key", key)
    page.click("#sign-in button[type=submit]")
    page.wait_for("!document.getElementById('board').hidden && document.body.dataset.loaded", what="the board")


def cells(page: Page) -> dict[str, dict[str, str]]:
    """Each job row as ``{id: {status, progress, error, play}}`` read from the DOM."""
    rows = page.evaluate("""[...document.querySelectorAll('#job-rows tr')].map((row) => ({
        id: row.dataset.job, status: row.querySelector('.badge')?.className,
        progress: row.querySelector('progress')?.value, error: row.cells[6].textContent,
        took: row.cells[5].textContent, play: !!row.querySelector('button.play')}))""")
    return {row.pop("id"): row for row in rows}


def play_first_video(page: Page, site: Site) -> dict[str, float]:
    job_id = site.published[0]["id"]
    page.click(f"button.play[data-job='{job_id}']")
    page.wait_for("document.getElementById('player').readyState >= 2", timeout=15, what="the video to load")
    state: dict[str, float] = page.evaluate("""(async () => {
        const video = document.getElementById('player');
        await new Promise((done) => { video.addEventListener('seeked', done, {once: true}); video.currentTime = 1.5; });
        video.pause();
        return {readyState: video.readyState, duration: video.duration, time: video.currentTime,
                seekable: video.seekable.length ? video.seekable.end(0) : 0, width: video.videoWidth};
    })()""", user_gesture=True)
    return state


def shot(page: Page, path: Path, selector: str | None = None) -> Image.Image:
    """A screenshot of the viewport (or of one element), as RGB pixels."""
    return Image.open(io.BytesIO(page.screenshot(path, selector=selector))).convert("RGB")


def pixels_near(image: Image.Image, rgb: tuple[int, int, int]) -> int:
    colours = image.getcolors(maxcolors=image.width * image.height) or []
    return sum(count for count, colour in colours if isinstance(colour, tuple) and near(colour, rgb))


def badge_pixels(image: Image.Image) -> dict[str, int]:
    return {status: pixels_near(image, rgb) for status, rgb in BADGE_RGB.items()}


def blank_below(image: Image.Image, top: float) -> bool:
    """Whether every pixel from ``top`` (CSS px at 1x) down to the bottom is the page's white."""
    below = image.crop((0, int(top) + 1, image.width, image.height))
    return below.height == 0 or pixels_near(below, WHITE) == below.width * below.height


def signed_out_view(page: Page) -> dict[str, object]:
    view: dict[str, object] = page.evaluate("""({board: document.getElementById('board').hidden,
        boardDisplay: getComputedStyle(document.getElementById('board')).display,
        signOut: getComputedStyle(document.getElementById('sign-out')).display,
        formBottom: document.getElementById('sign-in').getBoundingClientRect().bottom,
        text: document.body.innerText})""")
    return view


def test_signed_out_only_the_sign_in_form_shows(page: Page, site: Site, tmp_path: Path) -> None:
    """The board stays out of the layout (``hidden`` beats its ``display: grid``), in the DOM and the pixels."""
    page.goto(site.url + "/")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    view = signed_out_view(page)
    assert view["board"] is True and view["boardDisplay"] == "none" and view["signOut"] == "none"
    assert site.failed_id not in str(view["text"]) and "Jobs by status" not in str(view["text"])
    image = shot(page, tmp_path / "signed-out.png")
    assert image.size == (WIDTH, HEIGHT)
    assert pixels_near(image, ACCENT_RGB) > 200, "the styled sign-in button is not in the screenshot"
    assert blank_below(image, float(str(view["formBottom"]))), "something is drawn below the sign-in form"
    assert badge_pixels(image) == dict.fromkeys(BADGE_RGB, 0)


def test_the_sign_in_form_says_where_the_key_is(page: Page, site: Site) -> None:
    page.goto(site.url + "/")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    hint = page.evaluate("document.querySelector('#sign-in .hint').innerText")
    assert ".relay/api-key" in hint and "/seedance-relay/<stage>/api-keys" in hint


def test_a_refused_key_gets_the_styled_page_with_the_form_and_an_error(page: Page, site: Site,
                                                                        tmp_path: Path) -> None:
    page.goto(site.url + "/")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    page.type("#api-key", "not-the-key")
    page.click("#sign-in button[type=submit]")
    page.wait_for("location.pathname === '/session' && document.readyState === 'complete'", what="the answer")
    view = page.evaluate("""({status: performance.getEntriesByType('navigation')[0].responseStatus,
        error: document.getElementById('sign-in-error').innerText,
        errorColour: getComputedStyle(document.getElementById('sign-in-error')).color,
        form: !!document.querySelector('#sign-in form input#api-key'),
        board: getComputedStyle(document.getElementById('board')).display})""")
    assert view["status"] == 401 and view["error"].startswith("That key was not accepted.")
    assert view["errorColour"] == "rgb(185, 28, 28)" and view["form"] and view["board"] == "none"
    image = shot(page, tmp_path / "refused.png")
    assert image.size == (WIDTH, HEIGHT)
    assert pixels_near(image, ALERT_RGB) > 300, "the red refusal is not in the screenshot"
    assert pixels_near(image, ACCENT_RGB) > 200, "the styled sign-in button is not in the screenshot"
    assert pixels_near(image, BADGE_RGB["published"]) == 0


def test_signing_in_shows_every_job_with_its_badge_progress_and_error(page: Page, site: Site) -> None:
    sign_in(page, site)
    rows = cells(page)
    for job in site.published:
        assert rows[str(job["id"])]["status"] == "badge status-published" and rows[str(job["id"])]["play"]
    assert rows[site.failed_id]["status"] == "badge status-failed" and not rows[site.failed_id]["play"]
    assert rows[site.failed_id]["error"] == "content_policy_violation the prompt was refused by the filter"
    assert rows[site.failed_id]["took"] == "6.0 s"
    assert rows[site.processing_id]["status"] == "badge status-processing"
    assert rows[site.processing_id]["took"].startswith("running ")
    assert not set(site.queued_ids) & set(rows), "another tenant's jobs are on the board"
    view = page.evaluate("""({column: document.getElementById('tenant-column').hidden,
        filter: getComputedStyle(document.getElementById('tenant-filter-label')).display,
        cells: document.querySelector('#job-rows tr').cells.length})""")
    assert view == {"column": True, "filter": "none", "cells": 8}, "a tenant's board has no tenant column or filter"


def test_the_dead_letter_count_is_shown_in_red(page: Page, site: Site) -> None:
    sign_in(page, site)
    queues = page.evaluate("""Object.fromEntries([...document.querySelectorAll('td.dead')].map(
        (cell) => [cell.dataset.queue, [cell.textContent, cell.classList.contains('alert')]]))""")
    assert queues == {"ingest": ["0", False], "default": ["0", False], "audit": ["1", True]}
    total = page.evaluate("[document.getElementById('dlq-total').textContent, "
                          "getComputedStyle(document.getElementById('dlq-total')).backgroundColor]")
    assert total == ["1 dead letter", "rgb(185, 28, 28)"]


def test_a_published_video_plays_and_seeks_over_range_requests(page: Page, site: Site) -> None:
    sign_in(page, site)
    state = play_first_video(page, site)
    assert state["readyState"] >= 2 and state["width"] == frame_size(REQUEST["quality"], REQUEST["aspect_ratio"])[0]
    assert state["duration"] == pytest.approx(REQUEST["duration"], abs=0.1)
    assert state["seekable"] == pytest.approx(state["duration"]) and state["time"] == pytest.approx(1.5, abs=0.1)


def test_the_board_refreshes_by_itself(page: Page, site: Site) -> None:
    sign_in(page, site)
    loads = int(page.evaluate("document.body.dataset.loaded"))
    job = site.relay.jobs.get(site.processing_id)
    site.relay.jobs.update(replace(job, updated_at=site.relay.clock(), progress=70))
    page.wait_for(f"document.querySelector('#job-rows tr[data-job={json.dumps(site.processing_id)}] progress')"
                  ".value === 70", timeout=5, what="the next refresh")
    assert int(page.evaluate("document.body.dataset.loaded")) > loads


def test_the_page_runs_without_script_errors_or_csp_violations(page: Page, site: Site) -> None:
    sign_in(page, site)
    play_first_video(page, site)
    open_details(page, site.failed_id)
    problems = [p for p in page.problems() if EXPECTED_PROBLEM not in p]
    assert problems == []


def test_the_screenshot_shows_a_coloured_board(page: Page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site)
    play_first_video(page, site)
    shot = tmp_path / "dashboard.png"
    image = Image.open(io.BytesIO(page.screenshot(shot))).convert("RGB")
    colours = image.getcolors(maxcolors=WIDTH * HEIGHT) or []
    commonest = max(count for count, _ in colours)
    assert image.size == (WIDTH, HEIGHT)
    assert len(colours) > 500 and commonest < 0.9 * WIDTH * HEIGHT, "the screenshot looks blank"
    for status, rgb in BADGE_RGB.items():
        pixels = sum(count for count, colour in colours if isinstance(colour, tuple) and near(colour, rgb))
        assert pixels > 300, f"no {status} badge colour {rgb} in the screenshot ({pixels} pixels)"
    save_for_docs(image)


def near(colour: tuple[int, ...], rgb: tuple[int, int, int], tolerance: int = 2) -> bool:
    return max(abs(a - b) for a, b in zip(colour, rgb, strict=True)) <= tolerance


def save_for_docs(image: Image.Image) -> None:
    """The same screenshot, palette-reduced to stay small; written to docs/dashboard.png only when
    ``UPDATE_DOCS_SCREENSHOT=1`` so that running the suite leaves the work tree as it was."""
    buffer = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG", optimize=True)
    assert buffer.tell() <= 300 * 1024, f"the docs screenshot is {buffer.tell()} bytes"
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.write_bytes(buffer.getvalue())


def test_signing_out_returns_to_the_form(page: Page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site)
    page.click("#sign-out button")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    assert [c["name"] for c in page.cookies()] == []
    assert badge_pixels(shot(page, tmp_path / "signed-out.png")) == dict.fromkeys(BADGE_RGB, 0)


def test_the_cookie_of_a_signed_out_session_no_longer_opens_the_board(page: Page, site: Site,
                                                                       tmp_path: Path) -> None:
    """The old cookie, put back into the browser after signing out, gets the sign-in form: the server revoked it."""
    sign_in(page, site)
    kept = page.cookies()
    assert [c["name"] for c in kept] == ["relay_session"] and kept[0]["httpOnly"]
    page.click("#sign-out button")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    page.set_cookies(kept)
    assert [c["value"] for c in page.cookies()] == [kept[0]["value"]]
    page.goto(site.url + "/")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form again")
    view = signed_out_view(page)
    assert view["board"] is True and view["boardDisplay"] == "none"
    answer = page.evaluate("fetch('/dashboard/summary').then((r) => r.status)")
    assert answer == 401
    image = shot(page, tmp_path / "revoked.png")
    assert blank_below(image, float(str(view["formBottom"]))) and badge_pixels(image) == dict.fromkeys(BADGE_RGB, 0)


def open_details(page: Page, job_id: str) -> dict[str, str]:
    page.click(f"#job-rows tr[data-job='{job_id}'] td:nth-child(3)")
    page.wait_for(f"!document.getElementById('details').hidden && "
                  f"document.getElementById('details-id').textContent === {json.dumps(job_id)}", what="the details")
    view: dict[str, str] = page.evaluate("""Object.fromEntries(['facts', 'request', 'metadata', 'outputs', 'error',
        'events'].map((part) => [part, document.getElementById('details-' + part).innerText]))""")
    return view


def test_clicking_a_failed_job_opens_its_request_metadata_error_and_events(page: Page, site: Site,
                                                                           tmp_path: Path) -> None:
    sign_in(page, site)
    view = open_details(page, site.failed_id)
    assert json.loads(view["request"])["prompt"] == REQUEST["prompt"] and json.loads(view["metadata"]) == METADATA
    assert view["error"] == "content_policy_violation the prompt was refused by the filter"
    assert view["outputs"] == "none" and view["events"] == "none published yet" and "failed" in view["facts"]
    assert page.evaluate("document.querySelector('#job-rows tr.open')?.dataset.job") == site.failed_id
    image = shot(page, tmp_path / "details.png", selector="#details")
    assert pixels_near(image, BADGE_RGB["failed"]) > 300, "the details panel shows no failed badge or error"
    assert pixels_near(image, BADGE_RGB["published"]) == 0
    assert pixels_near(image, WHITE) < 0.95 * image.width * image.height, "the details panel looks blank"


def test_clicking_a_published_job_lists_its_outputs_and_events(page: Page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site)
    job = site.published[0]
    view = open_details(page, str(job["id"]))
    assert view["outputs"].startswith("output 0 video/mp4, ")
    assert view["events"].startswith("io.seedance-relay.job.completed ") and view["error"] == "none"
    link = page.evaluate("document.querySelector('#details-outputs a').getAttribute('href')")
    assert link == f"/v1/jobs/{job['id']}/outputs/0"
    image = shot(page, tmp_path / "details.png", selector="#details")
    assert pixels_near(image, BADGE_RGB["published"]) > 300


def test_filtering_by_status_shows_only_those_jobs(page: Page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site)
    page.evaluate("""(() => { const s = document.getElementById('status-filter'); s.value = 'failed';
        s.dispatchEvent(new Event('change')); })()""")
    page.wait_for("document.body.dataset.shown === 'failed'", what="the failed jobs")
    assert list(cells(page)) == [site.failed_id]
    table = shot(page, tmp_path / "failed.png", selector=".jobs table")
    found = badge_pixels(table)
    assert found["failed"] > 300 and found["published"] == 0 and found["processing"] == 0, found
    assert pixels_near(table, TENANT_RGB) == 0, "a tenant's table shows tenant chips"
    page.evaluate("""(() => { const s = document.getElementById('status-filter'); s.value = 'published';
        s.dispatchEvent(new Event('change')); })()""")
    page.wait_for("document.body.dataset.shown === 'published'", what="the published jobs")
    assert sorted(cells(page)) == sorted(str(job["id"]) for job in site.published)


def created_times(page: Page) -> list[tuple[str, str]]:
    return [tuple(pair) for pair in page.evaluate(
        "[...document.querySelectorAll('#job-rows tr td:nth-child(4) time')].map((t) => [t.dateTime, t.textContent])")]


@pytest.mark.parametrize(("locale", "pattern"), [("de-DE", r"\d{2}\.\d{2}\.\d{2}, \d{2}:\d{2}:\d{2}"),
                                                 ("en-US", r"\d{1,2}/\d{1,2}/\d{2}, \d{1,2}:\d{2}:\d{2}\s[AP]M")])
def test_times_are_shown_in_the_viewer_s_locale(browser: Chromium, site: Site, tmp_path: Path, locale: str,
                                                pattern: str) -> None:
    page = browser.new_page(WIDTH, HEIGHT)
    try:
        page.set_locale(locale)
        sign_in(page, site)
        times = created_times(page)
        expected = page.evaluate(f"""[...document.querySelectorAll('#job-rows tr td:nth-child(4) time')].map((t) =>
            new Intl.DateTimeFormat({json.dumps(locale)}, {{dateStyle: 'short', timeStyle: 'medium'}})
                .format(new Date(t.dateTime)))""")
        assert len(times) == 4 and [text for _, text in times] == expected
        assert all(re.fullmatch(pattern, text) for _, text in times), times
        assert shot(page, tmp_path / f"{locale}.png").size == (WIDTH, HEIGHT)
    finally:
        page.close()


def admin_rows(page: Page) -> dict[str, dict[str, str]]:
    """Each job row of an admin's board as ``{id: {tenant, status, badge, took}}``."""
    rows = page.evaluate("""[...document.querySelectorAll('#job-rows tr')].map((row) => ({
        id: row.dataset.job, tenant: row.cells[1].textContent, status: row.querySelector('.badge').className,
        badge: row.querySelector('.badge').textContent, took: row.cells[6].textContent}))""")
    return {row.pop("id"): row for row in rows}


def choose_tenant(page: Page, tenant: str) -> None:
    page.evaluate(f"""(() => {{ const s = document.getElementById('tenant-filter'); s.value = {json.dumps(tenant)};
        s.dispatchEvent(new Event('change')); }})()""")
    page.wait_for(f"document.body.dataset.tenant === {json.dumps(tenant or 'all')}", what=f"tenant {tenant!r}")


def test_an_admin_sees_every_tenant_in_a_column_and_filters_by_one(page: Page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site, ADMIN_KEY)
    rows = admin_rows(page)
    assert {job_id: row["tenant"] for job_id, row in rows.items() if row["tenant"] == "acme"} == dict.fromkeys(
        site.queued_ids, "acme")
    assert {row["tenant"] for row in rows.values()} == {"acme", "default"} and len(rows) == 6
    header = page.evaluate("[...document.querySelectorAll('.jobs thead th')].map((th) => th.textContent)")
    assert header[:3] == ["job", "tenant", "status"]
    options = page.evaluate("[...document.querySelectorAll('#tenant-filter option')].map((o) => o.textContent)")
    assert options == ["all", "acme", "default"]
    assert pixels_near(shot(page, tmp_path / "all.png", selector=".jobs table"), TENANT_RGB) > 300
    choose_tenant(page, "acme")
    assert set(admin_rows(page)) == set(site.queued_ids)
    table = shot(page, tmp_path / "acme.png", selector=".jobs table")
    assert pixels_near(table, TENANT_RGB) > 200 and badge_pixels(table) == dict.fromkeys(BADGE_RGB, 0)
    choose_tenant(page, "")
    assert len(admin_rows(page)) == 6


def test_queued_jobs_show_their_place_in_the_queue(page: Page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site, ADMIN_KEY)
    rows = admin_rows(page)
    first, second = site.queued_ids
    assert [rows[first]["badge"], rows[second]["badge"]] == ["queued #1", "queued #2"]
    assert rows[first]["status"] == "badge status-queued" and rows[first]["took"].startswith("waiting ")
    image = shot(page, tmp_path / "queued.png", selector=f"#job-rows tr[data-job='{second}']")
    assert pixels_near(image, QUEUED_RGB) > 300, "the queued badge is not in the screenshot"
    page.click(f"#job-rows tr[data-job='{second}'] td:nth-child(4)")
    page.wait_for(f"document.getElementById('details-id').textContent === {json.dumps(second)}", what="the details")
    facts = page.evaluate("""Object.fromEntries([...document.querySelectorAll('#details-facts div')].map(
        (fact) => [fact.querySelector('dt').textContent, fact.querySelector('dd').textContent]))""")
    assert (facts["place in queue"], facts["tenant"]) == ("#2", "acme")
    assert (facts["credits estimated"], facts["credits held"], facts["credits used"]) == ("120", "120", "—")


def usage_lines(page: Page) -> dict[str, list[str]]:
    lines = page.evaluate("""[...document.querySelectorAll('#usage-rows tr')].map((row) =>
        [...row.cells].map((cell) => cell.textContent.trim()))""")
    return {line[0]: line[1:] for line in lines}


def test_the_usage_panel_shows_each_tenant_s_credits_to_an_admin_and_its_own_to_a_tenant(
        page: Page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site, ADMIN_KEY)
    lines = usage_lines(page)
    today = datetime.fromtimestamp(site.relay.clock(), UTC)
    resets = page.evaluate(f"""new Intl.DateTimeFormat(undefined, {{dateStyle: 'short', timeStyle: 'medium'}})
        .format(new Date({json.dumps((today.replace(hour=0, minute=0, second=0, microsecond=0)
                                      + timedelta(days=1)).isoformat())}))""")
    assert lines["acme"] == [today.strftime("%Y-%m-%d"), "300 / day", "240", "0", "60", "2", resets]
    assert lines["default"][1] == "no budget" and lines["default"][4] == "—" and lines["default"][5] == "2"
    bar = page.evaluate("document.querySelector('#usage-rows tr[data-tenant=acme] progress').ariaLabel")
    assert bar == "acme: 240 of 300 credits held or spent"
    panel = shot(page, tmp_path / "usage.png", selector=".usage")
    assert pixels_near(panel, TENANT_RGB) > 200 and pixels_near(panel, ACCENT_RGB) > 50, "no chips or bar drawn"
    page.click("#sign-out button")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    sign_in(page, site)
    assert list(usage_lines(page)) == ["default"]
