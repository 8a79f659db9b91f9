"""The dashboard's posters in headless Chromium, over the real pipeline: a published job's poster thumbnail in
the job list, its poster in the player before the video plays, and its media facts, checks and frames in its
details. Needs /usr/bin/chromium, as the other browser tests."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.net.server import BackgroundServer
from tests.support.browser import CHROMIUM, INSTALL_HINT, Chromium, Page
from tests.support.pipeline import API_KEY, REQUEST, running_pipeline

pytestmark = pytest.mark.e2e

EXPECTED_PROBLEM = "status of 401"  # the summary asked for once before signing in
TEST_CARD_RGB = (0, 17, 37)  # the sandbox video's dark slate background, as Chromium shows it


@dataclass
class Site:
    url: str
    job_id: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_pipeline(tmp_path_factory.mktemp("posters")) as pipeline:
        job = pipeline.wait_final(pipeline.submit({**REQUEST, "prompt": "a poster for the board"})["id"])
        assert job["status"] == "published", job
        relay = pipeline.relay.runtime.relay if pipeline.relay else None
        assert relay is not None
        keys = ApiKeys(relay.settings.api_keys)
        with BackgroundServer(create_app(relay, keys, extra_routes=dashboard_routes(relay, keys))) as url:
            yield Site(url, job["id"])


@pytest.fixture
def page(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(INSTALL_HINT)
    with Chromium(tmp_path_factory.mktemp("chromium")) as browser:
        page = browser.new_page(1280, 720)
        page.goto(site.url + "/")
        page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
        page.type("#api-key", API_KEY)
        page.click("#sign-in button[type=submit]")
        page.wait_for("!document.getElementById('board').hidden && document.body.dataset.loaded", what="the board")
        yield page
        page.close()


def near(rgb: tuple[int, ...], target: tuple[int, int, int], slack: int = 12) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(rgb, target, strict=False))


def test_the_job_list_shows_the_poster_thumbnail_on_the_play_button(page: Page, site: Site,
                                                                    tmp_path: Path) -> None:
    selector = f"button.play[data-job='{site.job_id}'] img.thumb"
    size = page.wait_for(f"""(() => {{ const img = document.querySelector("{selector}");
        return img && img.complete && img.naturalWidth ? [img.naturalWidth, img.naturalHeight] : null; }})()""",
                         what="the poster thumbnail")
    assert size == [320, 184]  # 480p 16:9 is 864x496
    picture = Image.open(io.BytesIO(page.screenshot(tmp_path / "thumb.png", selector=selector))).convert("RGB")
    colours = picture.getcolors(maxcolors=picture.width * picture.height) or []
    assert sum(n for n, rgb in colours if near(rgb, TEST_CARD_RGB)) > picture.width * picture.height / 3
    assert [p for p in page.problems() if EXPECTED_PROBLEM not in p] == []


def test_the_player_shows_the_poster_before_the_video_plays(page: Page, site: Site) -> None:
    page.click(f"button.play[data-job='{site.job_id}']")
    poster = page.evaluate("document.getElementById('player').poster")
    assert poster.endswith(f"/v1/jobs/{site.job_id}/outputs/0/poster")
    answer = page.evaluate(f"""fetch("{poster}", {{credentials: "same-origin"}})
        .then((r) => [r.status, r.headers.get("content-type")])""")
    assert answer == [200, "image/jpeg"]


def test_the_details_show_media_facts_checks_and_frames(page: Page, site: Site) -> None:
    page.click(f"#job-rows tr[data-job='{site.job_id}'] button.open")
    page.wait_for("document.querySelectorAll('#details-outputs img.frame').length === 2 && "
                  "[...document.querySelectorAll('#details-outputs img.frame')].every((i) => i.naturalWidth)",
                  what="the frames in the details")
    view = page.evaluate("""({media: document.querySelector('#details-outputs .media').textContent,
        checks: [...document.querySelectorAll('#details-outputs .check')].map((c) => [c.textContent, c.className]),
        frames: [...document.querySelectorAll('#details-outputs img.frame')].map((i) => i.alt)})""")
    assert view["media"] == "4 s · 864\u00d7496 · 24 fps · h264 + aac"
    assert view["checks"] == [["✓ duration", "check ok"], ["✓ resolution", "check ok"],
                              ["✓ aspect_ratio", "check ok"], ["✓ audio", "check ok"]]
    assert view["frames"] == ["poster of output 0", "last frame of output 0"]
