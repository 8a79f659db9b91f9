"""The Lambda entries build their extra clients (SSM, a lone SQS client) through the shared factory."""

from __future__ import annotations

import uuid

import boto3
import pytest

from handlers.adapters.aws import AwsNames, aws_clients
from handlers.adapters.aws.clients import CONNECT_TIMEOUT, MAX_POOL_CONNECTIONS, READ_TIMEOUT, aws_client
from handlers.app.settings import Settings
from handlers.lambdas.webhooks import with_webhook_secrets

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


@pytest.mark.parametrize("service", ["ssm", "sqs"])
def test_a_single_client_has_the_factory_retries_timeouts_and_pool(service: str, moto_server: str) -> None:
    """``aws_client`` gives the same configuration as the four adapter clients, for any region."""
    config = aws_client(service, "eu-west-1", endpoint_url=moto_server).meta.config  # type: ignore[arg-type]
    shared = aws_clients(AwsNames(region="eu-west-1"), endpoint_url=moto_server).sqs.meta.config
    for attribute in ("retries", "connect_timeout", "read_timeout", "max_pool_connections", "region_name"):
        assert getattr(config, attribute) == getattr(shared, attribute), attribute
    assert (config.connect_timeout, config.read_timeout, config.max_pool_connections) == (
        CONNECT_TIMEOUT, READ_TIMEOUT, MAX_POOL_CONNECTIONS)


def test_the_webhooks_function_reads_a_secret_parameter_through_the_factory(moto_server: str) -> None:
    """With no client given, the SSM read goes to ``AWS_ENDPOINT_URL`` from the settings, with decryption."""
    parameter = f"/relay/{uuid.uuid4().hex[:8]}/webhook-crm"
    ssm = boto3.client("ssm", endpoint_url=moto_server)
    ssm.put_parameter(Name=parameter, Value=SECRET, Type="SecureString")
    settings = Settings.from_env({"AWS_ENDPOINT_URL": moto_server, "RELAY_SUBSCRIBERS": "crm:*",
                                  "RELAY_WEBHOOKS": "crm=https://crm.example/hook",
                                  "RELAY_WEBHOOK_SECRET_CRM_PARAM": parameter})
    assert settings.webhook_secrets == {}
    assert with_webhook_secrets(settings, ["crm"]).webhook_secrets == {"crm": SECRET}
