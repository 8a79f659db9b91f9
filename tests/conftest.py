"""Fixtures shared by every test layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"


def load_fixture(relative: str) -> Any:
    """Load a JSON file from ``../shared/fixtures`` (kept there, never copied)."""
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {FIXTURES}")
    return FIXTURES


# --- moto in server mode (AWS adapter tests) ---------------------------------------------------
from collections.abc import Iterator  # noqa: E402


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto in server mode on ``127.0.0.1:<free port>`` for the session; yields its URL.

    Fake credentials and region are in the environment while it runs (and any real
    profile or endpoint is hidden), so boto3 signs requests without touching a real
    account. Tests name their resources uniquely (a uuid or per-test suffix); the server
    is shared. A test points boto3 at it with ``endpoint_url=moto_server`` or by setting
    ``AWS_ENDPOINT_URL`` through ``monkeypatch``.
    """
    from tests.support.moto import FAKE_CREDENTIALS, HIDDEN, running_moto

    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_CREDENTIALS.items():
            patch.setenv(name, value)
        for name in HIDDEN:
            patch.delenv(name, raising=False)
        with running_moto() as url:
            yield url


@pytest.fixture(autouse=True, scope="session")
def _logs_to_stderr() -> None:
    """Logs go to stderr as in the real CLI, so stdout stays machine-readable in every test."""
    import sys

    from handlers.base.logs import configure

    configure(level="info", fmt="console", stream=sys.stderr)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    """Under pytest-xdist, tests that share a node id would run once (its file scheduling keys by node id):
    refuse such a collection rather than skip tests silently (`make test` runs the API fuzz on its own)."""
    from collections import Counter

    shared = sorted(node_id for node_id, count in Counter(ids).items() if count > 1)
    if shared:
        raise pytest.UsageError(f"{len(shared)} node id(s) name several tests, which pytest-xdist runs once: "
                                f"{', '.join(shared[:3])}; run them without -n")
