"""How the AWS clients are built: retries, connection pool and endpoints.
"""

from __future__ import annotations

import pytest

from handlers.adapters.aws import AwsNames, aws_clients

pytestmark = pytest.mark.integration


def test_clients_retry_in_standard_mode_over_a_32_connection_pool(moto_server: str) -> None:
    clients = aws_clients(AwsNames(region="eu-west-1"), endpoint_url=moto_server)
    config = clients.sqs.meta.config
    assert (config.retries or {}).get("mode") == "standard"
    assert (config.max_pool_connections, config.region_name) == (32, "eu-west-1")


def test_an_endpoint_from_the_environment_makes_s3_path_style(monkeypatch: pytest.MonkeyPatch,
                                                              moto_server: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    clients = aws_clients(AwsNames())
    assert clients.s3.meta.endpoint_url == moto_server
    assert (clients.s3.meta.config.s3 or {}).get("addressing_style") == "path"


def test_an_explicit_endpoint_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch, moto_server: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert aws_clients(AwsNames(), endpoint_url=moto_server).dynamodb.meta.endpoint_url == moto_server
