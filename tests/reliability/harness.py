"""One pipeline on either backend, with faults where asked, and exact counts of what came out."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

from handlers.app.relay import Relay
from handlers.app.runtime import LocalRuntime
from handlers.app.settings import Settings
from handlers.app.wiring import build_ports, build_relay
from handlers.domain.budgets import Per, period_of
from handlers.domain.jobs import TERMINAL, JobStatus
from handlers.net.server import BackgroundServer, free_port
from tests.support.faults import Faults, FaultyBlobStore, FaultyBus, FaultyQueue, fault_proxy
from tests.support.servers import RunningSandbox, running_sandbox, wait_until

API_KEY = "reliability-key-0123456789"
SECRET = "k1:" + "r" * 32
REQUEST: dict[str, Any] = {"model": "seedance-2.0-reference-to-video", "prompt": "image 1 in motion",
                           "image_urls": ["https://example.com/a.png"], "duration": 4, "quality": "480p"}


@dataclass
class Stack:
    backend: str
    tmp: Path
    sandbox: RunningSandbox
    env: dict[str, str]
    runtime: LocalRuntime | None = None
    server: BackgroundServer | None = None
    api: httpx.Client | None = None
    moto: str | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)
    _observer: Any = None

    @property
    def relay(self) -> Relay:
        assert self.runtime is not None and self.runtime.relay is not None
        return self.runtime.relay

    def submit_many(self, count: int, **overrides: Any) -> list[str]:
        assert self.api is not None
        api = self.api

        def one(index: int) -> str:
            body = {**REQUEST, **overrides, "metadata": {"n": index}}
            for _ in range(6):  # a 5xx is safe to retry with the same Idempotency-Key
                response = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": f"job-{index}"})
                if response.status_code < 500:
                    break
            assert response.status_code in (202, 422), response.text
            return str(response.json()["id"])

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(count)))

    def observer(self) -> Any:
        """The job store as the test sees it: straight to moto, past any fault proxy."""
        if self.backend == "local":
            return self.relay.jobs
        if self._observer is None:
            jobs, *_ = build_ports(Settings.from_env({**self.env, "AWS_ENDPOINT_URL": str(self.moto)}))
            self._observer = jobs
        return self._observer

    def wait_all_final(self, job_ids: list[str], timeout: float) -> dict[str, Any]:
        store = self.observer()

        def done() -> dict[str, Any] | None:
            jobs = {job_id: store.get(job_id) for job_id in job_ids}
            return jobs if all(j.status in TERMINAL for j in jobs.values()) else None

        jobs: dict[str, Any] = wait_until(done, timeout, f"{len(job_ids)} jobs to finish", interval=0.5)
        return jobs

    # counts -------------------------------------------------------------------------------
    def stored_videos(self) -> list[str]:
        if self.backend == "local":
            root = self.tmp / "relay" / "blobs" / "jobs"
            return sorted(str(p) for p in root.rglob("*.mp4"))
        s3 = boto3.client("s3", endpoint_url=self.moto)
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.env["RELAY_BUCKET"], Prefix="jobs/"):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".mp4")]
        return sorted(keys)

    def incomplete_uploads(self) -> int:
        if self.backend == "local":
            return sum(1 for p in (self.tmp / "relay" / "blobs").rglob("*") if p.is_file() and ".tmp" in p.name)
        s3 = boto3.client("s3", endpoint_url=self.moto)
        return len(s3.list_multipart_uploads(Bucket=self.env["RELAY_BUCKET"]).get("Uploads", []))

    def _ports(self) -> Any:
        if self.backend == "local":
            return self.relay.ingest_queue, self.relay.bus
        _, _, ingest, bus, _ = build_ports(Settings.from_env({**self.env, "AWS_ENDPOINT_URL": str(self.moto)}))
        return ingest, bus

    def delivered_events(self) -> list[dict[str, Any]]:
        """Every message the ``audit`` subscriber received so far (duplicates included)."""
        queue = self._ports()[1].subscriber("audit")
        while messages := queue.receive(max_messages=10):
            for message in messages:
                self.audit.append(dict(message.body))
                queue.ack(message)
        return self.audit

    def dead_letters(self) -> dict[str, int]:
        ingest, bus = self._ports()
        queues = {"ingest": ingest, "audit": bus.subscriber("audit")}
        return {name: queue.depth()["dead"] for name, queue in queues.items()}

    # lifecycle ----------------------------------------------------------------------------
    def start_relay(self, local_fault_rate: float = 0.0) -> None:
        settings = Settings.from_env({**self.env, "RELAY_PORT": self.env["RELAY_PORT"]})
        build = build_relay if not local_fault_rate else _faulty_builder(local_fault_rate)
        self.runtime = LocalRuntime(settings, build=build).start()
        self.server = BackgroundServer(self.runtime.app(), port=int(self.env["RELAY_PORT"]))
        url = self.server.start()
        self.api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)

    def stop_relay(self) -> None:
        if self.api is not None:
            self.api.close()
        if self.server is not None:
            self.server.stop()
        if self.runtime is not None:
            self.runtime.stop()
        self.api = self.server = self.runtime = None


def _faulty_builder(rate: float) -> Any:
    def build(settings: Settings) -> Relay:
        relay = build_relay(settings)
        relay.blobs = FaultyBlobStore(relay.blobs, rate)
        relay.ingest_queue = FaultyQueue(relay.ingest_queue, rate)
        relay.bus = FaultyBus(relay.bus, rate)  # type: ignore[assignment]
        return relay

    return build


def aws_env(moto: str, endpoint: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {"RELAY_BACKEND": "aws", "AWS_ENDPOINT_URL": endpoint, "RELAY_TABLE": f"t-{suffix}",
            "RELAY_BUCKET": f"b-{suffix}", "RELAY_INGEST_QUEUE": f"i-{suffix}", "RELAY_REQUESTS_QUEUE": f"r-{suffix}",
            "RELAY_TOPIC": f"e-{suffix}", "RELAY_SUBSCRIBER_QUEUE_PREFIX": f"s-{suffix}-"}


def bootstrap_aws(env: dict[str, str], moto: str) -> None:
    from handlers.adapters.aws import AwsNames, aws_clients
    from handlers.adapters.aws.bootstrap import bootstrap

    names = AwsNames.from_env(env)
    bootstrap(aws_clients(names, endpoint_url=moto), names, {"audit": ["*"]}, max_receives=8, visibility_timeout=30)


@contextmanager
def stack(backend: str, tmp: Path, *, moto: str | None = None, aws_faults: Faults | None = None,
          provider_faults: Faults | None = None, relay_env: dict[str, str] | None = None,
          local_fault_rate: float = 0.0, start: bool = True, **sandbox: Any) -> Iterator[Stack]:
    sandbox.setdefault("speed", 400.0)
    with ExitStack() as stack_:
        box = stack_.enter_context(running_sandbox(tmp / "sandbox", **sandbox))
        provider = stack_.enter_context(fault_proxy(box.url, provider_faults)) if provider_faults else box.url
        env = {"RELAY_DATA_DIR": str(tmp / "relay"), "RELAY_API_KEYS": API_KEY, "EVOLINK_BASE_URL": provider,
               "RELAY_CALLBACK_SECRET": SECRET, "RELAY_RECONCILE_EVERY": "1", "RELAY_RECONCILE_GRACE": "2",
               "RELAY_SUBSCRIBERS": "audit:*", "RELAY_WORKERS": "4", "RELAY_QUEUE_VISIBILITY_TIMEOUT": "30",
               "RELAY_PORT": str(free_port()), **(relay_env or {})}
        if backend == "aws":
            assert moto is not None
            endpoint = stack_.enter_context(fault_proxy(moto, aws_faults)) if aws_faults else moto
            env.update(aws_env(moto, endpoint))
            bootstrap_aws(env, moto)
            saved = os.environ.get("AWS_ENDPOINT_URL")
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            stack_.callback(_restore, "AWS_ENDPOINT_URL", saved)
        result = Stack(backend, tmp, box, env, moto=moto)
        if start:
            result.start_relay(local_fault_rate)
        stack_.callback(result.stop_relay)
        yield result


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def summary(stack_: Stack, jobs: dict[str, Any]) -> dict[str, Any]:
    """The figures a scenario reports (also written to the reliability report)."""
    events = stack_.delivered_events()
    return {"jobs": len(jobs), "statuses": _tally(j.status.value for j in jobs.values()),
            "stored_videos": len(stack_.stored_videos()), "event_messages": len(events),
            "unique_events": len({e["id"] for e in events}), "dead_letters": stack_.dead_letters(),
            "incomplete_uploads": stack_.incomplete_uploads()}


def _tally(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def record(name: str, figures: dict[str, Any]) -> None:
    """Append a scenario's figures to the report that docs/reliability.md quotes."""
    path = Path(os.environ.get("RELIABILITY_REPORT", Path(__file__).with_name("last-run.jsonl")))
    with path.open("a") as handle:
        handle.write(json.dumps({"scenario": name, **figures}) + "\n")


