"""Fixtures shared by the functional tests: a relay on local adapters with a fake provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.app.relay import Relay
from tests.support.fakes import FakeProvider, local_relay


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    """The relay on SQLite and a folder in ``tmp_path``, talking to a :class:`FakeProvider`."""
    relay = local_relay(tmp_path, FakeProvider())
    yield relay
    relay.close()
