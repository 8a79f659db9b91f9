"""AWS calls, log bytes and dollars per job: the Lambda entry points on moto, every call counted.

The relay's own Lambda handlers run in this process with real event payloads (an HTTP API event
for ``POST /v1/jobs`` and for the callback, an SQS event for ingest, the EventBridge schedule for
the reconciler) against moto in server mode and the sandbox over HTTP. Every AWS API call the
handlers make is seen through botocore's own event hook (``before-call`` on each client the relay
built) and counted by service and operation. Three kinds of job:

* **normal**: submit, one callback, ingest;
* **lost callback**: submit, no callback; the reconciler's pass finds the job due and ingest copies it;
* **duplicate callbacks**: submit, the callback five times (one and four duplicates), ingest each.

The log bytes are the relay's log lines at ``info`` per job (the target); its EMF metric lines are counted
beside them. Both, and Lambda's own START/END/REPORT lines (about 330 bytes per invocation), are in the bill.

Dollars per 1,000 jobs use the list prices in ``PRICES`` (us-east-1, dated), the measured calls,
the measured handler durations times each function's memory in ``serverless.yml``, and one month
of S3 storage for the stored bytes. EvoLink's credits are not in it. Beside it: a naive design, a
Lambda that polls EvoLink every 10 s until the task ends (``--generation-seconds``, default 180) and then
stores what the relay stores.

    python bench/aws_costs.py [--quick] [--jobs 5] [--generation-seconds 180]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import FAKE_AWS, ROOT, emit, load_fixture, median, ratio, running_moto

__all__ = ["MINIMUM", "PRICES", "main"]

PRICES: dict[str, Any] = {
    "as_of": "2026-12-03", "region": "us-east-1",
    "lambda_request": 0.20 / 1e6, "lambda_gb_second": 0.0000166667,
    "dynamodb_write_unit": 0.625 / 1e6, "dynamodb_read_unit": 0.125 / 1e6,
    "sqs_request": 0.40 / 1e6, "sns_publish": 0.50 / 1e6,
    "s3_write_request": 0.005 / 1000, "s3_read_request": 0.0004 / 1000, "s3_gb_month": 0.023,
    "logs_ingested_gb": 0.50,
}
"""AWS list prices (on-demand, no free tier), us-east-1, as published on the date in ``as_of``."""

LAMBDA_REPORT_BYTES = 330
"""Lambda's own START, END and REPORT lines per invocation, billed as log bytes like ours."""

MEMORY_MB = {"api": 512, "ingest": 1024, "reconcile": 256, "submit": 256}
"""Each function's ``memorySize`` in serverless.yml (256 is the provider default)."""

MINIMUM: dict[str, tuple[int, str]] = {
    "dynamodb.PutItem job": (5, "the job store writes whole items, each conditional on the version: create the job "
                                "before calling EvoLink (idempotent submit); record the task id; take the copy lease "
                                "(one copier at a time); record the outcome with the outputs; mark it published "
                                "(a job reads final only once its event is out)"),
    "dynamodb.TransactWriteItems": (2, "hold the estimate against the tenant's budget; settle it to what was billed"),
    "dynamodb.GetItem": (1, "ingest reads the job the callback names"),
    "dynamodb.PutItem event": (1, "claim the event id, so SNS publishes it once"),
    "dynamodb.UpdateItem event": (1, "mark the id published, which also writes the event log replay reads"),
    "sqs.SendMessageBatch": (1, "the callback hands the job to ingest (EvoLink's 7 s window is never spent copying)"),
    "s3.PutObject": (6, "the video; the manifest; poster and last frame, each with its thumbnail"),
    "s3.GetObject": (1, "read the stored video's index and two frames back (one ranged GET for a small file)"),
    "sns.Publish": (1, "the one event, fanned out to every subscriber queue by SNS"),
}
"""The calls a normal job cannot do without, given the guarantees in docs/reliability.md, with the reason for
each. The keys are operations, and for DynamoDB the kind of item (job or event id)."""


