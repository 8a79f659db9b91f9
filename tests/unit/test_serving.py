"""What ``seedance-relay serve`` sets up before uvicorn runs, how it sends media files, and the local queue's ids."""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.adapters.local.queue import message_id
from handlers.net.files import MEDIA_CHUNK, MediaFileResponse
from handlers.net.server import GC_YOUNG_THRESHOLD, BackgroundServer, tune_gc_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_serving_freezes_what_startup_built_and_collects_the_young_generation_less_often() -> None:
    built_at_startup = [object() for _ in range(100)]
    middle, old = gc.get_threshold()[1:]
    tune_gc_for_serving()
    assert gc.get_freeze_count() >= len(built_at_startup)
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, middle, old)


@pytest.mark.usefixtures("restored_gc")
def test_a_higher_young_threshold_is_kept() -> None:
    gc.set_threshold(50_000, 10, 10)
    tune_gc_for_serving()
    assert gc.get_threshold() == (50_000, 10, 10)


def test_message_ids_are_uuid7_in_32_hex_digits_and_grow_with_time() -> None:
    before = time.time_ns() // 1_000_000
    first = message_id()
    time.sleep(0.002)
    second = message_id()
    after = time.time_ns() // 1_000_000
    for text in (first, second):
        parsed = uuid.UUID(hex=text)
        assert (len(text), parsed.version, parsed.variant) == (32, 7, uuid.RFC_4122)
        assert before <= parsed.int >> 80 <= after
    assert first < second
    assert len({message_id() for _ in range(10_000)}) == 10_000


def test_media_files_go_out_in_1_mib_chunks_whole_or_by_range(tmp_path: Path) -> None:
    video = tmp_path / "video.mp4"
    video.write_bytes(bytes(range(256)) * (3 * 4096 + 1))  # 3 MiB and 256 bytes
    sizes: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def noting(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                sizes.append(len(message["body"]))
            await send(message)

        if scope["type"] == "http":
            await MediaFileResponse(video, media_type="video/mp4")(scope, receive, noting)

    with BackgroundServer(app) as url:
        whole = httpx.get(url, timeout=10)
        whole_sizes = list(sizes)
        sizes.clear()
        ranged = httpx.get(url, headers={"Range": "bytes=100-1048675"}, timeout=10)
    assert whole.content == video.read_bytes()
    assert whole_sizes == [MEDIA_CHUNK] * 3 + [256]
    assert (ranged.status_code, ranged.content) == (206, video.read_bytes()[100:1048676])
    assert sizes == [MEDIA_CHUNK]