# tenants and budgets ----------------------------------------------------------------------------
JOB_CREDITS = 11.12  # REQUEST on the default price table: 4 s of 480p at 2.78 credits a second


def tenant_keys(tenants: list[str]) -> dict[str, str]:
    """A configured key per tenant (``RELAY_API_KEYS`` entry ``TENANT:KEY``)."""
    return {tenant: f"{tenant}-reliability-key-0123456789" for tenant in tenants}


def tenant_env(keys: dict[str, str], admin_key: str, **extra: str) -> dict[str, str]:
    """``relay_env`` for :func:`stack`: the harness's own key (tenant ``default``), ``keys``, one admin."""
    entries = ",".join([API_KEY, *(f"{tenant}:{key}" for tenant, key in keys.items())])
    return {"RELAY_API_KEYS": entries, "RELAY_ADMIN_KEYS": f"ops:{admin_key}", **extra}


def budget_race(stack_: Stack, *, submits: int, fits: int, threads: int) -> dict[str, Any]:
    """``submits`` distinct jobs of the tenant ``default`` from ``threads`` threads at once, against the per-day
    budget ``RELAY_BUDGETS`` gives it (room for ``fits`` jobs). All the while one thread reads the tenant's totals
    from the ledger (consistent reads) and another ``GET /v1/usage``.

    Returns what was answered, the most held (and held plus spent) that any read saw, and what the sandbox made."""
    assert stack_.server is not None and stack_.api is not None
    url, done, period = stack_.server.url, threading.Event(), period_of(time.time(), Per.DAY)
    seen: list[tuple[float, float]] = []

    def from_the_api() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
            while not done.is_set():
                [line] = client.get("/v1/usage").json()["usage"]
                seen.append((line["held"], line["held"] + line["spent"]))

    def from_the_ledger() -> None:
        while not done.is_set():
            usage = stack_.relay.ledger.usage("default", period)
            seen.append((usage.held, usage.held + usage.spent))

    clients = [httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120)
               for _ in range(threads)]
    watchers = [threading.Thread(target=read, name=f"usage-{n}") for n, read in enumerate((from_the_api,
                                                                                         from_the_ledger))]
    for watcher in watchers:
        watcher.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(threads) as pool:
            answers = list(pool.map(lambda i: clients[i % threads].post(
                "/v1/jobs", json={**REQUEST, "metadata": {"n": i}}, headers={"Idempotency-Key": f"race-{i}"}),
                range(submits)))
    finally:
        seconds = time.monotonic() - started
        done.set()
        for watcher in watchers:
            watcher.join(timeout=60)
        for client in clients:
            client.close()
    [final] = stack_.api.get("/v1/usage").json()["usage"]
    statuses = _tally(str(a.status_code) for a in answers)
    return {"submits": submits, "fits": fits, "budget": final["budget"]["credits"], "threads": threads,
            "answers": statuses, "accepted": statuses.get("202", 0), "refused": statuses.get("402", 0),
            "refusal_codes": _tally(a.json()["error"]["code"] for a in answers if a.status_code != 202),
            "max_held": round(max((h for h, _ in seen), default=0.0), 6),
            "max_committed": round(max((c for _, c in seen), default=0.0), 6), "usage_reads": len(seen),
            "final_held_plus_spent": round(final["held"] + final["spent"], 6), "final_jobs": final["jobs"],
            "sandbox_tasks": len(list((stack_.tmp / "sandbox" / "tasks").glob("*.json"))),
            "seconds": round(seconds, 2)}


