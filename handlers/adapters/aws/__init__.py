"""AWS adapters: DynamoDB, S3, SQS and SNS behind the ports. boto3 lives only here.

The names below load on first use (PEP 562), so importing one light module of this
package (``names``, ``secrets``) does not pull in botocore. ``bootstrap`` (the function)
is imported from its module, ``handlers.adapters.aws.bootstrap``, which shares its name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handlers.adapters.aws.blobs import S3BlobStore
    from handlers.adapters.aws.bootstrap import BootstrapResult, QueuePair, build_aws_adapters
    from handlers.adapters.aws.budgets import DynamoBudgetLedger
    from handlers.adapters.aws.bus import DynamoEventLedger, SnsEventBus
    from handlers.adapters.aws.clients import AwsClients, aws_clients
    from handlers.adapters.aws.eventlog import DynamoEventLog
    from handlers.adapters.aws.jobs import TABLE_SPEC, DynamoJobStore
    from handlers.adapters.aws.keys import DynamoKeyStore
    from handlers.adapters.aws.names import AwsNames
    from handlers.adapters.aws.queue import SqsWorkQueue
    from handlers.adapters.aws.slots import DynamoSlotPool

__all__ = [
    "TABLE_SPEC",
    "AwsClients",
    "AwsNames",
    "BootstrapResult",
    "DynamoBudgetLedger",
    "DynamoEventLedger",
    "DynamoEventLog",
    "DynamoJobStore",
    "DynamoKeyStore",
    "DynamoSlotPool",
    "QueuePair",
    "S3BlobStore",
    "SnsEventBus",
    "SqsWorkQueue",
    "aws_clients",
    "build_aws_adapters",
]

_HOMES = {
    "TABLE_SPEC": "jobs", "AwsClients": "clients", "AwsNames": "names", "BootstrapResult": "bootstrap",
    "DynamoBudgetLedger": "budgets", "DynamoEventLedger": "bus", "DynamoEventLog": "eventlog",
    "DynamoJobStore": "jobs",
    "DynamoKeyStore": "keys", "DynamoSlotPool": "slots", "QueuePair": "bootstrap",
    "S3BlobStore": "blobs", "SnsEventBus": "bus", "SqsWorkQueue": "queue", "aws_clients": "clients",
    "build_aws_adapters": "bootstrap",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
