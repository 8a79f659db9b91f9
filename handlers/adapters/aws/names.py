"""Where the AWS resources are: names (or URLs/ARNs) read from the environment.

A queue may be given by name or by URL, the topic by name or ARN: names suit local
look-alikes (``seedance-relay infra bootstrap``), URLs and ARNs suit Lambda, where
CloudFormation hands them over directly and no lookup call is needed at cold start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DLQ_SUFFIX", "AwsNames"]

DLQ_SUFFIX = "-dlq"


@dataclass(frozen=True, slots=True)
class AwsNames:
    table: str = "seedance-relay-jobs"
    bucket: str = "seedance-relay-videos"
    ingest_queue: str = "seedance-relay-ingest"
    requests_queue: str = "seedance-relay-requests"
    topic: str = "seedance-relay-events"
    subscriber_prefix: str = "seedance-relay-sub-"
    kms_key_id: str | None = None
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsNames:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            table=env.get("RELAY_TABLE") or defaults.table,
            bucket=env.get("RELAY_BUCKET") or defaults.bucket,
            ingest_queue=env.get("RELAY_INGEST_QUEUE") or defaults.ingest_queue,
            requests_queue=env.get("RELAY_REQUESTS_QUEUE") or defaults.requests_queue,
            topic=env.get("RELAY_TOPIC") or defaults.topic,
            subscriber_prefix=env.get("RELAY_SUBSCRIBER_QUEUE_PREFIX") or defaults.subscriber_prefix,
            kms_key_id=env.get("RELAY_KMS_KEY_ID") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or defaults.region,
        )

    @staticmethod
    def dlq(queue: str) -> str:
        """The dead-letter queue's name for a queue name (a URL keeps its own DLQ in its redrive policy)."""
        return queue + DLQ_SUFFIX

    def subscriber_queue(self, subscriber: str) -> str:
        return self.subscriber_prefix + subscriber