def isolation_sweep(stack_: Stack, keys: dict[str, str], admin_key: str, *, jobs_each: int) -> dict[str, Any]:
    """Every tenant of ``keys`` submits ``jobs_each`` jobs (all at once); once they are final, every tenant asks
    for every other tenant's jobs (the job, its output, its dashboard details), lists and usage.

    A *leak* is any answer that shows another tenant's job or usage; *distinct_404s* counts the shapes of the
    answers to those probes beside the answer for a job id that does not exist (``1``: all the same)."""
    assert stack_.server is not None
    clients = {tenant: httpx.Client(base_url=stack_.server.url, headers={"Authorization": f"Bearer {key}"},
                                    timeout=60) for tenant, key in {**keys, "admin": admin_key}.items()}
    try:
        owned = _submit_as_tenants(clients, list(keys), jobs_each)
        stack_.wait_all_final([j for ids in owned.values() for j in ids], timeout=120)
        return _probe(clients, owned) | {"tenants": len(keys), "jobs": sum(len(v) for v in owned.values())}
    finally:
        for client in clients.values():
            client.close()


def _submit_as_tenants(clients: dict[str, httpx.Client], tenants: list[str], jobs_each: int) -> dict[str, list[str]]:
    def submit(tenant: str, index: int) -> str:
        response = clients[tenant].post("/v1/jobs", json={**REQUEST, "metadata": {"n": index}},
                                        headers={"Idempotency-Key": f"iso-{index}"})  # the same keys in every tenant
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    plan = [(tenant, index) for index in range(jobs_each) for tenant in tenants]
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda item: submit(*item), plan))
    owned: dict[str, list[str]] = {tenant: [] for tenant in tenants}
    for (tenant, _), job_id in zip(plan, ids, strict=True):
        owned[tenant].append(job_id)
    return owned


