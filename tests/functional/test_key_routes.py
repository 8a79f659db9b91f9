"""The key management routes over a real socket, on the local key store: admins only, the key shown once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from handlers.adapters.local import SqliteKeyStore
from handlers.api.keys import KEY_BODY_MAX, key_routes
from handlers.base.errors import Unauthorized
from handlers.domain.tenancy import Principal, Role, key_digest
from handlers.net.server import BackgroundServer
from tests.support.fakes import Clock

ADMIN, SUBMITTER, READER = ({"Authorization": f"Bearer {name}"} for name in ("admin", "submitter", "reader"))


class Bearers:
    """An authenticator that knows three bearer tokens by name (the real one is the app's concern)."""

    def principal(self, request: HTTPConnection) -> Principal:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in {role.value for role in Role}:
            raise Unauthorized("a valid bearer API key is required")
        return Principal("default", Role(token), f"key_{token}")


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteKeyStore]:
    store = SqliteKeyStore(tmp_path / "relay.sqlite3")
    yield store
    store.close()


@pytest.fixture
def client(store: SqliteKeyStore, clock: Clock) -> Iterator[httpx.Client]:
    app = Starlette(routes=key_routes(store, Bearers(), clock))
    with BackgroundServer(app) as url, httpx.Client(base_url=url) as client:
        yield client


def create(client: httpx.Client, body: Any, headers: dict[str, str] = ADMIN) -> httpx.Response:
    return client.post("/v1/keys", json=body, headers=headers)


def test_an_admin_creates_a_key_and_sees_it_once(client: httpx.Client, store: SqliteKeyStore) -> None:
    response = create(client, {"tenant": "acme", "role": "reader"})
    body = response.json()
    assert response.status_code == 201 and response.headers["cache-control"] == "no-store"
    assert set(body) == {"id", "tenant", "role", "created_at", "revoked_at", "key"}
    assert (body["tenant"], body["role"], body["revoked_at"]) == ("acme", "reader", None)
    assert body["created_at"] == "2027-01-15T08:00:00.000000Z"
    stored = store.key_by_digest(key_digest(body["key"]))
    assert stored is not None and (stored.id, stored.tenant, stored.role) == (body["id"], "acme", Role.READER)


def test_a_key_is_a_submitter_unless_a_role_is_given(client: httpx.Client) -> None:
    assert create(client, {"tenant": "acme"}).json()["role"] == "submitter"


def test_the_list_shows_every_key_oldest_first_without_keys_or_digests(client: httpx.Client,
                                                                        clock: Clock) -> None:
    first = create(client, {"tenant": "acme"}).json()
    clock.advance(5)
    second = create(client, {"tenant": "bravo", "role": "admin"}).json()
    response = client.get("/v1/keys", headers=ADMIN)
    listed = response.json()["keys"]
    assert [(k["id"], k["tenant"], k["role"]) for k in listed] == [
        (first["id"], "acme", "submitter"), (second["id"], "bravo", "admin")]
    assert all(set(k) == {"id", "tenant", "role", "created_at", "revoked_at"} for k in listed)
    for shown in (first, second):
        assert shown["key"] not in response.text and key_digest(shown["key"]) not in response.text


def test_delete_revokes_the_key_and_answers_its_record(client: httpx.Client, store: SqliteKeyStore,
                                                       clock: Clock) -> None:
    made = create(client, {"tenant": "acme"}).json()
    clock.advance(60)
    response = client.delete(f"/v1/keys/{made['id']}", headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {**{k: v for k, v in made.items() if k != "key"},
                               "revoked_at": "2027-01-15T08:01:00.000000Z"}
    stored = store.key_by_digest(key_digest(made["key"]))
    assert stored is not None and stored.revoked_at == clock.now()


def test_deleting_a_revoked_key_again_keeps_its_first_revocation(client: httpx.Client, clock: Clock) -> None:
    made = create(client, {"tenant": "acme"}).json()
    first = client.delete(f"/v1/keys/{made['id']}", headers=ADMIN).json()
    clock.advance(60)
    again = client.delete(f"/v1/keys/{made['id']}", headers=ADMIN)
    assert again.status_code == 200 and again.json() == first


def test_deleting_an_unknown_key_is_404(client: httpx.Client) -> None:
    response = client.delete("/v1/keys/key_000000000000", headers=ADMIN)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found" and "key_000000000000" in response.text


@pytest.mark.parametrize("headers", [SUBMITTER, READER], ids=["submitter", "reader"])
@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/keys"), ("GET", "/v1/keys"),
                                               ("DELETE", "/v1/keys/key_x")])
def test_a_key_that_is_not_an_admin_gets_403_and_changes_nothing(client: httpx.Client, store: SqliteKeyStore,
                                                                 headers: dict[str, str], method: str,
                                                                 path: str) -> None:
    response = client.request(method, path, headers=headers, json={"tenant": "acme"})
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "forbidden", "message": "this needs an admin key"}}
    assert store.keys() == []


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/keys"), ("GET", "/v1/keys"),
                                               ("DELETE", "/v1/keys/key_x")])
def test_no_or_a_wrong_key_gets_401(client: httpx.Client, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nobody"}):
        response = client.request(method, path, headers=headers, json={"tenant": "acme"})
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"tenant": "Acme Corp"}, "tenant", "1-63 of a-z 0-9 _ -"),
    ({"tenant": ""}, "tenant", "tenant '' must be"),
    ({"tenant": "x" * 64}, "tenant", "1-63"),
    ({"tenant": "acme\n"}, "tenant", "1-63"),
    ({}, "tenant", "tenant is required"),
    ({"tenant": 7}, "tenant", "tenant must be a string"),
    ({"tenant": "acme", "role": "owner"}, "role", "admin, submitter, reader"),
    ({"tenant": "acme", "role": None}, "role", "role must be a string"),
    ({"tenant": "acme", "scope": "all"}, "scope", "the fields are tenant and role"),
])
def test_a_bad_body_is_400_naming_the_field(client: httpx.Client, store: SqliteKeyStore, body: dict[str, Any],
                                            field: str, says: str) -> None:
    response = create(client, body)
    errors = response.json()["error"]["errors"]
    assert response.status_code == 400 and [e["field"] for e in errors] == [field]
    assert says in errors[0]["message"]
    assert store.keys() == []


def test_a_bad_tenant_and_role_are_named_together(client: httpx.Client) -> None:
    errors = create(client, {"tenant": "A!", "role": "root"}).json()["error"]["errors"]
    assert [e["field"] for e in errors] == ["tenant", "role"]


@pytest.mark.parametrize(("content", "code"), [(b"tenant=acme", "invalid_json"), (b'["acme"]', "invalid_type"),
                                               (b"x" * (KEY_BODY_MAX + 1), "payload_too_large")])
def test_a_body_that_is_not_a_small_json_object_is_refused(client: httpx.Client, content: bytes, code: str) -> None:
    response = client.post("/v1/keys", content=content, headers=ADMIN)
    body = response.json()["error"]
    assert response.status_code in (400, 413)
    assert code in (body["code"], *(e["code"] for e in body.get("errors", [])))
