"""Fixtures shared by the functional tests: a relay on local adapters with a fake provider, and a media
server holding a real one-second MP4 that the fake provider hands out as its result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.app.relay import Relay
from handlers.sandbox.media import render_video
from tests.support.fakes import Clock, FakeProvider, local_relay
from tests.support.media_server import MediaServer

VIDEO = render_video(seconds=1, width=320, height=240, audio=False)
"""The result video the ``media`` server serves at ``/video.mp4`` (rendered once, then cached)."""


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    """The relay on SQLite and a folder in ``tmp_path``, talking to a :class:`FakeProvider`."""
    relay = local_relay(tmp_path, FakeProvider())
    yield relay
    relay.close()


@pytest.fixture
def media() -> Iterator[MediaServer]:
    """A media server with :data:`VIDEO` at ``/video.mp4``."""
    with MediaServer() as server:
        server.add("/video.mp4", VIDEO, content_type="video/mp4")
        yield server


@pytest.fixture
def provider(media: MediaServer) -> FakeProvider:
    """A fake provider whose tasks complete with the ``media`` server's video."""
    return FakeProvider(results=[media.url("/video.mp4")])


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves by hand (see :class:`tests.support.fakes.Clock`)."""
    return Clock()
