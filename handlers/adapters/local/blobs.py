"""The blob store as a folder on disk.

``put_stream`` writes into a hidden temporary file beside the target, hashing and
counting as it goes, fsyncs it, writes the ``<key>.meta.json`` sidecar (content type,
metadata, size, sha256) atomically, then ``os.replace``-s the data into place: a reader
sees the old object or the new one, never a part. If the chunks raise, or the disk
does, the temporary files are removed and nothing changes at the key. ``head`` trusts the
sidecar only when its size matches the file, and otherwise re-hashes the file.

``older`` walks the folders under a prefix (the clean-up pass asks for ``jobs/`` and
``uploads/``); ``delete`` removes an object, its sidecar and the folders it leaves empty. A
write whose folder such a delete removed under it makes the folder again.

Disk errors leave as ``StorageError`` naming the key, never a file's path; a full disk
(no space, quota, file size limit) as :class:`~handlers.base.errors.StorageFull`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any

from handlers.adapters.local.disk import describe, is_full, storage_full
from handlers.base.errors import NotFound, StorageError
from handlers.ports import ListedObject, StoredObject

__all__ = ["CHUNK_SIZE", "DEFAULT_CONTENT_TYPE", "SIDECAR_SUFFIX", "FolderBlobStore"]

CHUNK_SIZE = 64 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
SIDECAR_SUFFIX = ".meta.json"
_TEMP_PREFIX = ".tmp-"


class FolderBlobStore:
    """:class:`~handlers.ports.BlobStore` under ``root``; keys are relative POSIX paths."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str,
                   metadata: Mapping[str, str] | None = None, only_new: bool = False) -> StoredObject:
        """Errors raised by ``chunks`` reach the caller as they are; disk errors as ``StorageError``.
        ``only_new``: an object already at ``key`` is kept and returned."""
        target = self._path(key)
        with _staged(target.parent, key) as (handle, temp):
            size, digest = _copy(chunks, handle, key)
            if only_new and (existing := self.head(key)) is not None:
                return existing
            sidecar = {"content_type": content_type, "metadata": dict(metadata or {}),
                       "size": size, "sha256": digest}
            with _disk_errors(key):
                _write_atomically(_sidecar(target), json.dumps(sidecar, sort_keys=True).encode(), key)
                os.replace(temp, target)
                _fsync_directory(target.parent)
        return StoredObject(key=key, uri=target.as_uri(), size=size, sha256=digest,
                            content_type=content_type)

    def head(self, key: str) -> StoredObject | None:
        target = self._path(key)
        try:
            if not target.is_file():
                return None
            size = target.stat().st_size
            sidecar = _read_sidecar(_sidecar(target))
            if sidecar.get("size") != size or not isinstance(sidecar.get("sha256"), str):
                sidecar = {**sidecar, "size": size, "sha256": _hash_file(target)}
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"could not read {key!r}: {describe(exc)}", code="read_failed") from exc
        return StoredObject(key=key, uri=target.as_uri(), size=size, sha256=str(sidecar["sha256"]),
                            content_type=str(sidecar.get("content_type") or DEFAULT_CONTENT_TYPE))

    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes in 64 KiB chunks; ``NotFound`` at once if the key holds nothing."""
        target = self._path(key)
        if not target.is_file():
            raise NotFound(f"no object at {key!r}")
        return _chunks_of(target, key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start``; ``NotFound`` if the key holds nothing."""
        target = self._path(key)
        try:
            with target.open("rb") as file:
                file.seek(max(start, 0))
                return file.read(max(length, 0))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no object at {key!r}") from None

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def presign(self, key: str, expires_in: int) -> None:
        """A folder makes no URLs of its own: the relay serves its objects."""
        self._path(key)
        return None

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def older(self, prefix: str, before: float, limit: int = 1000) -> list[ListedObject]:
        """Walk the folders under ``prefix`` in name order; an object's time is its file's modification time."""
        found: list[ListedObject] = []
        for key, path in self._walk(prefix):
            if len(found) >= limit:
                break
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                if stat.st_mtime < before:
                    found.append(ListedObject(key=key, size=stat.st_size, modified=stat.st_mtime))
        return found

    def delete(self, keys: Collection[str]) -> None:
        """Unlink each object and its sidecar, then the folders left empty up to the store's root."""
        for key in keys:
            target = self._path(key)
            with _disk_errors(key):
                for path in (target, _sidecar(target)):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                _prune(target.parent, self.root)

    def close(self) -> None:
        """Nothing to release: files are opened and closed per call."""

    def _walk(self, prefix: str) -> Iterator[tuple[str, Path]]:
        """``(key, file)`` of every object whose key starts with ``prefix``, in name order."""
        folder = prefix.rpartition("/")[0]
        base = self._path(folder) if folder else self.root
        for directory, folders, files in os.walk(base):
            folders.sort()
            for name in sorted(files):
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix) and not _is_hidden(name):
                    yield key, path

    def _path(self, key: str) -> Path:
        """``root / key`` for a safe relative key; ``StorageError`` (``invalid_key``) otherwise."""
        parts = PurePosixPath(key).parts
        unsafe = (not parts or "\\" in key or "\x00" in key or PurePosixPath(key).is_absolute()
                  or any(part in ("..", ".") for part in parts) or key.endswith(SIDECAR_SUFFIX)
                  or any(part.startswith(_TEMP_PREFIX) for part in parts))
        if unsafe:
            raise StorageError(f"refused blob key {key!r}", code="invalid_key")
        return self.root.joinpath(*parts)


@contextlib.contextmanager
def _disk_errors(key: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if is_full(exc):
            raise storage_full("the blob store") from exc
        raise StorageError(f"could not store {key!r}: {describe(exc)}", code="write_failed") from exc


@contextlib.contextmanager
def _staged(folder: Path, key: str) -> Iterator[tuple[IO[bytes], str]]:
    """A temporary file in ``folder`` (made if need be), removed on the way out unless it was renamed away."""
    with _disk_errors(key):
        descriptor, temp = _temporary(folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle, temp
    finally:
        with _disk_errors(key), contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _temporary(folder: Path, attempts: int = 3) -> tuple[int, str]:
    """``mkstemp`` in ``folder``, making the folder again if a delete removed it (empty) in between."""
    for attempt in range(attempts):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=folder)
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _prune(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents below ``root`` while they are empty."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            return
        folder = folder.parent


def _is_hidden(name: str) -> bool:
    """A sidecar or a write's temporary file: not an object of its own."""
    return name.endswith(SIDECAR_SUFFIX) or name.startswith(_TEMP_PREFIX)


def _copy(chunks: Iterable[bytes], handle: IO[bytes], key: str) -> tuple[int, str]:
    """Write every chunk, hashing and counting; the chunks' own errors pass through untouched."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        with _disk_errors(key):
            handle.write(chunk)
        size += len(chunk)
    with _disk_errors(key):
        handle.flush()
        os.fsync(handle.fileno())
    return size, digest.hexdigest()


def _write_atomically(target: Path, data: bytes, key: str) -> None:
    with _staged(target.parent, key) as (handle, temp):
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        os.replace(temp, target)


def _fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + SIDECAR_SUFFIX)


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks_of(path: Path, key: str) -> Iterator[bytes]:
    try:
        with path.open("rb") as handle:
            yield from iter(lambda: handle.read(CHUNK_SIZE), b"")
    except FileNotFoundError as exc:
        raise NotFound(f"no object at {key!r}") from exc
    except OSError as exc:
        raise StorageError(f"could not read {key!r}: {describe(exc)}", code="read_failed") from exc
