"""A stored object as a seekable, read-only file that fetches only the blocks a reader touches.

PyAV (FFmpeg) reads a container's index and a few frames through any object with ``read``,
``seek`` and ``tell``. :class:`RangedFile` answers those from fixed-size blocks fetched with a
``read_range(start, length)`` function (:meth:`handlers.ports.BlobStore.read_range`) and keeps the
most recent ones, so the header, the index and the frames decoded cost a few requests, never the
whole file.

A storage error raised by a fetch is kept in :attr:`RangedFile.failure` and every later read
answers end of file: FFmpeg may swallow or retry a failed read, and the caller re-raises the
failure once the parser returns (an unreadable store is not an unplayable video).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from handlers.base.errors import RelayError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from handlers.ports import BlobStore

__all__ = ["BLOCK_SIZE", "CACHED_BLOCKS", "RangedFile", "blob_source"]

BLOCK_SIZE = 256 * 1024
CACHED_BLOCKS = 16  # 4 MiB at most per open file


class RangedFile(io.RawIOBase):
    """``size`` bytes read through ``read_range(start, length)``, one block at a time.

    ``requests`` and ``bytes_fetched`` count what was asked of the store (tests and logs use them).
    """

    def __init__(self, read_range: Callable[[int, int], bytes], size: int, *, block_size: int = BLOCK_SIZE,
                 cached_blocks: int = CACHED_BLOCKS) -> None:
        super().__init__()
        if block_size < 1 or cached_blocks < 1:
            raise ValueError(f"block_size and cached_blocks must be positive, got {block_size}, {cached_blocks}")
        self._read_range, self.size = read_range, size
        self._block_size, self._cached_blocks = block_size, cached_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._position = 0
        self.requests = 0
        self.bytes_fetched = 0
        self.failure: RelayError | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"whence must be 0, 1 or 2, got {whence}")
        if base + offset < 0:
            raise ValueError(f"negative position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target) and self._position < self.size and self.failure is None:
            block = self._block(self._position // self._block_size)
            start = self._position % self._block_size
            piece = block[start:start + len(target) - filled]
            if not piece:
                break  # the object is shorter than its announced size
            target[filled:filled + len(piece)] = piece
            filled += len(piece)
            self._position += len(piece)
        return filled

    def _block(self, index: int) -> bytes:
        cached = self._blocks.get(index)
        if cached is not None:
            self._blocks.move_to_end(index)
            return cached
        try:
            block = self._read_range(index * self._block_size, self._block_size)
        except RelayError as exc:
            self.failure = exc
            return b""
        self.requests += 1
        self.bytes_fetched += len(block)
        self._blocks[index] = block
        if len(self._blocks) > self._cached_blocks:
            self._blocks.popitem(last=False)
        return block


def blob_source(blobs: BlobStore, key: str, size: int) -> Path | RangedFile:
    """The object at ``key`` as PyAV can open it: its file when the store keeps one on this machine, else a
    :class:`RangedFile` over :meth:`~handlers.ports.BlobStore.read_range`."""
    path = blobs.local_path(key)
    if path is not None and path.is_file():
        return path
    return RangedFile(partial(blobs.read_range, key), size)
