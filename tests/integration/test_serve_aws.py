"""``infra bootstrap`` then ``serve`` with RELAY_BACKEND=aws: the whole pipeline against moto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import pytest

from handlers.net.server import free_port
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration
EXE = str(Path(sys.executable).with_name("seedance-relay"))
REQUEST = {"model": "seedance-2.0-reference-to-video", "prompt": "Use image 1 as the first frame",
           "image_urls": ["https://example.com/a.png"], "duration": 4, "quality": "480p"}


def test_bootstrap_then_serve_runs_the_pipeline_on_aws(moto_server: str, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    port = free_port()
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_server, "RELAY_BACKEND": "aws", "RELAY_PORT": str(port),
           "RELAY_DATA_DIR": str(tmp_path), "RELAY_API_KEYS": "aws-key-123", "SANDBOX_SPEED": "300",
           "RELAY_CALLBACK_SECRET": "k1:" + "q" * 32, "RELAY_SUBSCRIBERS": "archive:*",
           "RELAY_TABLE": f"t-{suffix}", "RELAY_BUCKET": f"b-{suffix}", "RELAY_INGEST_QUEUE": f"i-{suffix}",
           "RELAY_REQUESTS_QUEUE": f"r-{suffix}", "RELAY_TOPIC": f"e-{suffix}",
           "RELAY_SUBSCRIBER_QUEUE_PREFIX": f"s-{suffix}-"}
    env.pop("EVOLINK_API_KEY", None)
    boot = subprocess.run([EXE, "infra", "bootstrap"], env=env, capture_output=True, text=True, timeout=60)
    again = subprocess.run([EXE, "infra", "bootstrap"], env=env, capture_output=True, text=True, timeout=60)
    assert boot.returncode == 0, boot.stderr
    assert json.loads(boot.stdout) == json.loads(again.stdout)
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([EXE, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _healthy(url), 30, "serve to listen")
            api = httpx.Client(base_url=url, headers={"Authorization": "Bearer aws-key-123"})
            job = api.post("/v1/jobs", json=REQUEST).json()
            final = wait_until(lambda: (j := api.get(f"/v1/jobs/{job['id']}").json())["status"] == "published"
                               and j, 60, "the job")
            health = api.get("/healthz").json()
            api.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    s3 = boto3.client("s3", endpoint_url=moto_server)
    output = urlsplit(final["outputs"][0]["uri"])
    head = s3.head_object(Bucket=output.netloc, Key=output.path.lstrip("/"))
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    queue = sqs.get_queue_url(QueueName=f"s-{suffix}-archive")["QueueUrl"]
    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert health["backend"] == "aws" and output.scheme == "s3"
    assert head["ContentLength"] == final["outputs"][0]["size"]
    assert head["Metadata"]["sha256"] == final["outputs"][0]["sha256"]
    assert json.loads(message["Body"])["subject"] == job["id"]
    assert "aws-key-123" not in (tmp_path / "serve.log").read_text()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
