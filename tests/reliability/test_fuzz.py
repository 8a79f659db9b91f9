"""Fuzz the HTTP API from its own OpenAPI document: whatever comes in, no 5xx goes out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.openapi import openapi_document
from handlers.net.server import BackgroundServer
from tests.support.fakes import FakeProvider, local_relay

schema = schemathesis.openapi.from_dict(openapi_document())


@schemathesis.serializer("video/mp4", "video/quicktime", "audio/mpeg", "audio/wav")
def _raw_bytes(ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """Media uploads are raw bytes on the wire; whatever the fuzzer made, send it as bytes."""
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    relay = local_relay(Path(tmp_path_factory.mktemp("fuzz")), FakeProvider())
    with BackgroundServer(create_app(relay, ApiKeys(["fuzz-key"]))) as url:
        relay.callback_base = url
        yield url
    relay.close()


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail(case: schemathesis.Case, live_url: str) -> None:
    case.call_and_validate(base_url=live_url, headers={"Authorization": "Bearer fuzz-key"},
                           checks=[not_a_server_error])
