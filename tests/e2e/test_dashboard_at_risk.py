"""The dashboard in headless Chromium: a job whose completed result is still not copied as its URLs near expiry is
marked "at risk" in the job list (an ended one is not), and its details say since when, its deadline, and every
EvoLink task with the code a failed one ended with. Needs /usr/bin/chromium, as the other browser tests."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.app.relay import Relay
from handlers.domain.jobs import Job, JobStatus
from handlers.net.server import BackgroundServer
from tests.support.browser import CHROMIUM, INSTALL_HINT, Chromium, Page
from tests.support.fakes import FakeProvider, local_relay

pytestmark = pytest.mark.e2e

KEY = "key-1"
EXPECTED_PROBLEM = "status of 401"  # the summary asked for once before signing in
ALERT_RGB = (0xB9, 0x1C, 0x1C)
RETRIED = {"task_id": "task-first", "code": "service_error", "message": "the provider failed the task",
           "failed_at": "2026-05-01T12:00:00Z"}


@dataclass
class Site:
    url: str
    at_risk: str
    ended: str
    fine: str


def put_job(relay: Relay, job_id: str, status: JobStatus, **changes: Any) -> Job:
    now = time.time()
    job = relay.jobs.create(Job(id=job_id, request={"model": "seedance-2.0-text-to-video", "duration": 4},
                                fingerprint=job_id, created_at=now - 60, updated_at=now - 60,
                                model="seedance-2.0-text-to-video"))
    return relay.jobs.update(replace(job, updated_at=now, status=status, **changes))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    relay = local_relay(tmp_path_factory.mktemp("at-risk"), FakeProvider())
    now = time.time()
    at_risk = put_job(relay, "job_at_risk", JobStatus.PROCESSING, progress=100, task_id="task-second",
                      at_risk_at=now - 30, deadline_at=now + 3600, failed_tasks=(RETRIED,))
    ended = put_job(relay, "job_ended", JobStatus.FAILED, outcome="failed", finished_at=now, at_risk_at=now - 30,
                    error={"code": "result_expired", "message": "the result expired before it was copied"})
    fine = put_job(relay, "job_fine", JobStatus.PROCESSING, progress=40, task_id="task-only")
    keys = ApiKeys([KEY])
    try:
        with BackgroundServer(create_app(relay, keys, extra_routes=dashboard_routes(relay, keys))) as url:
            yield Site(url, at_risk.id, ended.id, fine.id)
    finally:
        relay.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(INSTALL_HINT)
    with Chromium(tmp_path_factory.mktemp("chromium")) as browser:
        page = browser.new_page(1280, 720)
        page.goto(site.url + "/")
        page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
        page.type("#api-key", KEY)
        page.click("#sign-in button[type=submit]")
        page.wait_for("!document.getElementById('board').hidden && document.body.dataset.loaded", what="the board")
        yield page
        page.close()


def marks(page: Page, job_id: str) -> list[dict[str, str]]:
    """The badges of ``job_id``'s status cell: class, text and title of each."""
    found: list[dict[str, str]] = page.evaluate(f"""[...document.querySelectorAll(
        '#job-rows tr[data-job="{job_id}"] td:nth-child(2) .badge')].map((b) => ({{
        className: b.className, text: b.textContent, title: b.title}}))""")
    return found


def near(rgb: tuple[int, ...], target: tuple[int, int, int], slack: int = 12) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(rgb, target, strict=False))


def test_a_running_job_at_risk_is_marked_beside_its_status(page: Page, site: Site, tmp_path: Path) -> None:
    """The mark is a red badge, its title saying why and since when."""
    status, mark = marks(page, site.at_risk)
    assert status["className"] == "badge status-processing"
    assert (mark["className"], mark["text"]) == ("badge at-risk", "at risk")
    assert mark["title"].startswith("result not copied in time; its URLs expire 24 h after EvoLink completed it")
    selector = f'#job-rows tr[data-job="{site.at_risk}"] .at-risk'
    picture = Image.open(io.BytesIO(page.screenshot(tmp_path / "mark.png", selector=selector))).convert("RGB")
    colours = picture.getcolors(maxcolors=picture.width * picture.height) or []
    red = sum(n for n, rgb in colours if isinstance(rgb, tuple) and near(rgb, ALERT_RGB))
    assert red > picture.width * picture.height / 2
    assert [p for p in page.problems() if EXPECTED_PROBLEM not in p] == []


def test_an_ended_job_or_one_not_at_risk_has_no_mark(page: Page, site: Site) -> None:
    assert [m["className"] for m in marks(page, site.ended)] == ["badge status-failed"]
    assert [m["className"] for m in marks(page, site.fine)] == ["badge status-processing"]


def test_the_details_say_since_when_the_deadline_and_every_task(page: Page, site: Site) -> None:
    """"at risk since" and "deadline" are times; "attempts" lists each task, the retried one with its code."""
    page.click(f'button.open[data-job="{site.at_risk}"]')
    page.wait_for(f"document.getElementById('details-id').textContent === '{site.at_risk}'", what="the details")
    facts = page.evaluate("""Object.fromEntries([...document.querySelectorAll('#details-facts div')].map((d) =>
        [d.querySelector('dt').textContent, d.querySelector('dd').innerText.trim()]))""")
    tasks = page.evaluate("""[...document.querySelectorAll('#details-facts ol.tasks li')].map((li) =>
        [...li.querySelectorAll('code')].map((c) => c.textContent))""")
    times = page.evaluate("""[...document.querySelectorAll('#details-facts div')].filter((d) =>
        ['at risk since', 'deadline'].includes(d.querySelector('dt').textContent)).map((d) =>
        !!d.querySelector('dd time'))""")
    assert "at risk since" in facts and "deadline" in facts and times == [True, True]
    assert tasks == [["task-first", "service_error"], ["task-second"]]


def test_a_job_without_a_deadline_or_tasks_shows_dashes(page: Page, site: Site) -> None:
    page.click(f'button.open[data-job="{site.ended}"]')
    page.wait_for(f"document.getElementById('details-id').textContent === '{site.ended}'", what="the details")
    facts = page.evaluate("""Object.fromEntries([...document.querySelectorAll('#details-facts div')].map((d) =>
        [d.querySelector('dt').textContent, d.querySelector('dd').innerText.trim()]))""")
    assert (facts["deadline"], facts["attempts"]) == ("—", "—")
    assert "at risk since" in facts  # an ended job still says it was at risk