@dataclass
class Meter:
    """Every AWS call the relay's clients make, by ``service.Operation``, and their request sizes."""

    calls: Counter[str] = field(default_factory=Counter)
    items: list[tuple[str, int]] = field(default_factory=list)
    detail: Counter[str] = field(default_factory=Counter)
    keyed: Counter[str] = field(default_factory=Counter)
    paused: bool = False

    def hook(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register("before-call", lambda model, params, **_: self._seen(service, model, params))

    def _seen(self, service: str, model: Any, params: dict[str, Any]) -> None:
        if self.paused:
            return
        name = f"{service}.{model.name}"
        self.calls[name] += 1
        body = params.get("body")
        if service == "dynamodb":
            self.items.append((name, len(body) if isinstance(body, (bytes, str)) else 0))
            target = _dynamo_target(body)
            self.detail[f"{name} {target}"] += 1
            kind = target.rpartition(":")[2]
            self.keyed[f"{name} {kind}" if model.name in ("PutItem", "UpdateItem") and kind in ("job", "event")
                       else name] += 1
        else:
            self.detail[f"{name} {params.get('url_path', '')[:60]}"] += 1
            self.keyed[name] += 1

    def take(self) -> tuple[Counter[str], list[tuple[str, int]], Counter[str]]:
        calls, items, keyed = self.calls, self.items, self.keyed
        self.calls, self.items, self.detail, self.keyed = Counter(), [], Counter(), Counter()
        return calls, items, keyed


def _dynamo_target(body: Any) -> str:
    """Which table and which kind of key a DynamoDB request names (what ``--explain`` prints)."""
    try:
        request = json.loads(body)
    except (TypeError, ValueError):
        return ""
    table = request.get("TableName", "")
    key = request.get("Key") or request.get("Item") or {}
    if "TransactItems" in request:
        parts = [next(iter(i.values())) for i in request["TransactItems"]]
        return "+".join(f"{p.get('TableName', '')}:{_key_kind(p.get('Key') or p.get('Item') or {})}" for p in parts)
    return f"{table}:{_key_kind(key)}"


def _key_kind(key: dict[str, Any]) -> str:
    value = next(iter((key.get("pk") or key.get("id") or {"S": "?"}).values()), "?")
    return str(value).split("#")[0].split("_")[0][:12]


class CountingStream(io.TextIOBase):
    """A text stream that counts the bytes written to it and keeps none."""

    def __init__(self) -> None:
        self.bytes = 0
        self.emf_bytes = 0
        self.kept: list[str] | None = None

    def write(self, text: str) -> int:
        if '"event": "sandbox.' in text:
            return len(text)  # EvoLink's side of the run (the sandbox logs in this process), not the relay's
        if text.startswith('{"_aws"'):
            self.emf_bytes += len(text.encode())  # metrics, billed as log bytes but not log lines
        else:
            self.bytes += len(text.encode())
        if self.kept is not None:
            self.kept.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@dataclass
class Run:
    """What one job of a kind cost: its calls, its invocations with their seconds, its log bytes."""

    calls: Counter[str]
    keyed: Counter[str]
    invocations: Counter[str]
    seconds: dict[str, float]
    log_bytes: int
    emf_bytes: int
    stored_bytes: int
    dynamo_bytes: list[tuple[str, int]]


class Harness:
    """The Lambda handlers of one stack on moto, driven as AWS would drive them."""

    def __init__(self, moto_url: str, sandbox_url: str, engine: Any, suffix: str) -> None:
        self.engine, self.meter, self.log = engine, Meter(), CountingStream()
        env = {"RELAY_BACKEND": "aws", "AWS_ENDPOINT_URL": moto_url, "EVOLINK_BASE_URL": sandbox_url,
               "RELAY_API_KEYS": "bench-key-1234567890", "RELAY_CALLBACK_SECRET": "k1:" + "c" * 32,
               "RELAY_PUBLIC_URL": "https://relay.example", "RELAY_SUBSCRIBERS": "example:completed",
               "RELAY_TABLE": f"jobs-{suffix}", "RELAY_BUCKET": f"videos-{suffix}",
               "RELAY_INGEST_QUEUE": f"ingest-{suffix}", "RELAY_REQUESTS_QUEUE": f"requests-{suffix}",
               "RELAY_TOPIC": f"events-{suffix}", "RELAY_SUBSCRIBER_QUEUE_PREFIX": f"sub-{suffix}-",
               "RELAY_RECONCILE_GRACE": "1", "RELAY_LOG_LEVEL": "info", **FAKE_AWS}
        self._saved_env = dict(os.environ)
        os.environ.update(env)
        os.environ.pop("EVOLINK_API_KEY", None)
        from handlers.adapters.aws import AwsNames, aws_clients
        from handlers.adapters.aws.bootstrap import bootstrap
        from handlers.lambdas import _relay

        self.names = AwsNames.from_env(env)
        self.admin = aws_clients(self.names)
        bootstrap(self.admin, self.names, {"example": ["io.seedance-relay.job.completed"]})
        self._relay = _relay
        with self._logging():
            relay = _relay.relay()
        for client in _clients_of(relay):
            self.meter.hook(client)
        self.invocations: Counter[str] = Counter()
        self.seconds: dict[str, float] = {}

    def close(self) -> None:
        """Close the relay's clients and give the process its environment and caches back."""
        from handlers.lambdas import api

        self._relay.relay().close()
        for cached in (self._relay.relay, self._relay.settings, self._relay.emf, api._adapter):
            cached.cache_clear()
        os.environ.clear()
        os.environ.update(self._saved_env)

    @contextmanager
    def _logging(self) -> Iterator[None]:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = self.log
        try:
            from handlers.base.logs import configure

            configure("info", "json", self.log)
            yield
        finally:
            sys.stdout, sys.stderr = saved

    def invoke(self, function: str, handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any]) -> Any:
        with self._logging():
            started = time.perf_counter()
            try:
                return handler(event, _Context())
            finally:
                self.seconds[function] = self.seconds.get(function, 0.0) + time.perf_counter() - started
                self.invocations[function] += 1

    # --- the events AWS would deliver ------------------------------------------------------------

    def submit(self, index: str) -> dict[str, Any]:
        from handlers.lambdas import api

        body = {"model": "seedance-2.0-reference-to-video", "prompt": f"Use image 1 as the first frame ({index})",
                "image_urls": ["https://example.com/a.png"], "duration": 4, "quality": "480p"}
        answer = self.invoke("api", api.handler, _http("POST", "/v1/jobs", json.dumps(body),
                                                       {"authorization": "Bearer bench-key-1234567890"}))
        job = json.loads(answer["body"])
        if answer["statusCode"] != 202:
            raise RuntimeError(f"submit answered {answer['statusCode']}: {job}")
        return dict(job)

    def finished_task(self, task_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            task = self.engine.get(task_id, owner="sk-evo-sandbox-local")
            if task["status"] == "completed":
                return dict(task)
            time.sleep(0.05)
        raise RuntimeError(f"task {task_id} did not complete")

    def callback(self, job: dict[str, Any], task: dict[str, Any]) -> None:
        from handlers.lambdas import api

        token = self.engine._tasks[job["task_id"]].callback_url.split("token=")[1]
        event = _http("POST", f"/v1/callbacks/evolink/{job['id']}", json.dumps(task), {}, query=f"token={token}")
        status = self.invoke("api", api.handler, event)["statusCode"]
        if status != 202:
            raise RuntimeError(f"callback answered {status}")

    def ingest_all(self) -> None:
        from handlers.lambdas import ingest

        while records := self._drain(self.names.ingest_queue):
            failed = self.invoke("ingest", ingest.handler, {"Records": records})["batchItemFailures"]
            if failed:
                raise RuntimeError(f"ingest failed records: {failed}")
            self._delete(self.names.ingest_queue, records)  # what the event source mapping does (not billed to us)

    def reconcile(self) -> None:
        from handlers.lambdas import reconcile

        self.invoke("reconcile", reconcile.handler,
                    load_fixture("aws-events/aws-lambda-rust-runtime__example-eventbridge-schedule.json"))

    def _drain(self, queue: str) -> list[dict[str, Any]]:
        url = self.admin.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        messages = self.admin.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                                  MessageAttributeNames=["All"]).get("Messages", [])
        return [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                 "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
                 "eventSource": "aws:sqs"} for m in messages]

    def _delete(self, queue: str, records: list[dict[str, Any]]) -> None:
        url = self.admin.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        for record in records:
            self.admin.sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])

    def job(self, job_id: str) -> dict[str, Any]:
        from handlers.lambdas import api

        self.meter.paused = True
        saved = sys.stdout
        sys.stdout = io.StringIO()  # its EMF lines are the bench's, not a job's
        try:
            answer = api.handler(_http("GET", f"/v1/jobs/{job_id}", None,
                                       {"authorization": "Bearer bench-key-1234567890"}), _Context())
        finally:
            sys.stdout = saved
            self.meter.paused = False
        return dict(json.loads(answer["body"]))

    # --- one job of each kind ---------------------------------------------------------------------

    def one(self, kind: str, index: int, explain: bool = False) -> Run:
        self.meter.take()
        self.invocations.clear()
        self.seconds.clear()
        log_before, emf_before = self.log.bytes, self.log.emf_bytes
        self.log.kept = [] if explain else None
        job = self.submit(f"{kind} {index}")
        task = self.finished_task(job["task_id"])
        if kind == "lost_callback":
            time.sleep(1.2)  # past check_at (RELAY_RECONCILE_GRACE=1 and the sped-up estimate)
            while self.job(job["id"])["status"] not in ("published", "failed"):
                self.reconcile()
                self.ingest_all()
                time.sleep(0.2)
        else:
            for _ in range(5 if kind == "duplicate_callbacks" else 1):
                self.callback(job, task)
            self.ingest_all()
        if explain:
            print(f"--- {kind}", *sorted(self.meter.detail.items()), sep="\n  ", file=sys.stderr)
            print("".join(self.log.kept or ()), file=sys.stderr)
        calls, items, keyed = self.meter.take()
        final = self.job(job["id"])
        if final["status"] != "published":
            raise RuntimeError(f"job {job['id']} ended {final['status']}: {final.get('error')}")
        stored = sum(o["size"] for o in final["outputs"])
        return Run(calls, keyed, Counter(self.invocations), dict(self.seconds), self.log.bytes - log_before,
                   self.log.emf_bytes - emf_before, stored, items)


