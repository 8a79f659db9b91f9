"""The blob store as an S3 bucket (or MinIO, R2… through an endpoint URL).

``put_stream`` streams: it buffers up to ``part_size`` bytes; a stream that fits in one
part is one ``PutObject``, a longer one a multipart upload whose parts go up on
``concurrency`` threads while the next part is read, into one of at most ``concurrency + 2``
part buffers used over and over, so memory stays under ``(concurrency + 3) * part_size``
whatever the length. A body that can ``readinto`` (a :class:`~handlers.net.download.ResultBody`,
a binary file) is read straight into those buffers; other iterables are gathered into them.
sha256 and size are computed on the way through. Any failure, including one raised by the
caller's chunks, waits for the parts in flight and aborts the multipart upload (the caller's
own exception leaves unchanged, a botocore one as ``StorageError``).

Writes are conditional, so racing writers leave one winner: a put that found the key
empty sends ``If-None-Match: *``, one that found an object sends ``If-Match`` with its
ETag. When S3 answers 412 someone else got there first: the loser discards its upload
and returns the winner's object (``head``). A put that finds no race replaces the object.

A single-part object carries ``sha256`` in its metadata from the start. A multipart upload
only learns its hash at the end, when its metadata is fixed, so the hash goes into a small
``<key>.meta.json`` sidecar bound to the object's ETag and size (copying the object onto
itself to change its metadata would rewrite every byte). ``head`` trusts the sidecar only
when both still match; otherwise it re-hashes that version of the object, as the folder store
does, and writes the sidecar it lacked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from handlers.adapters.aws.blob_listing import delete_objects, older_objects
from handlers.adapters.aws.errors import aws_errors, error_code, translate
from handlers.base.errors import StorageError
from handlers.base.logs import get_logger
from handlers.ports import ListedObject, StoredObject, SupportsReadinto

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, HeadObjectOutputTypeDef

__all__ = ["MIB", "MIN_PART_SIZE", "READ_CHUNK", "SHA256_METADATA", "SIDECAR_SUFFIX", "S3BlobStore", "check_key"]

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
READ_CHUNK = 64 * 1024
SHA256_METADATA = "sha256"
SIDECAR_SUFFIX = ".meta.json"
SIDECAR_MAX_BYTES = 4096
COALESCE = 64 * 1024
_HEAD_ATTEMPTS = 3
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_SUPERSEDED = frozenset({"PreconditionFailed", "412", "NoSuchKey", "ConditionalRequestConflict"})

log = get_logger(__name__)
_T = TypeVar("_T")


def check_key(key: str) -> str:
    """``key`` if it is a plain relative path of non-empty segments, not a sidecar's; ``StorageError`` if not."""
    parts = key.split("/")
    unsafe = (not key or "\\" in key or "\x00" in key or PurePosixPath(key).is_absolute()
              or any(part in ("", ".", "..") for part in parts) or len(key.encode()) > 1000
              or key.endswith(SIDECAR_SUFFIX))
    if unsafe:
        raise StorageError(f"refused blob key {key!r}", code="invalid_key")
    return key


class _Superseded(Exception):
    """A conditional write found the key changed: another writer got there first."""


def _unless_missing(what: str, call: Callable[..., _T], **arguments: Any) -> _T | None:
    """``call(**arguments)``, or ``None`` if S3 says the key holds nothing; other errors as ``StorageError``."""
    try:
        return call(**arguments)
    except ClientError as exc:
        if error_code(exc) in _MISSING:
            return None
        raise translate(exc, StorageError, what) from exc
    except BotoCoreError as exc:
        raise translate(exc, StorageError, what) from exc


def _conditionally(what: str, uri: str, call: Callable[..., Any], **arguments: Any) -> Any:
    """``call(**arguments)``; a failed precondition as ``_Superseded``, other errors as ``StorageError``."""
    try:
        return call(**arguments)
    except ClientError as exc:
        if error_code(exc) in _SUPERSEDED:
            raise _Superseded(what) from exc
        raise translate(exc, StorageError, f"{what} {uri}") from exc
    except BotoCoreError as exc:
        raise translate(exc, StorageError, f"{what} {uri}") from exc


