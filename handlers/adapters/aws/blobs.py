"""The blob store as an S3 bucket (or MinIO, R2… through an endpoint URL).

``put_stream`` keeps at most about one part in memory: it buffers up to ``part_size``
bytes; a stream that fits in one part is one ``PutObject``, a longer one a multipart
upload of ``part_size`` parts. sha256 and size are computed on the way through. Any
failure, including one raised by the caller's chunks, aborts the multipart upload
(the caller's own exception leaves unchanged, a botocore one as ``StorageError``).

Writes are conditional, so racing writers leave one winner: a put that found the key
empty sends ``If-None-Match: *``, one that found an object sends ``If-Match`` with its
ETag. When S3 answers 412 someone else got there first: the loser discards its upload
and returns the winner's object (``head``). A put that finds no race replaces the object.

A single-part object carries ``sha256`` in its metadata from the start. A multipart
upload can only learn its hash at the end, so it is completed and then copied onto
itself with the hash added (objects up to 5 GiB, CopyObject's limit); until then, or
beyond that size, ``head`` re-hashes the object, as the local store does for a file
without its sidecar.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.adapters.aws.errors import aws_errors, error_code, translate
from handlers.errors import StorageError
from handlers.ports import StoredObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, HeadObjectOutputTypeDef

__all__ = ["COPY_LIMIT", "MIB", "MIN_PART_SIZE", "READ_CHUNK", "SHA256_METADATA", "S3BlobStore", "check_key"]

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
COPY_LIMIT = 5 * 1024 * MIB
READ_CHUNK = 64 * 1024
SHA256_METADATA = "sha256"
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_SUPERSEDED = frozenset({"PreconditionFailed", "412", "NoSuchKey", "ConditionalRequestConflict"})


def check_key(key: str) -> str:
    """``key`` if it is a plain relative path of non-empty segments; ``StorageError`` (``invalid_key``) if not."""
    parts = key.split("/")
    unsafe = (not key or "\\" in key or "\x00" in key or PurePosixPath(key).is_absolute()
              or any(part in ("", ".", "..") for part in parts) or len(key.encode()) > 1024)
    if unsafe:
        raise StorageError(f"refused blob key {key!r}", code="invalid_key")
    return key


class _Superseded(Exception):
    """A conditional write found the key changed: another writer got there first."""


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
    """:class:`~handlers.ports.BlobStore` in ``bucket``, encrypted at rest (SSE-S3, or SSE-KMS with ``kms_key_id``)."""

    def __init__(self, client: S3Client, bucket: str, *, part_size: int = 8 * MIB,
                 kms_key_id: str | None = None) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part)")
        self._client = client
        self.bucket = bucket
        self.part_size = part_size
        self.kms_key_id = kms_key_id

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str,
                   metadata: Mapping[str, str] | None = None) -> StoredObject:
        check_key(key)
        upload = _Upload(self._client, self, key, content_type, dict(metadata or {}), self._condition(key))
        try:
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
        """The object at ``key`` (re-hashed if it has no ``sha256`` metadata), or ``None``."""
        answer = self._head_object(check_key(key))
        if answer is None:
            return None
        sha256 = answer.get("Metadata", {}).get(SHA256_METADATA) or self._hash(key)
        return StoredObject(key=key, uri=self.uri(key), size=answer["ContentLength"], sha256=sha256,
                            content_type=answer.get("ContentType") or "application/octet-stream")

    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes in 64 KiB chunks; ``NotFound`` at once if the key holds nothing."""
        check_key(key)
        with aws_errors(StorageError, f"read {self.uri(key)}"):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return self._chunks(body, key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def presign(self, key: str, expires_in: int) -> str:
        """A URL that GETs the object without credentials for ``expires_in`` seconds."""
        check_key(key)
        with aws_errors(StorageError, f"presign {self.uri(key)}"):
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in)

    def encryption(self) -> dict[str, Any]:
        """The server-side encryption arguments every write carries."""
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}

    def _head_object(self, key: str) -> HeadObjectOutputTypeDef | None:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return None
            raise translate(exc, StorageError, f"head {self.uri(key)}") from exc
        except BotoCoreError as exc:
            raise translate(exc, StorageError, f"head {self.uri(key)}") from exc

    def _condition(self, key: str) -> dict[str, str]:
        """Write only over what is there now: ``If-Match`` its ETag, or ``If-None-Match: *`` if nothing."""
        answer = self._head_object(key)
        return {"IfNoneMatch": "*"} if answer is None else {"IfMatch": answer["ETag"]}

    def _winner(self, key: str) -> StoredObject:
        winner = self.head(key)
        if winner is None:
            raise StorageError(f"{self.uri(key)} changed while it was written and is gone now",
                               code="write_conflict")
        return winner

    def _hash(self, key: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.read(key):
            digest.update(chunk)
        return digest.hexdigest()

    def _chunks(self, body: Any, key: str) -> Iterator[bytes]:
        try:
            with aws_errors(StorageError, f"read {self.uri(key)}"):
                yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()


class _Upload:
    """One ``put_stream`` in progress: the buffer, the hash, and the multipart upload once there is one."""

    def __init__(self, client: S3Client, store: S3BlobStore, key: str, content_type: str,
                 metadata: dict[str, str], condition: dict[str, str]) -> None:
        self.client, self.store, self.key, self.content_type = client, store, key, content_type
        self.uri = store.uri(key)
        self.metadata, self.condition = metadata, condition
        self.digest = hashlib.sha256()
        self.size = 0
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[CompletedPartTypeDef] = []

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        self.buffer += chunk
        while len(self.buffer) > self.store.part_size:
            self._send_part(self._take(self.store.part_size))

    def _take(self, size: int) -> bytes:
        """The first ``size`` bytes of the buffer, copied once, and dropped from it."""
        with memoryview(self.buffer) as view, view[:size] as head:
            part = bytes(head)
        del self.buffer[:size]
        return part

    def finish(self) -> StoredObject:
        metadata = {**self.metadata, SHA256_METADATA: self.digest.hexdigest()}
        if self.upload_id is None:
            _conditionally(
                "put", self.uri, self.client.put_object, Bucket=self.store.bucket, Key=self.key,
                Body=bytes(self.buffer), ContentType=self.content_type, Metadata=metadata,
                **self.store.encryption(), **self.condition)
        else:
            self._complete(metadata)
        return StoredObject(key=self.key, uri=self.uri, size=self.size,
                            sha256=self.digest.hexdigest(), content_type=self.content_type)

    def abort(self) -> None:
        """Drop the multipart upload, if any (best effort: the bucket's lifecycle rule sweeps what is left)."""
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None:
            return
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.abort_multipart_upload(Bucket=self.store.bucket, Key=self.key, UploadId=upload_id)

    def _send_part(self, data: bytes) -> None:
        if self.upload_id is None:
            with aws_errors(StorageError, f"start upload of {self.uri}"):
                self.upload_id = self.client.create_multipart_upload(
                    Bucket=self.store.bucket, Key=self.key, ContentType=self.content_type,
                    Metadata=self.metadata, ChecksumAlgorithm="CRC32", **self.store.encryption())["UploadId"]
        number = len(self.parts) + 1
        with aws_errors(StorageError, f"upload part {number} of {self.uri}"):
            answer = self.client.upload_part(Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id,
                                             PartNumber=number, Body=data, ChecksumAlgorithm="CRC32")
        self.parts.append({"ETag": answer["ETag"], "PartNumber": number, "ChecksumCRC32": answer["ChecksumCRC32"]})

    def _complete(self, metadata: dict[str, str]) -> None:
        if self.buffer:
            self._send_part(self._take(len(self.buffer)))
        answer = _conditionally(
            "complete upload of", self.uri, self.client.complete_multipart_upload, Bucket=self.store.bucket,
            Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}, **self.condition)
        self.upload_id = None
        if self.size <= COPY_LIMIT:
            _conditionally(
                "record the sha256 of", self.uri, self.client.copy_object, Bucket=self.store.bucket, Key=self.key,
                CopySource={"Bucket": self.store.bucket, "Key": self.key}, CopySourceIfMatch=answer["ETag"],
                MetadataDirective="REPLACE", Metadata=metadata, ContentType=self.content_type,
                ChecksumAlgorithm="CRC32", **self.store.encryption())
