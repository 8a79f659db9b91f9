"""Capture what the real logging pipeline renders (processors, redaction and all)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from handlers.base.logs import configure


@contextmanager
def rendered_logs(level: str = "debug") -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure(level=level, fmt="json", stream=stream)
    try:
        yield stream
    finally:
        configure(level="warning", fmt="json")