class S3BlobStore:
    """:class:`~handlers.ports.BlobStore` in ``bucket``, encrypted at rest (SSE-S3, or SSE-KMS with ``kms_key_id``).

    ``concurrency`` parts of ``part_size`` bytes go up at once (boto3's ``upload_file``
    sends 10 of 8 MiB); the client's connection pool (32) should be at least that large.
    """

    def __init__(self, client: S3Client, bucket: str, *, part_size: int = 8 * MIB, concurrency: int = 4,
                 kms_key_id: str | None = None) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part)")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._client = client
        self.bucket = bucket
        self.part_size = part_size
        self.concurrency = concurrency
        self.kms_key_id = kms_key_id

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str,
                   metadata: Mapping[str, str] | None = None, only_new: bool = False) -> StoredObject:
        """``only_new`` sends ``If-None-Match: *`` without a ``HeadObject`` first: an object already there
        wins, as a racing writer would."""
        check_key(key)
        condition = {"IfNoneMatch": "*"} if only_new else self._condition(key)
        upload = _Upload(self._client, self, key, content_type, dict(metadata or {}), condition)
        try:
            if isinstance(chunks, SupportsReadinto):
                upload.fill(chunks)
            else:
                for chunk in chunks:
                    upload.write(chunk)
            return upload.finish()
        except _Superseded:
            upload.abort()
            return self._winner(key)
        except BaseException:
            upload.abort()
            raise

    def head(self, key: str) -> StoredObject | None:
        """The object at ``key``, or ``None``; its sha256 from metadata, else a matching sidecar, else re-hashed.

        A re-hash reads exactly the version ``HeadObject`` saw (``If-Match`` its ETag) and
        leaves a sidecar for it, so the next ``head`` reads 100 bytes instead of the object.
        """
        check_key(key)
        for _ in range(_HEAD_ATTEMPTS):
            answer = self._head_object(key)
            if answer is None:
                return None
            sha256 = answer.get("Metadata", {}).get(SHA256_METADATA) or self._sidecar_sha256(key, answer)
            if not sha256:
                try:
                    sha256 = self._hash(key, answer["ETag"])
                except _Superseded:
                    continue  # replaced while it was read: look again
                self._write_sidecar(key, answer["ETag"], answer["ContentLength"], sha256)
            return StoredObject(key=key, uri=self.uri(key), size=answer["ContentLength"], sha256=sha256,
                                content_type=answer.get("ContentType") or "application/octet-stream")
        raise StorageError(f"{key!r} kept changing while it was hashed", code="write_conflict")

    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes in 64 KiB chunks; ``NotFound`` at once if the key holds nothing."""
        check_key(key)
        with aws_errors(StorageError, f"read {key!r}"):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return self._chunks(body, key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start`` (one ranged ``GetObject``); ``NotFound`` if the key holds
        nothing. A range that starts past the end reads as empty."""
        check_key(key)
        if length <= 0:
            return b""
        with aws_errors(StorageError, f"read {key!r}"):
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=key,
                                                 Range=f"bytes={max(start, 0)}-{max(start, 0) + length - 1}")
            except self._client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b""
                raise
            return bytes(answer["Body"].read())

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def presign(self, key: str, expires_in: int) -> str:
        """A URL that GETs the object without credentials for ``expires_in`` seconds."""
        check_key(key)
        with aws_errors(StorageError, f"presign {key!r}"):
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in)

    def local_path(self, key: str) -> None:
        """Objects live in the bucket, never on this machine."""
        check_key(key)
        return None

    def older(self, prefix: str, before: float, limit: int = 1000) -> list[ListedObject]:
        """``ListObjectsV2`` pages under ``prefix``, keeping the objects modified before ``before``."""
        return older_objects(self._client, self.bucket, prefix, before, limit, sidecar_suffix=SIDECAR_SUFFIX)

    def delete(self, keys: Collection[str]) -> None:
        """``DeleteObjects`` of the keys and their sidecars, 1,000 a call."""
        delete_objects(self._client, self.bucket, [check_key(key) for key in keys], sidecar_suffix=SIDECAR_SUFFIX)

    def encryption(self) -> dict[str, Any]:
        """The server-side encryption arguments every write carries."""
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}

    def _head_object(self, key: str) -> HeadObjectOutputTypeDef | None:
        return _unless_missing(f"head {key!r}", self._client.head_object, Bucket=self.bucket, Key=key)

    def _sidecar_sha256(self, key: str, answer: HeadObjectOutputTypeDef) -> str | None:
        """The sha256 the sidecar records, if it describes this very object (same ETag and size).

        A sidecar that is missing, unreadable or not JSON is no sidecar: the object gets re-hashed.
        """
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key + SIDECAR_SUFFIX)["Body"]
            try:
                sidecar = json.loads(body.read(SIDECAR_MAX_BYTES))
            finally:
                body.close()
        except (ClientError, BotoCoreError, ValueError) as exc:
            if not isinstance(exc, ClientError) or error_code(exc) not in _MISSING:
                log.warning("blob.sidecar_unreadable", uri=self.uri(key), error=str(exc))
            return None
        if not isinstance(sidecar, dict) or not isinstance(sidecar.get(SHA256_METADATA), str):
            return None
        if (sidecar.get("etag"), sidecar.get("size")) != (answer.get("ETag"), answer["ContentLength"]):
            return None
        return str(sidecar[SHA256_METADATA])

    def _condition(self, key: str) -> dict[str, str]:
        """Write only over what is there now: ``If-Match`` its ETag, or ``If-None-Match: *`` if nothing."""
        answer = self._head_object(key)
        return {"IfNoneMatch": "*"} if answer is None else {"IfMatch": answer["ETag"]}

    def _winner(self, key: str) -> StoredObject:
        winner = self.head(key)
        if winner is None:
            raise StorageError(f"{key!r} changed while it was written and is gone now",
                               code="write_conflict")
        return winner

    def _hash(self, key: str, etag: str) -> str:
        """sha256 of the version of ``key`` whose ETag is ``etag``; ``_Superseded`` if it is gone."""
        body = _conditionally("re-hash", self.uri(key), self._client.get_object,
                              Bucket=self.bucket, Key=key, IfMatch=etag)["Body"]
        digest = hashlib.sha256()
        for chunk in self._chunks(body, key):
            digest.update(chunk)
        return digest.hexdigest()

    def _write_sidecar(self, key: str, etag: str, size: int, sha256: str) -> None:
        """Best effort: without its sidecar a multipart object is re-hashed by ``head``."""
        body = json.dumps({"etag": etag, "size": size, SHA256_METADATA: sha256}, sort_keys=True).encode()
        try:
            self._client.put_object(Bucket=self.bucket, Key=key + SIDECAR_SUFFIX, Body=body,
                                    ContentType="application/json", **self.encryption())
        except (ClientError, BotoCoreError) as exc:
            log.warning("blob.sidecar_failed", uri=self.uri(key), error=str(exc))

    def _chunks(self, body: Any, key: str) -> Iterator[bytes]:
        try:
            with aws_errors(StorageError, f"read {key!r}"):
                yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()