_MISSING = "job_" + "0" * 26
_ROUTES = ("/v1/jobs/{id}", "/v1/jobs/{id}/outputs/0", "/dashboard/jobs/{id}")


def _shape(response: httpx.Response, job_id: str) -> str:
    return f"{response.status_code} {response.text.replace(job_id, '<id>')}"


def _probe(clients: dict[str, httpx.Client], owned: dict[str, list[str]]) -> dict[str, Any]:
    probes = leaks = 0
    shapes: set[str] = set()
    for tenant in owned:
        client, others = clients[tenant], {j for t, ids in owned.items() if t != tenant for j in ids}
        shapes |= {_shape(client.get(route.format(id=_MISSING)), _MISSING) for route in _ROUTES}
        for job_id in others:
            for route in _ROUTES:
                shapes.add(_shape(client.get(route.format(id=job_id)), job_id))
                probes += 1
        listed = {j["id"] for j in client.get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
        filtered = {j["id"] for t in owned for j in
                    client.get("/v1/jobs", params={"limit": 100, "tenant": t}).json()["jobs"]}
        usage = {line["tenant"] for line in client.get("/v1/usage").json()["usage"]}
        leaks += len((listed | filtered) & others) + len(usage - {tenant})
        probes += 2 + len(owned)
    admin_sees = {j["id"] for j in clients["admin"].get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
    return {"cross_tenant_probes": probes, "leaks": leaks, "distinct_404s": len(shapes),
            "own_jobs_listed": all(set(ids) <= {j["id"] for j in clients[t].get(
                "/v1/jobs", params={"limit": 100}).json()["jobs"]} for t, ids in owned.items()),
            "admin_sees_all": {j for ids in owned.values() for j in ids} <= admin_sees}


__all__ = ["API_KEY", "JOB_CREDITS", "REQUEST", "JobStatus", "Stack", "budget_race", "isolation_sweep", "record",
           "stack", "summary", "tenant_env", "tenant_keys"]
