"""Several tenants on one relay, over real sockets, on either backend.

``tenant_stack(backend, tmp, moto=…)`` runs the sandbox on a loopback port and the relay
in-process behind its own HTTP server, on embedded storage (SQLite, a folder) or on the AWS
adapters against moto in server mode, with three configured keys: ``acme`` and ``bravo``
submitters and one admin. It yields a :class:`TenantStack` that speaks HTTP as any of them and
reads what the sandbox did (its task files: one per task created, with when it started and
ended) and what each subscriber queue received.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from handlers.app.relay import Relay
from handlers.app.runtime import LocalRuntime
from handlers.app.settings import Settings
from handlers.app.wiring import subscriber_filters
from handlers.net.server import BackgroundServer, free_port
from tests.support.servers import RunningSandbox, running_sandbox, wait_until

__all__ = ["ADMIN_KEY", "FINAL", "JOB_CREDITS", "KEYS", "REQUEST", "TenantStack", "max_overlap", "tenant_stack"]

KEYS = {"acme": "acme-key-0123456789", "bravo": "bravo-key-0123456789"}
ADMIN_KEY = "ops-admin-key-0123456789"
SECRET = "k1:" + "t" * 32
FINAL = {"published", "failed", "cancelled", "rejected", "expired"}
REQUEST: dict[str, Any] = {"model": "seedance-2.0-reference-to-video", "prompt": "image 1 in motion",
                           "image_urls": ["https://example.com/a.png"], "duration": 4, "quality": "480p"}
JOB_CREDITS = 11.12
"""What :data:`REQUEST` costs on the default price table (4 s of 480p at 2.78 credits a second)."""


@dataclass
class TenantStack:
    backend: str
    tmp: Path
    sandbox: RunningSandbox
    env: dict[str, str]
    runtime: LocalRuntime | None = None
    server: BackgroundServer | None = None
    url: str = ""
    _clients: dict[str, httpx.Client] = field(default_factory=dict)
    _keys: dict[str, str] = field(default_factory=dict)

    # speaking HTTP ------------------------------------------------------------------------------
    def client(self, key: str) -> httpx.Client:
        """An HTTP client that presents ``key`` (kept open until the relay stops)."""
        if key not in self._clients:
            self._clients[key] = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"},
                                              timeout=60)
        return self._clients[key]

    def key_of(self, tenant: str) -> str:
        """``tenant``'s submitter key (``admin``: the admin key)."""
        return ADMIN_KEY if tenant == "admin" else self._keys[tenant]

    def api(self, tenant: str) -> httpx.Client:
        """A client presenting ``tenant``'s submitter key (``admin``: the admin key)."""
        return self.client(self.key_of(tenant))

    def new_key(self, tenant: str, role: str = "submitter") -> str:
        """A key of ``tenant`` with ``role``, made at run time by the admin (``POST /v1/keys``)."""
        made = self.api("admin").post("/v1/keys", json={"tenant": tenant, "role": role})
        assert made.status_code == 201, made.text
        key: str = made.json()["key"]
        return key

    def new_tenant(self, prefix: str) -> str:
        """A tenant no other test uses, with a submitter key made at run time; ``api(tenant)`` speaks as it."""
        tenant = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self._keys[tenant] = self.new_key(tenant)
        return tenant

    def submit(self, tenant: str, body: Mapping[str, Any] | None = None, *, key: str | None = None) -> dict[str, Any]:
        """``POST /v1/jobs`` as ``tenant``; asserts the 202 and returns the job."""
        headers = {"Idempotency-Key": key} if key else {}
        response = self.api(tenant).post("/v1/jobs", json=dict(body or REQUEST), headers=headers)
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        return job

    def submit_concurrently(self, tenant: str, count: int, threads: int, prefix: str) -> list[httpx.Response]:
        """``count`` submits of distinct jobs (``Idempotency-Key`` ``<prefix>-<n>``) from ``threads`` threads
        released together, each thread with its own connection."""
        clients = [httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key_of(tenant)}"},
                                timeout=60) for _ in range(threads)]

        def one(index: int) -> httpx.Response:
            return clients[index % threads].post("/v1/jobs", json={**REQUEST, "metadata": {"n": index}},
                                                 headers={"Idempotency-Key": f"{prefix}-{index}"})

        try:
            with ThreadPoolExecutor(threads) as pool:
                return list(pool.map(one, range(count)))
        finally:
            for client in clients:
                client.close()

    def job(self, tenant: str, job_id: str) -> dict[str, Any]:
        response = self.api(tenant).get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    def wait_final(self, tenant: str, job_ids: list[str], timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Each job once it is final (its event published), by id."""
        def done() -> dict[str, dict[str, Any]] | None:
            jobs = {job_id: self.job(tenant, job_id) for job_id in job_ids}
            return jobs if all(j["status"] in FINAL for j in jobs.values()) else None

        jobs: dict[str, dict[str, Any]] = wait_until(done, timeout, f"{len(job_ids)} jobs to finish", interval=0.1)
        return jobs

    def usage(self, tenant: str) -> dict[str, dict[str, Any]]:
        """``GET /v1/usage`` as ``tenant``, its lines by tenant."""
        response = self.api(tenant).get("/v1/usage")
        assert response.status_code == 200, response.text
        return {line["tenant"]: line for line in response.json()["usage"]}

    # what happened elsewhere --------------------------------------------------------------------
    def sandbox_tasks(self) -> list[dict[str, Any]]:
        """Every task the sandbox created (its saved task files), oldest first."""
        tasks = [json.loads(p.read_text()) for p in (self.tmp / "sandbox" / "tasks").glob("*.json")]
        return sorted(tasks, key=lambda task: task["created"])

    def subscriber_messages(self, name: str) -> list[dict[str, Any]]:
        """Drain subscriber ``name``'s queue: every message it received so far."""
        queue = self.relay.bus.subscriber(name)
        bodies: list[dict[str, Any]] = []
        while messages := queue.receive(max_messages=10):
            bodies += [dict(m.body) for m in messages]
            for message in messages:
                queue.ack(message)
        return bodies

    @property
    def relay(self) -> Relay:
        assert self.runtime is not None and self.runtime.relay is not None, "the relay is not running"
        return self.runtime.relay

    # lifecycle ----------------------------------------------------------------------------------
    def start_relay(self) -> None:
        self.runtime = LocalRuntime(Settings.from_env(self.env)).start()
        self.server = BackgroundServer(self.runtime.app(), port=int(self.env["RELAY_PORT"]))
        self.url = self.server.start()

    def stop_relay(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self.server is not None:
            self.server.stop()
        if self.runtime is not None:
            self.runtime.stop()
        self.server = self.runtime = None


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals (start, end) open at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                   key=lambda edge: (edge[0], edge[1]))
    open_, most = 0, 0
    for _, step in edges:
        open_ += step
        most = max(most, open_)
    return most


def aws_names(moto: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {"RELAY_BACKEND": "aws", "AWS_ENDPOINT_URL": moto, "RELAY_TABLE": f"tt-{suffix}",
            "RELAY_BUCKET": f"tb-{suffix}", "RELAY_INGEST_QUEUE": f"ti-{suffix}",
            "RELAY_REQUESTS_QUEUE": f"tr-{suffix}", "RELAY_TOPIC": f"te-{suffix}",
            "RELAY_SUBSCRIBER_QUEUE_PREFIX": f"ts-{suffix}-"}


def bootstrap_aws(env: Mapping[str, str]) -> None:
    """What ``seedance-relay infra bootstrap`` makes, with the subscribers (and their filters) ``env`` names."""
    from handlers.adapters.aws import AwsNames, aws_clients
    from handlers.adapters.aws.bootstrap import bootstrap

    settings = Settings.from_env(dict(env))
    names = AwsNames.from_env(dict(env))
    bootstrap(aws_clients(names, endpoint_url=settings.aws_endpoint_url), names, subscriber_filters(settings),
              max_receives=8, visibility_timeout=30)


@contextmanager
def tenant_stack(backend: str, tmp: Path, *, moto: str | None = None, relay_env: Mapping[str, str] | None = None,
                 tenants: tuple[str, ...] = (), **sandbox: Any) -> Iterator[TenantStack]:
    """The sandbox (``sandbox`` overrides its settings; speed 400 unless given) and the relay with the keys of
    ``acme``, ``bravo`` and an admin, on ``backend`` (``local`` or ``aws``, the latter on ``moto``). ``tenants``
    get configured keys too (``RELAY_API_KEYS``), so ``RELAY_BUDGETS`` may name them."""
    sandbox.setdefault("speed", 400.0)
    keys = {**KEYS, **{tenant: f"{tenant}-key-0123456789" for tenant in tenants}}
    with ExitStack() as stack:
        box = stack.enter_context(running_sandbox(tmp / "sandbox", **sandbox))
        env = {"RELAY_DATA_DIR": str(tmp / "relay"), "EVOLINK_BASE_URL": box.url, "RELAY_CALLBACK_SECRET": SECRET,
               "RELAY_API_KEYS": ",".join(f"{tenant}:{key}" for tenant, key in keys.items()),
               "RELAY_ADMIN_KEYS": f"ops:{ADMIN_KEY}", "RELAY_RECONCILE_EVERY": "0.5", "RELAY_RECONCILE_GRACE": "1",
               "RELAY_PORT": str(free_port()), **(relay_env or {})}
        if backend == "aws":
            assert moto is not None, "the aws backend needs the moto server"
            env.update(aws_names(moto))
            bootstrap_aws(env)
        running = TenantStack(backend, tmp, box, env, _keys=keys)
        running.start_relay()
        stack.callback(running.stop_relay)
        yield running
