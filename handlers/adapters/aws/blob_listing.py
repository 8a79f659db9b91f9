"""What the clean-up pass asks of the bucket: the objects under a prefix written before a time, and deletes.

``older_objects`` pages through ``ListObjectsV2`` (1,000 keys a call) and keeps the objects
whose ``LastModified`` is before the time, skipping sidecars (``<key>.meta.json``, see
:mod:`handlers.adapters.aws.blobs`): a listing reads every key under the prefix, so the
scheduled pass leaves the bucket to its lifecycle rules, and only a pass run by hand lists it.
``delete_objects`` removes the objects with their sidecars, 1,000 keys a ``DeleteObjects`` call.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from handlers.adapters.aws.errors import aws_errors
from handlers.base.errors import StorageError
from handlers.ports import ListedObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["DELETE_BATCH", "delete_objects", "older_objects"]

DELETE_BATCH = 1000


def older_objects(client: S3Client, bucket: str, prefix: str, before: float, limit: int,
                  *, sidecar_suffix: str) -> list[ListedObject]:
    """Up to ``limit`` objects under ``prefix`` last modified before ``before``, in key order."""
    found: list[ListedObject] = []
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    with aws_errors(StorageError, f"list the objects under {prefix!r}"):
        for page in pages:
            for item in page.get("Contents", []):
                modified = item["LastModified"].timestamp()
                if modified < before and not item["Key"].endswith(sidecar_suffix):
                    found.append(ListedObject(key=item["Key"], size=item["Size"], modified=modified))
                if len(found) >= limit:
                    return found
    return found


def delete_objects(client: S3Client, bucket: str, keys: Collection[str], *, sidecar_suffix: str) -> None:
    """Delete ``keys`` and their sidecars (absent ones are no error); ``StorageError`` naming the first key
    S3 refused."""
    every = [name for key in keys for name in (key, key + sidecar_suffix)]
    for start in range(0, len(every), DELETE_BATCH):
        batch = every[start:start + DELETE_BATCH]
        with aws_errors(StorageError, f"delete {len(batch)} objects"):
            answer = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch],
                                                                  "Quiet": True})
        refused = answer.get("Errors", [])
        if refused:
            first = refused[0]
            raise StorageError(f"could not delete {first.get('Key')!r} ({first.get('Code')}) "
                               f"and {len(refused) - 1} more", code="delete_failed")
