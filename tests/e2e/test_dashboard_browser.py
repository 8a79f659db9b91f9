"""The dashboard in headless Chromium, over the real pipeline: sign in, read the board, play a video.

Needs /usr/bin/chromium (``apt-get install -y --no-install-recommends chromium fonts-liberation
fonts-dejavu-core``); without it these tests fail and say so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.contract import frame_size
from handlers.jobs import Job, JobStatus
from handlers.relay import Relay
from handlers.server import BackgroundServer
from tests.support.browser import CHROMIUM, INSTALL_HINT, Chromium, Page
from tests.support.pipeline import API_KEY, REQUEST, Pipeline, running_pipeline

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 1280, 720
REFRESH_SECONDS = 1.0
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
BADGE_RGB = {"published": (0x15, 0x80, 0x3D), "failed": (0xB9, 0x1C, 0x1C), "processing": (0x6D, 0x28, 0xD9)}
# Before signing in, the page asks for the summary once and is told 401: Chromium logs that load.
EXPECTED_PROBLEM = "status of 401"


@dataclass
class Site:
    url: str
    relay: Relay
    published: list[dict[str, object]]
    failed_id: str
    processing_id: str


def fake_id(label: str) -> str:
    return "job_" + hashlib.sha256(label.encode()).hexdigest()[:26]


def put_job(relay: Relay, label: str, status: JobStatus, *, age: float, **changes: object) -> Job:
    now = relay.clock()
    job = relay.jobs.create(Job(id=fake_id(label), request=REQUEST, fingerprint=label, created_at=now - age,
                                updated_at=now - age, model=str(REQUEST["model"])))
    return relay.jobs.update(job.evolve(now, status=status, **changes))


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
                     error={"code": "content_policy_violation", "message": "the prompt was refused by the filter"})
    processing = put_job(relay, "processing", JobStatus.PROCESSING, age=20, progress=40, task_id="task-x")
    dead_letter(relay, "audit")
    return published, failed.id, processing.id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp_path = tmp_path_factory.mktemp("dashboard")
    with running_pipeline(tmp_path, relay_env={"RELAY_SUBSCRIBERS": "default:*,audit:failed"}) as pipeline:
        assert pipeline.relay is not None and pipeline.relay.runtime.relay is not None
        relay = pipeline.relay.runtime.relay
        published, failed_id, processing_id = seed(pipeline, relay)
        keys = ApiKeys([API_KEY])
        routes = dashboard_routes(relay, keys, refresh_seconds=REFRESH_SECONDS)
        with BackgroundServer(create_app(relay, keys, extra_routes=routes)) as url:
            yield Site(url, relay, published, failed_id, processing_id)


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


def sign_in(page: Page, site: Site) -> None:
    """Through the form, as a person would: type the key, press the button, wait for the board."""
    page.goto(site.url + "/")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    page.type("#api-key", API_KEY)
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


def test_the_page_asks_for_a_key_before_showing_anything(page: Page, site: Site) -> None:
    page.goto(site.url + "/")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    shown = page.evaluate("({board: document.getElementById('board').hidden, text: document.body.innerText})")
    assert shown["board"] is True and site.failed_id not in shown["text"]


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
    site.relay.jobs.update(job.evolve(site.relay.clock(), progress=70))
    page.wait_for(f"document.querySelector('#job-rows tr[data-job={json.dumps(site.processing_id)}] progress')"
                  ".value === 70", timeout=5, what="the next refresh")
    assert int(page.evaluate("document.body.dataset.loaded")) > loads


def test_the_page_runs_without_script_errors_or_csp_violations(page: Page, site: Site) -> None:
    sign_in(page, site)
    play_first_video(page, site)
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


def test_signing_out_returns_to_the_form(page: Page, site: Site) -> None:
    sign_in(page, site)
    page.click("#sign-out button")
    page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    assert page.evaluate("document.cookie") == ""

