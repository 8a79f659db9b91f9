"""Tenants over real sockets, on both backends: one tenant's jobs are invisible to another, keys have roles, and
events name their tenant.

Each test runs the sandbox and the relay (in-process, behind its own HTTP server) on embedded storage, and again
on the AWS adapters against moto in server mode, with the keys of ``acme`` and ``bravo`` (submitters) and an admin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.tenants import REQUEST, TenantStack, tenant_stack

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("seedance-relay"))
MISSING = "job_" + "0" * 26  # the shape of a job id that no job has


@pytest.fixture(params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def moto(backend: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("moto_server")) if backend == "aws" else None


def answer(response: httpx.Response, job_id: str) -> tuple[int, Any, str | None]:
    """Status, body (the job id written as ``<id>``) and WWW-Authenticate: what tells two answers apart."""
    text = response.text.replace(job_id, "<id>")
    return response.status_code, json.loads(text), response.headers.get("www-authenticate")


def test_a_job_of_another_tenant_answers_exactly_as_a_missing_one_on_every_route(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    """GET of the job, of its output and of its dashboard details: bravo gets for acme's job the 404 a job id that
    does not exist gets, while acme and the admin read it."""
    with tenant_stack(backend, tmp_path, moto=moto) as stack:
        job = stack.submit("acme")
        stack.wait_final("acme", [job["id"]])
        routes = ["/v1/jobs/{id}", "/v1/jobs/{id}/outputs/0", "/dashboard/jobs/{id}"]
        bravo = {r: answer(stack.api("bravo").get(r.format(id=job["id"])), job["id"]) for r in routes}
        missing = {r: answer(stack.api("bravo").get(r.format(id=MISSING)), MISSING) for r in routes}
        owner = {r: stack.api(who).get(r.format(id=job["id"])).status_code for r in routes for who in ("acme", "admin")}
    assert bravo == missing
    assert {status for status, _, _ in bravo.values()} == {404}
    assert set(owner.values()) <= {200, 307}


def test_lists_and_usage_show_the_callers_tenant_and_an_admin_sees_every_tenant(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    with tenant_stack(backend, tmp_path, moto=moto) as stack:
        acme = [stack.submit("acme", {**REQUEST, "metadata": {"n": n}})["id"] for n in range(2)]
        bravo = stack.submit("bravo")["id"]
        stack.wait_final("admin", [*acme, bravo])
        listed = {who: {j["id"] for j in stack.api(who).get("/v1/jobs").json()["jobs"]}
                  for who in ("acme", "bravo", "admin")}
        asked_for_acme = {j["id"] for j in stack.api("bravo").get("/v1/jobs", params={"tenant": "acme"}).json()["jobs"]}
        admin_for_acme = {j["id"] for j in stack.api("admin").get("/v1/jobs", params={"tenant": "acme"}).json()["jobs"]}
        usage = {who: stack.usage(who) for who in ("acme", "bravo", "admin")}
    assert listed == {"acme": set(acme), "bravo": {bravo}, "admin": {*acme, bravo}}
    assert asked_for_acme == {bravo}  # a tenant's filter is not a submitter's to choose
    assert admin_for_acme == set(acme)
    assert set(usage["acme"]) == {"acme"} and set(usage["bravo"]) == {"bravo"}
    assert {"acme", "bravo"} <= set(usage["admin"])
    assert (usage["acme"]["acme"]["jobs"], usage["bravo"]["bravo"]["jobs"]) == (2, 1)


def test_one_idempotency_key_used_by_two_tenants_makes_two_jobs_and_two_tasks(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    with tenant_stack(backend, tmp_path, moto=moto) as stack:
        acme = stack.submit("acme", key="order-17")
        bravo = stack.submit("bravo", key="order-17")
        again = stack.submit("bravo", key="order-17")
        finals = stack.wait_final("admin", [acme["id"], bravo["id"]])
        tasks = stack.sandbox_tasks()
    assert acme["id"] != bravo["id"] and again["id"] == bravo["id"]
    assert {j["tenant"] for j in finals.values()} == {"acme", "bravo"}
    assert {j["status"] for j in finals.values()} == {"published"}
    assert len(tasks) == 2 and {acme["task_id"], bravo["task_id"]} == {t["id"] for t in tasks}


def test_a_reader_key_reads_its_tenants_jobs_and_may_create_neither_jobs_nor_uploads(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    with tenant_stack(backend, tmp_path, moto=moto) as stack:
        made = stack.api("admin").post("/v1/keys", json={"tenant": "acme", "role": "reader"})
        assert made.status_code == 201, made.text
        reader = stack.client(made.json()["key"])
        acme, bravo = stack.submit("acme")["id"], stack.submit("bravo")["id"]
        job = reader.post("/v1/jobs", json=REQUEST)
        upload = reader.post("/v1/uploads", content=b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
                             headers={"Content-Type": "image/png"})
        reads = (reader.get(f"/v1/jobs/{acme}").status_code, reader.get(f"/v1/jobs/{bravo}").status_code,
                 {j["id"] for j in reader.get("/v1/jobs").json()["jobs"]})
        tasks = len(stack.sandbox_tasks())
    assert (job.status_code, job.json()["error"]["code"]) == (403, "forbidden")
    assert (upload.status_code, upload.json()["error"]["code"]) == (403, "forbidden")
    assert reads == (200, 404, {acme})
    assert tasks == 2


def keys_cli(stack: TenantStack, *args: str) -> dict[str, Any]:
    """``seedance-relay keys ARGS --json`` as its own process, on the stack's backend."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "EVOLINK_", "SANDBOX_"))}
    done = subprocess.run([EXE, "keys", *args, "--json"], env={**clean, **stack.env}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    made: dict[str, Any] = json.loads(done.stdout)
    return made


def test_a_key_revoked_by_the_keys_command_gets_the_401_of_an_unknown_key(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    """``keys create`` and ``keys revoke``, run beside the serving relay, take effect on its next request."""
    with tenant_stack(backend, tmp_path, moto=moto) as stack:
        made = keys_cli(stack, "create", "acme")
        client = stack.client(made["key"])
        before = client.get("/v1/jobs").status_code
        keys_cli(stack, "revoke", made["id"])
        revoked = client.get("/v1/jobs")
        unknown = stack.client("sr_" + "x" * 43).get("/v1/jobs")
        submit = client.post("/v1/jobs", json=REQUEST)
    assert before == 200
    assert answer(revoked, "-") == answer(unknown, "-") == (401, unknown.json(), "Bearer")
    assert submit.status_code == 401


def test_events_carry_the_tenant_and_a_subscriber_filtered_on_a_tenant_gets_only_its_events(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    env = {"RELAY_SUBSCRIBERS": "everyone:*,acme-only:*@acme,bravo-failures:failed@bravo"}
    with tenant_stack(backend, tmp_path, moto=moto, relay_env=env) as stack:
        acme = [stack.submit("acme", {**REQUEST, "metadata": {"n": n}})["id"] for n in range(2)]
        bravo = stack.submit("bravo")["id"]
        stack.wait_final("admin", [*acme, bravo])
        everyone = stack.subscriber_messages("everyone")
        acme_only = stack.subscriber_messages("acme-only")
        bravo_failures = stack.subscriber_messages("bravo-failures")
    assert {(e["subject"], e["tenant"]) for e in everyone} == {*((j, "acme") for j in acme), (bravo, "bravo")}
    assert sorted(e["subject"] for e in acme_only) == sorted(acme)
    assert bravo_failures == []  # bravo's job completed: neither tenant nor type lets it through