class _Context:
    aws_request_id = "bench"
    function_name = "bench"


def _http(method: str, path: str, body: str | None, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    event = load_fixture("aws-events/powertools-python__apiGatewayProxyV2Event.json")
    event.update(rawPath=path, rawQueryString=query, body=body, isBase64Encoded=False,
                 headers={"content-type": "application/json", **headers})
    event.pop("cookies", None)
    event.pop("queryStringParameters", None)
    event["requestContext"]["http"].update(method=method, path=path)
    return dict(event)


def _clients_of(relay: Any) -> list[Any]:
    """The distinct boto3 clients the relay's adapters hold (found by walking its attributes)."""
    from botocore.client import BaseClient

    found: dict[int, Any] = {}
    seen: set[int] = set()

    def walk(value: Any, depth: int) -> None:
        if id(value) in seen or depth > 4:
            return
        seen.add(id(value))
        if isinstance(value, BaseClient):
            found[id(value)] = value
            return
        if isinstance(value, dict):
            children: list[Any] = list(value.values())
        elif isinstance(value, (list, tuple)):
            children = list(value)
        else:
            names = list(getattr(value, "__dict__", {})) + list(getattr(type(value), "__slots__", ()))
            children = [getattr(value, n, None) for n in names]
        for child in children:
            if child is not None and not isinstance(child, (str, bytes, int, float, bool)):
                walk(child, depth + 1)

    walk(relay, 0)
    return list(found.values())


# --- turning counts into dollars ------------------------------------------------------------------

def dollars(run: Run, prices: dict[str, Any] = PRICES) -> dict[str, float]:
    """The AWS bill of one job of this kind, by line."""
    calls = run.calls
    lam = sum(run.invocations.values())
    gb_seconds = sum(run.seconds.get(f, 0.0) * MEMORY_MB[f] / 1024 for f in run.seconds)
    writes = sum(_write_units(name, size) for name, size in run.dynamo_bytes
                 if name.split(".")[1] in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"))
    reads = sum(1 for name, _ in run.dynamo_bytes if name.split(".")[1] in ("GetItem", "Query", "BatchGetItem"))
    sqs = sum(n for name, n in calls.items() if name.startswith("sqs."))
    sqs += lam  # each SQS-triggered or scheduled invocation's receive and delete are SQS requests too
    s3_write = sum(n for name, n in calls.items() if name.split(".")[1] in (
        "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "CopyObject"))
    s3_read = sum(n for name, n in calls.items() if name.startswith("s3.")) - s3_write
    log_bytes = run.log_bytes + run.emf_bytes + LAMBDA_REPORT_BYTES * lam
    return {
        "lambda_requests": lam * prices["lambda_request"],
        "lambda_compute": gb_seconds * prices["lambda_gb_second"],
        "dynamodb": writes * prices["dynamodb_write_unit"] + reads * prices["dynamodb_read_unit"],
        "sqs": sqs * prices["sqs_request"],
        "sns": calls.get("sns.Publish", 0) * prices["sns_publish"],
        "s3_requests": s3_write * prices["s3_write_request"] + s3_read * prices["s3_read_request"],
        "s3_storage_month": run.stored_bytes / 1e9 * prices["s3_gb_month"],
        "cloudwatch_logs": log_bytes / 1e9 * prices["logs_ingested_gb"],
    }


def _write_units(name: str, request_bytes: int) -> int:
    """Write units of one write: one per started KB of the item (the request size bounds it)."""
    return max(1, math.ceil(request_bytes / 1024))


def naive_dollars(generation_seconds: float, run: Run, prices: dict[str, Any] = PRICES) -> dict[str, float]:
    """A Lambda (256 MB) that polls EvoLink every 10 s until the task ends: one invocation, one DynamoDB read and
    one write per poll; then it stores what the relay stores (the same S3 writes and reads and the same ingest
    work, taken from the relay's measured ``run``) and publishes one event. Only how the end is found differs."""
    polls = math.ceil(generation_seconds / 10) + 1
    poll_seconds = 0.12  # one HTTPS GET to EvoLink and one DynamoDB write, warm
    ours = dollars(run, prices)
    return {
        "lambda_requests": (polls + 1) * prices["lambda_request"],
        "lambda_compute": (polls * poll_seconds * 256 / 1024 + run.seconds.get("ingest", 0.0)
                           * MEMORY_MB["ingest"] / 1024) * prices["lambda_gb_second"],
        "dynamodb": polls * (prices["dynamodb_read_unit"] + prices["dynamodb_write_unit"]),
        "sqs": 0.0, "sns": prices["sns_publish"],
        "s3_requests": ours["s3_requests"], "s3_storage_month": ours["s3_storage_month"],
        "cloudwatch_logs": (polls + 1) * (LAMBDA_REPORT_BYTES + 200) / 1e9 * prices["logs_ingested_gb"],
    }


def minimum_calls() -> int:
    return sum(n for n, _ in MINIMUM.values())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 jobs of each kind")
    parser.add_argument("--jobs", type=int, default=5, help="jobs of each kind (the median job is reported)")
    parser.add_argument("--explain", action="store_true", help="print each job's calls by table and key kind")
    parser.add_argument("--generation-seconds", type=float, default=180.0,
                        help="how long EvoLink takes per task, for the naive poller")
    args = parser.parse_args(argv)
    jobs = 2 if args.quick else args.jobs
    from handlers.net.server import BackgroundServer
    from handlers.sandbox.app import create_sandbox_app
    from handlers.sandbox.engine import SandboxEngine
    from handlers.sandbox.settings import SandboxSettings

    kinds = ("normal", "lost_callback", "duplicate_callbacks")
    with tempfile.TemporaryDirectory() as work, running_moto() as moto_url:
        engine = SandboxEngine(SandboxSettings(data_dir=Path(work) / "sandbox", speed=400.0,
                                               callback_drop=1.0)).start()
        server = BackgroundServer(create_sandbox_app(engine))
        harness = None
        try:
            harness = Harness(moto_url, server.start(), engine, os.urandom(4).hex())
            harness.one("normal", -1)  # warm: the first job builds every client and pool
            runs = {kind: [harness.one(kind, i, args.explain) for i in range(jobs)] for kind in kinds}
        finally:
            if harness is not None:
                harness.close()
            server.stop()
            engine.stop()
    return report(runs, args.generation_seconds)


def report(runs: dict[str, list[Run]], generation_seconds: float) -> dict[str, Any]:
    rows: list[list[Any]] = []
    figures: dict[str, Any] = {"prices": PRICES, "minimum": {k: {"calls": v[0], "why": v[1]}
                                                             for k, v in MINIMUM.items()}}
    minimum = minimum_calls()
    for kind, kind_runs in runs.items():
        run = sorted(kind_runs, key=lambda r: sum(r.calls.values()))[len(kind_runs) // 2]
        total = sum(run.calls.values())
        bill = dollars(run)
        usd_1000 = round(sum(bill.values()) * 1000, 4)
        figures[kind] = {"calls_per_job": total, "calls": dict(sorted(run.calls.items())),
                         "invocations": dict(run.invocations), "log_bytes_per_job": run.log_bytes,
                         "emf_bytes_per_job": run.emf_bytes,
                         "handler_seconds": {k: round(v, 3) for k, v in run.seconds.items()},
                         "usd_per_1000_jobs": usd_1000,
                         "usd_per_1000_jobs_by_line": {k: round(v * 1000, 4) for k, v in bill.items()}}
        figures[kind]["calls_by_item"] = dict(sorted(run.keyed.items()))
        rows.append([kind, total, minimum, ratio(total, minimum), run.log_bytes, usd_1000])
        for name in sorted(set(run.keyed) | set(MINIMUM)):
            rows.append(["", name, run.keyed.get(name, 0), MINIMUM.get(name, (0, ""))[0], "", ""])
    normal = figures["normal"]
    median_run = sorted(runs["normal"], key=lambda r: sum(r.calls.values()))[len(runs["normal"]) // 2]
    naive = naive_dollars(generation_seconds, median_run)
    naive_1000 = round(sum(naive.values()) * 1000, 4)
    rows.append([f"naive poller ({generation_seconds:.0f} s, every 10 s)", "", "", "", "", naive_1000])
    figures.update(calls_per_job=normal["calls_per_job"], minimum_calls_per_job=minimum,
                   ratio_to_minimum=ratio(normal["calls_per_job"], minimum),
                   usd_per_1000_jobs=normal["usd_per_1000_jobs"], log_bytes_per_job=normal["log_bytes_per_job"],
                   emf_bytes_per_job=normal["emf_bytes_per_job"],
                   naive_usd_per_1000_jobs=naive_1000,
                   naive_usd_per_1000_jobs_by_line={k: round(v * 1000, 4) for k, v in naive.items()},
                   median_handler_seconds={f: round(median([r.seconds.get(f, 0.0) for r in runs["normal"]]), 3)
                                           for f in MEMORY_MB})
    figures["meets_target"] = {"calls": figures["ratio_to_minimum"] <= 1.25,
                               "log_bytes": figures["log_bytes_per_job"] <= 2048}
    emit("aws_costs", ["job", "calls", "minimum", "x minimum", "log bytes", "$ per 1,000 jobs"], rows, figures)
    return figures


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
