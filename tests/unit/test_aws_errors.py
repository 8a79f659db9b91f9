"""AWS error codes become the project's snake_case codes at the adapter boundary; the AWS code stays beside."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from handlers.adapters.aws.errors import AWS_CODES, aws_code, translate
from handlers.base.errors import Conflict, NotFound, QueueError, RelayError, StorageError


def client_error(code: str, operation: str = "PutItem") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, operation)


@pytest.mark.parametrize(("aws", "kind", "ours"), [
    ("ConditionalCheckFailedException", Conflict, "conflict"),
    ("PreconditionFailed", Conflict, "conflict"),
    ("NoSuchKey", NotFound, "not_found"),
    ("404", NotFound, "not_found"),
    ("QueueDoesNotExist", NotFound, "missing_resource"),
    ("AWS.SimpleQueueService.NonExistentQueue", NotFound, "missing_resource"),
    ("NoSuchBucket", StorageError, "missing_resource"),
    ("ResourceNotFoundException", StorageError, "missing_resource"),
    ("ThrottlingException", StorageError, "throttled"),
    ("ProvisionedThroughputExceededException", StorageError, "throttled"),
    ("SlowDown", StorageError, "throttled"),
    ("RequestLimitExceeded", StorageError, "throttled"),
    ("AccessDenied", StorageError, "access_denied"),
    ("AccessDeniedException", StorageError, "access_denied"),
    ("AccessDeniedForSomeNewReason", StorageError, "access_denied"),
    ("InternalError", StorageError, "storage_error"),
])
def test_each_aws_code_maps_to_one_class_and_code_of_ours(aws: str, kind: type[RelayError], ours: str) -> None:
    error = translate(client_error(aws), StorageError, "put job_a")
    assert (type(error), error.code, aws_code(error)) == (kind, ours, aws)
    assert aws in error.message


def test_an_unknown_code_takes_the_adapters_own_code() -> None:
    error = translate(client_error("InternalError"), QueueError, "send")
    assert (type(error), error.code, aws_code(error)) == (QueueError, "queue_error", "InternalError")


@pytest.mark.parametrize("exc", [EndpointConnectionError(endpoint_url="http://nowhere.invalid"),
                                 ReadTimeoutError(endpoint_url="http://nowhere.invalid")])
def test_no_connection_or_a_timeout_is_unavailable(exc: Exception) -> None:
    error = translate(exc, StorageError, "head k")  # type: ignore[arg-type]
    assert (type(error), error.code, aws_code(error)) == (StorageError, "unavailable", type(exc).__name__)


def test_other_botocore_failures_take_the_adapters_code() -> None:
    error = translate(NoCredentialsError(), QueueError, "publish")
    assert (error.code, aws_code(error)) == ("queue_error", "NoCredentialsError")


def test_every_code_of_ours_in_the_table_is_snake_case() -> None:
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", code) for _, code in AWS_CODES.values())
