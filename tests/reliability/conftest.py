"""Reliability scenarios run on both backends; ``make soak`` scales them up with RELIABILITY_SCALE."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def scale() -> int:
    """Multiplier for job counts: 1 in `make test`, more in `make soak`."""
    return max(1, int(os.environ.get("RELIABILITY_SCALE", "1")))


@pytest.fixture
def moto_for(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The moto server when the backend is aws (started once per session), else None."""
    return str(request.getfixturevalue("moto_server")) if backend == "aws" else None
