"""The API reference page (``/docs``) in headless Chromium: Swagger UI from the installed package.

Needs /usr/bin/chromium (``apt-get install -y --no-install-recommends chromium fonts-liberation
fonts-dejavu-core``); without it these tests fail and say so.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.openapi import openapi_document
from handlers.net.server import BackgroundServer
from tests.support.browser import CHROMIUM, INSTALL_HINT, Chromium, Page
from tests.support.fakes import FakeProvider, local_relay

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 1280, 900
OPERATIONS = "[...document.querySelectorAll('.opblock')].map((b) => b.querySelector('.opblock-summary-path')" \
             "?.getAttribute('data-path') + ' ' + b.querySelector('.opblock-summary-method')?.textContent)"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    relay = local_relay(tmp_path_factory.mktemp("reference"), FakeProvider())
    try:
        with BackgroundServer(create_app(relay, ApiKeys(["key-1"]))) as url:
            yield url
    finally:
        relay.close()


@pytest.fixture(scope="module")
def rendered(site: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    """The reference page, loaded once until Swagger UI has drawn its operations."""
    if not Path(CHROMIUM).exists():
        pytest.fail(INSTALL_HINT)
    with Chromium(tmp_path_factory.mktemp("chromium")) as browser:
        page = browser.new_page(WIDTH, HEIGHT)
        page.goto(site + "/docs")
        page.wait_for("document.querySelectorAll('.opblock').length > 0", timeout=20, what="the operations")
        yield page
        page.close()


def test_every_route_of_the_openapi_document_is_shown(rendered: Page) -> None:
    expected = {f"{path} {method.upper()}" for path, item in openapi_document()["paths"].items() for method in item}
    assert set(rendered.evaluate(OPERATIONS)) == expected


def test_the_page_names_the_api_and_draws_no_render_error(rendered: Page) -> None:
    title = rendered.evaluate("document.querySelector('.info .title')?.textContent")
    errors = rendered.evaluate("document.querySelectorAll('.errors-wrapper, .loading-container .errors').length")
    assert title is not None and title.startswith("seedance-relay") and errors == 0


def test_the_page_loads_everything_from_the_relay_without_script_errors_or_csp_violations(rendered: Page) -> None:
    remote = rendered.evaluate("performance.getEntriesByType('resource').map((r) => r.name)"
                               ".filter((u) => !u.startsWith(location.origin))")
    assert remote == [] and rendered.problems() == []


def test_the_screenshot_shows_a_drawn_page(rendered: Page, tmp_path: Path) -> None:
    """The screenshot is not blank: many colours (the method badges), no colour filling the page."""
    image = Image.open(io.BytesIO(rendered.screenshot(tmp_path / "reference.png"))).convert("RGB")
    colours = image.getcolors(maxcolors=WIDTH * HEIGHT) or []
    commonest = max(count for count, _ in colours)
    badges = {"GET": (0x61, 0xAF, 0xFE), "POST": (0x49, 0xCC, 0x90)}
    assert len(colours) > 200 and commonest < 0.9 * WIDTH * HEIGHT, "the screenshot looks blank"
    for method, rgb in badges.items():
        pixels = sum(count for count, colour in colours if colour == rgb)
        assert pixels > 200, f"no {method} badge colour {rgb} in the screenshot ({pixels} pixels)"
