"""Tenants over real sockets, on both backends: one tenant's jobs are invisible to another, keys have roles, and
events name their tenant.

The sandbox and the relay (in-process, behind its own HTTP server) run once per backend for the module: on
embedded storage, and on the AWS adapters against moto in server mode. Each test makes its own tenants with keys
made at run time by the admin, so no test sees another's jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.tenants import REQUEST, TenantStack, tenant_stack

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("seedance-relay"))
MISSING = "job_" + "0" * 26  # the shape of a job id that no job has
SUBSCRIBERS = "everyone:*,acme-only:*@acme,bravo-failures:failed@bravo"


@pytest.fixture(scope="module", params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantStack]:
    """One sandbox and relay per backend for the module; each test makes tenants of its own (``new_tenant``),
    except the event test, which owns ``acme`` and ``bravo`` (the subscribers filter on them)."""
    backend = str(request.param)
    moto = str(request.getfixturevalue("moto_server")) if backend == "aws" else None
    with tenant_stack(backend, tmp_path_factory.mktemp(f"tenancy-{backend}"), moto=moto,
                      relay_env={"RELAY_SUBSCRIBERS": SUBSCRIBERS}) as running:
        yield running


def answer(response: httpx.Response, job_id: str) -> tuple[int, Any, str | None]:
    """Status, body (the job id written as ``<id>``) and WWW-Authenticate: what tells two answers apart."""
    text = response.text.replace(job_id, "<id>")
    return response.status_code, json.loads(text), response.headers.get("www-authenticate")


def test_a_job_of_another_tenant_answers_exactly_as_a_missing_one_on_every_route(stack: TenantStack) -> None:
    """GET of the job, of its output and of its dashboard details: one tenant gets for another's job the 404 a job
    id that does not exist gets, while the owner and the admin read it."""
    owner, other = stack.new_tenant("owner"), stack.new_tenant("other")
    job = stack.submit(owner)
    stack.wait_final(owner, [job["id"]])
    routes = ["/v1/jobs/{id}", "/v1/jobs/{id}/outputs/0", "/dashboard/jobs/{id}"]
    theirs = {r: answer(stack.api(other).get(r.format(id=job["id"])), job["id"]) for r in routes}
    missing = {r: answer(stack.api(other).get(r.format(id=MISSING)), MISSING) for r in routes}
    readers = {r: stack.api(who).get(r.format(id=job["id"])).status_code for r in routes for who in (owner, "admin")}
    assert theirs == missing
    assert {status for status, _, _ in theirs.values()} == {404}
    assert set(readers.values()) <= {200, 307}  # an output is served, or redirected to a presigned URL


def test_lists_and_usage_show_the_callers_tenant_and_an_admin_sees_every_tenant(stack: TenantStack) -> None:
    one, two = stack.new_tenant("one"), stack.new_tenant("two")
    ones = [stack.submit(one, {**REQUEST, "metadata": {"n": n}})["id"] for n in range(2)]
    twos = [stack.submit(two)["id"]]
    stack.wait_final("admin", [*ones, *twos])
    listed = {who: {j["id"] for j in stack.api(who).get("/v1/jobs").json()["jobs"]} for who in (one, two)}
    asked_for_one = {j["id"] for j in stack.api(two).get("/v1/jobs", params={"tenant": one}).json()["jobs"]}
    admin_all = {j["id"] for j in stack.api("admin").get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
    admin_one = {j["id"] for j in stack.api("admin").get("/v1/jobs", params={"tenant": one}).json()["jobs"]}
    usage = {who: stack.usage(who) for who in (one, two, "admin")}
    assert listed == {one: set(ones), two: set(twos)}
    assert asked_for_one == set(twos)  # the tenant filter is not a submitter's to choose
    assert {*ones, *twos} <= admin_all and admin_one == set(ones)
    assert set(usage[one]) == {one} and set(usage[two]) == {two} and {one, two} <= set(usage["admin"])
    assert (usage[one][one]["jobs"], usage[two][two]["jobs"]) == (2, 1)


def test_one_idempotency_key_used_by_two_tenants_makes_two_jobs_and_two_tasks(stack: TenantStack) -> None:
    one, two = stack.new_tenant("one"), stack.new_tenant("two")
    first = stack.submit(one, key="order-17")
    second = stack.submit(two, key="order-17")
    again = stack.submit(two, key="order-17")
    finals = stack.wait_final("admin", [first["id"], second["id"]])
    tasks = {t["id"] for t in stack.sandbox_tasks()}
    assert first["id"] != second["id"] and again["id"] == second["id"]
    assert {j["tenant"] for j in finals.values()} == {one, two}
    assert {j["status"] for j in finals.values()} == {"published"}
    assert first["task_id"] != second["task_id"] and {first["task_id"], second["task_id"]} <= tasks


def test_a_reader_key_reads_its_tenants_jobs_and_may_create_neither_jobs_nor_uploads(stack: TenantStack) -> None:
    tenant, other = stack.new_tenant("readers"), stack.new_tenant("other")
    reader = stack.client(stack.new_key(tenant, role="reader"))
    own, others = stack.submit(tenant)["id"], stack.submit(other)["id"]
    tasks = len(stack.sandbox_tasks())
    job = reader.post("/v1/jobs", json=REQUEST)
    upload = reader.post("/v1/uploads", content=b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
                         headers={"Content-Type": "image/png"})
    reads = (reader.get(f"/v1/jobs/{own}").status_code, reader.get(f"/v1/jobs/{others}").status_code,
             {j["id"] for j in reader.get("/v1/jobs").json()["jobs"]})
    assert (job.status_code, job.json()["error"]["code"]) == (403, "forbidden")
    assert (upload.status_code, upload.json()["error"]["code"]) == (403, "forbidden")
    assert reads == (200, 404, {own})
    assert len(stack.sandbox_tasks()) == tasks


def keys_cli(stack: TenantStack, *args: str) -> dict[str, Any]:
    """``seedance-relay keys ARGS --json`` as its own process, on the stack's backend."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "EVOLINK_", "SANDBOX_"))}
    done = subprocess.run([EXE, "keys", *args, "--json"], env={**clean, **stack.env}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    made: dict[str, Any] = json.loads(done.stdout)
    return made


def test_a_key_revoked_by_the_keys_command_gets_the_401_of_an_unknown_key(stack: TenantStack) -> None:
    """``keys create`` and ``keys revoke``, run beside the serving relay, take effect on its next request."""
    made = keys_cli(stack, "create", "revoked-tenant")
    client = stack.client(made["key"])
    before = client.get("/v1/jobs").status_code
    keys_cli(stack, "revoke", made["id"])
    revoked, submit = client.get("/v1/jobs"), client.post("/v1/jobs", json=REQUEST)
    unknown = stack.client("sr_" + "x" * 43).get("/v1/jobs")
    assert before == 200
    assert answer(revoked, "-") == answer(unknown, "-") == (401, unknown.json(), "Bearer")
    assert answer(submit, "-") == answer(unknown, "-")


def test_events_carry_the_tenant_and_a_subscriber_filtered_on_a_tenant_gets_only_its_events(
        stack: TenantStack) -> None:
    """Subscribers ``everyone:*``, ``acme-only:*@acme`` and ``bravo-failures:failed@bravo``: two acme jobs and one
    of bravo complete."""
    acme = [stack.submit("acme", {**REQUEST, "metadata": {"n": n}})["id"] for n in range(2)]
    bravo = stack.submit("bravo")["id"]
    stack.wait_final("admin", [*acme, bravo])
    ours = {*acme, bravo}
    everyone = [e for e in stack.subscriber_messages("everyone") if e["subject"] in ours]
    acme_only = stack.subscriber_messages("acme-only")
    bravo_failures = stack.subscriber_messages("bravo-failures")
    assert sorted((e["subject"], e["tenant"]) for e in everyone) == sorted([*((j, "acme") for j in acme),
                                                                            (bravo, "bravo")])
    assert sorted(e["subject"] for e in acme_only) == sorted(acme)
    assert bravo_failures == []  # bravo's job completed: the type filter holds it back