class _Upload:
    """One ``put_stream`` in progress: the pending bytes, the hash, and the multipart upload once there is one.

    A body with ``readinto`` is read straight into part buffers (:meth:`fill`). Chunks of
    any other iterable wait in ``pending`` (views, not copies) until a part's worth is
    copied into a part buffer (:meth:`write`); pieces under :data:`COALESCE` bytes are
    gathered first, so a body that arrives a few bytes at a time costs no more memory than
    one that arrives whole. The reading thread hashes each part as it hands it to a part
    thread.
    """

    def __init__(self, client: S3Client, store: S3BlobStore, key: str, content_type: str,
                 metadata: dict[str, str], condition: dict[str, str]) -> None:
        self.client, self.store, self.key, self.content_type = client, store, key, content_type
        self.uri = store.uri(key)
        self.metadata, self.condition = metadata, condition
        self.digest = hashlib.sha256()
        self.size = 0
        self.pending: deque[memoryview] = deque()
        self.pending_size = 0
        self.small = bytearray()
        self.free: list[bytearray] = []
        self.upload_id: str | None = None
        self.parts: list[CompletedPartTypeDef] = []
        self.sent = 0
        self.aborting = threading.Event()
        self.in_flight: set[Future[None]] = set()
        self.pool: ThreadPoolExecutor | None = None

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if len(chunk) < COALESCE:
            self.small += chunk
            if len(self.small) < COALESCE:
                return
            self._push(bytes(self.small))
            self.small.clear()
        else:
            self._push_small()
            self._push(chunk if isinstance(chunk, bytes) else bytes(chunk))  # never a view of a caller's buffer
        while self.pending_size > self.store.part_size:
            self._send_part(self._take(self.store.part_size))

    def _push(self, data: bytes) -> None:
        self.pending.append(memoryview(data))
        self.pending_size += len(data)

    def _push_small(self) -> None:
        if self.small:
            self._push(bytes(self.small))
            self.small.clear()

    def fill(self, body: SupportsReadinto) -> None:
        """Read ``body`` straight into part buffers: nobody copies its bytes on the way.

        A full part goes up only once a byte after it has arrived, so a body of exactly one
        part is still a single ``PutObject``. The last part (held back, or the shorter tail,
        which is copied out of its buffer) goes up here; a body that never filled more than
        one part is left in ``pending`` for :meth:`finish` to put whole, as :meth:`write` does.
        """
        held: bytearray | None = None
        while True:
            part = self._buffer()
            filled = _read_full(body, part)
            self.size += filled
            if held is not None and filled:
                self._send_part(held)
                held = None
            if filled < len(part):
                break
            held = part
        last = held if held is not None else bytearray(memoryview(part)[:filled])
        self.free.append(part)  # either nothing was read into it or its tail was copied out
        if self.upload_id is None:
            self._push(bytes(last))
        elif last:
            self._send_part(last)

    def _buffer(self) -> bytearray:
        return self.free.pop() if self.free else bytearray(self.store.part_size)

    def _take(self, size: int) -> bytearray:
        """The first ``size`` pending bytes copied into a part buffer (the only copy made of them).

        A whole part reuses one of the part buffers the part threads hand back, so a long
        upload does not allocate and free a part's worth of memory per part.
        """
        part = self._buffer() if size == self.store.part_size else bytearray(size)
        filled = 0
        while filled < size:
            view = self.pending[0]
            if len(view) <= size - filled:
                self.pending.popleft()
            else:
                self.pending[0] = view[size - filled:]
                view = view[:size - filled]
            part[filled:filled + len(view)] = view
            filled += len(view)
        self.pending_size -= size
        return part

    def finish(self) -> StoredObject:
        self._push_small()
        if self.upload_id is None:
            body = bytes(self._take(self.pending_size))
            self.digest.update(body)
            _conditionally(
                "put", self.uri, self.client.put_object, Bucket=self.store.bucket, Key=self.key,
                Body=body, ContentType=self.content_type,
                Metadata={**self.metadata, SHA256_METADATA: self.digest.hexdigest()},
                **self.store.encryption(), **self.condition)
        else:
            self._complete()
        return StoredObject(key=self.key, uri=self.uri, size=self.size, sha256=self.digest.hexdigest(),
                            content_type=self.content_type)

    def abort(self) -> None:
        """Let the parts in flight land, then drop the multipart upload, if any (best effort: the
        bucket's lifecycle rule sweeps what is left)."""
        self.aborting.set()
        self._stop_pool()
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None:
            return
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.abort_multipart_upload(Bucket=self.store.bucket, Key=self.key, UploadId=upload_id)

    def _send_part(self, data: bytearray) -> None:
        """Hash ``data``, then hand it to a part thread once fewer than ``concurrency`` parts are in flight.

        Parts are hashed here, in order, by the reading thread: hashlib lets go of the GIL on
        large buffers, so the parts in flight keep going meanwhile, and no part waits for
        another's turn to be hashed before it may be sent.
        """
        self.digest.update(data)
        if self.upload_id is None:
            with aws_errors(StorageError, f"start upload of {self.uri}"):
                self.upload_id = self.client.create_multipart_upload(
                    Bucket=self.store.bucket, Key=self.key, ContentType=self.content_type,
                    Metadata=self.metadata, ChecksumAlgorithm="CRC32", **self.store.encryption())["UploadId"]
            self.pool = ThreadPoolExecutor(self.store.concurrency, thread_name_prefix="s3-part")
        assert self.pool is not None
        while len(self.in_flight) >= self.store.concurrency:
            self._settle(FIRST_COMPLETED)
        self.sent += 1
        self.in_flight.add(self.pool.submit(self._upload_part, self.sent, data))

    def _upload_part(self, number: int, data: bytearray) -> None:
        try:
            if self.aborting.is_set():
                return  # the upload is being dropped: no point sending more of it
            with aws_errors(StorageError, f"upload part {number} of {self.uri}"):
                # botocore takes any bytes-like blob (it validates bytes, bytearray or str); the stubs name bytes
                answer = self.client.upload_part(Bucket=self.store.bucket, Key=self.key,
                                                 UploadId=self.upload_id or "", PartNumber=number,
                                                 Body=data,  # type: ignore[arg-type]
                                                 ChecksumAlgorithm="CRC32")
            self.parts.append({"ETag": answer["ETag"], "PartNumber": number,
                               "ChecksumCRC32": answer["ChecksumCRC32"]})
        finally:
            if len(data) == self.store.part_size:
                self.free.append(data)  # before this future is done, so a waiting reader finds it

    def _settle(self, until: str) -> None:
        """Wait for parts in flight (the first to finish, or all); a failed part's error is raised here."""
        done, self.in_flight = wait(self.in_flight, return_when=until)
        for future in done:
            future.result()

    def _stop_pool(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self.in_flight = set()

    def _complete(self) -> None:
        if self.pending_size:
            self._send_part(self._take(self.pending_size))
        self._settle(ALL_COMPLETED)
        self._stop_pool()
        answer = _conditionally(
            "complete upload of", self.uri, self.client.complete_multipart_upload, Bucket=self.store.bucket,
            Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": sorted(self.parts, key=_number)},
            **self.condition)
        self.upload_id = None
        self.store._write_sidecar(self.key, answer["ETag"], self.size, self.digest.hexdigest())


def _read_full(body: SupportsReadinto, part: bytearray) -> int:
    """Bytes read into ``part``: all of it, or fewer only at the end of ``body``."""
    view, filled = memoryview(part), 0
    while filled < len(part) and (count := body.readinto(view[filled:])):
        filled += count
    return filled


def _number(part: CompletedPartTypeDef) -> int:
    return part.get("PartNumber", 0)
