"""Standard Webhooks signing and webhook configuration: pure functions, the spec's vectors, the reference library."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from handlers.app.settings import Settings
from handlers.base.errors import ConfigurationError
from handlers.base.logs import redact
from handlers.webhooks.config import load_targets, secret_parameters, secret_variable
from handlers.webhooks.signing import InvalidWebhook, WebhookSecret, sign, verify
from tests.conftest import load_fixture

VECTORS = load_fixture("standard-webhooks/standard-webhooks-vectors.json")
SIGN_VECTORS = VECTORS["sign_vectors"]
NEGATIVE_VECTORS = VECTORS["negative_vectors"]
OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
BODY = b'{"specversion":"1.0","id":"abc123","type":"io.seedance-relay.job.completed","data":{"n":"\xc3\xa9"}}'


def headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def signed(secrets: list[str], *, msg_id: str = "abc123", timestamp: int | None = None,
           body: bytes = BODY) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return headers(msg_id, stamp, sign(msg_id, stamp, body, [WebhookSecret.parse(s) for s in secrets]))


# --- the upstream vectors -----------------------------------------------------------------------

@pytest.mark.parametrize("vector", SIGN_VECTORS, ids=lambda v: v["name"])
def test_sign_reproduces_every_upstream_vector(vector: dict[str, Any]) -> None:
    """Our signature is byte for byte the one the reference libraries' tests expect."""
    secret = WebhookSecret.parse(vector["secret"])
    assert sign(vector["msg_id"], vector["timestamp"], vector["payload"].encode(), [secret]) == \
        vector["expected_signature"]


@pytest.mark.parametrize("vector", SIGN_VECTORS, ids=lambda v: v["name"])
def test_verify_accepts_every_upstream_vector(vector: dict[str, Any]) -> None:
    """The expected signatures verify at their own timestamp."""
    verify(headers(vector["msg_id"], vector["timestamp"], vector["expected_signature"]), vector["payload"].encode(),
           [WebhookSecret.parse(vector["secret"])], now=vector["timestamp"])


def _negative(vector: dict[str, Any]) -> dict[str, Any]:
    """A negative vector with the first sign vector's inputs filled in where it leaves them out."""
    return {**SIGN_VECTORS[0], **vector}


@pytest.mark.parametrize("vector", [v for v in NEGATIVE_VECTORS if v["expect"].startswith("reject")],
                         ids=lambda v: v["name"])
def test_verify_rejects_every_negative_vector(vector: dict[str, Any]) -> None:
    """Wrong, foreign and truncated signatures are refused."""
    case = _negative(vector)
    with pytest.raises(InvalidWebhook, match="no matching signature") as caught:
        verify(headers(case["msg_id"], case["timestamp"], case["webhook_signature_header"]),
               case["payload"].encode(), [WebhookSecret.parse(case["secret"])], now=case["timestamp"])
    assert caught.value.code == "no_matching_signature"


@pytest.mark.parametrize("vector", [v for v in NEGATIVE_VECTORS if v["expect"].startswith("accept")],
                         ids=lambda v: v["name"])
def test_verify_finds_the_valid_entry_among_decoys(vector: dict[str, Any]) -> None:
    """A header with decoy v1 entries and v2 entries still verifies through its one valid v1 entry."""
    case = _negative(vector)
    verify(headers(case["msg_id"], case["timestamp"], case["webhook_signature_header"]),
           case["payload"].encode(), [WebhookSecret.parse(case["secret"])], now=case["timestamp"])


@pytest.mark.parametrize("encoded", [case.split(" ")[0] for case in VECTORS["secret_padding_cases_from_python_tests"]])
def test_unpadded_secrets_decode_like_the_reference_library(encoded: str) -> None:
    """``whsec_`` secrets that lack base64 padding give the reference library's key."""
    secret = WebhookSecret.parse("whsec_" + encoded)
    assert secret.key == base64.b64decode(encoded + "==")
    Webhook("whsec_" + encoded).verify(BODY, signed(["whsec_" + encoded]), json_parse=False)


# --- the reference library verifies our signatures -----------------------------------------------

def test_reference_library_verifies_our_signature() -> None:
    """What we send passes ``standardwebhooks.Webhook.verify`` and parses back to the body."""
    assert Webhook(NEW).verify(BODY, signed([NEW]))["id"] == "abc123"


def test_reference_library_signs_what_we_sign() -> None:
    """Independent derivations agree: the reference ``sign`` gives our header for one secret."""
    from datetime import UTC, datetime

    stamp = 1_700_000_000
    ours = sign("msg_1", stamp, BODY, [WebhookSecret.parse(NEW)])
    assert ours == Webhook(NEW).sign("msg_1", datetime.fromtimestamp(stamp, tz=UTC), BODY.decode())


def test_every_active_secret_signs_in_order() -> None:
    """One ``v1`` entry per secret, newest first, space-separated."""
    both = signed([NEW, OLD], timestamp=1_000_000)["webhook-signature"]
    one = [signed([s], timestamp=1_000_000)["webhook-signature"] for s in (NEW, OLD)]
    assert both == " ".join(one)


@pytest.mark.parametrize("receiver", [NEW, OLD], ids=["holds-new", "holds-old"])
def test_rotation_keeps_receivers_on_either_secret_verifying(receiver: str) -> None:
    """During a rotation both signatures are sent, so a receiver on the old or the new secret accepts."""
    Webhook(receiver).verify(BODY, signed([NEW, OLD]), json_parse=False)


def test_after_rotation_a_receiver_on_the_retired_secret_refuses() -> None:
    """Once the old secret is dropped, a receiver still holding it no longer verifies."""
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(OLD).verify(BODY, signed([NEW]), json_parse=False)


def test_raw_secret_matches_reference_library_given_bytes() -> None:
    """A raw (unprefixed) secret is its UTF-8 bytes, as ``Webhook(bytes)`` takes it."""
    raw = "a-raw-shared-secret-of-some-length"
    assert WebhookSecret.parse(raw).key == raw.encode()
    Webhook(raw.encode()).verify(BODY, signed([raw]), json_parse=False)


# --- verify: tolerance, tampering, headers --------------------------------------------------------

@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_verify_accepts_timestamps_within_tolerance(offset: int) -> None:
    """Five minutes either way of ``now`` is accepted, boundaries included."""
    verify(signed([NEW], timestamp=1_000_000), BODY, [WebhookSecret.parse(NEW)], now=1_000_000 + offset)


@pytest.mark.parametrize(("now", "code"), [(1_000_301, "timestamp_too_old"), (999_699, "timestamp_too_new")])
def test_verify_refuses_timestamps_outside_tolerance(now: int, code: str) -> None:
    """A replay older than the tolerance, or a timestamp from the future, is refused."""
    with pytest.raises(InvalidWebhook, match="too") as caught:
        verify(signed([NEW], timestamp=1_000_000), BODY, [WebhookSecret.parse(NEW)], now=now)
    assert caught.value.code == code


def test_verify_honours_a_custom_tolerance() -> None:
    """``tolerance`` widens or narrows the window."""
    verify(signed([NEW], timestamp=1_000_000), BODY, [WebhookSecret.parse(NEW)], now=1_000_900, tolerance=900)
    with pytest.raises(InvalidWebhook, match="too old"):
        verify(signed([NEW], timestamp=1_000_000), BODY, [WebhookSecret.parse(NEW)], now=1_000_011, tolerance=10)


@pytest.mark.parametrize("tamper", ["body", "timestamp", "id"])
def test_verify_refuses_tampered_content(tamper: str) -> None:
    """Changing the body, the timestamp or the id breaks the signature."""
    sent = signed([NEW], timestamp=1_000_000)
    body = BODY.replace(b"abc123", b"abc124") if tamper == "body" else BODY
    if tamper == "timestamp":
        sent["webhook-timestamp"] = "1000001"
    if tamper == "id":
        sent["webhook-id"] = "abc124"
    with pytest.raises(InvalidWebhook, match="no matching signature"):
        verify(sent, body, [WebhookSecret.parse(NEW)], now=1_000_000)


def test_verify_refuses_a_signature_by_another_secret() -> None:
    """A valid signature by a secret the receiver does not hold is refused."""
    with pytest.raises(InvalidWebhook, match="no matching signature"):
        verify(signed([OLD], timestamp=1_000_000), BODY, [WebhookSecret.parse(NEW)], now=1_000_000)


def test_verify_accepts_any_of_the_receivers_secrets() -> None:
    """A receiver mid-rotation passes both its secrets; either one matching is enough."""
    verify(signed([OLD], timestamp=1_000_000), BODY, [WebhookSecret.parse(NEW), WebhookSecret.parse(OLD)],
           now=1_000_000)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_requires_all_three_headers(missing: str) -> None:
    """Each of the three headers is required."""
    sent = signed([NEW], timestamp=1_000_000)
    del sent[missing]
    with pytest.raises(InvalidWebhook, match="missing") as caught:
        verify(sent, BODY, [WebhookSecret.parse(NEW)], now=1_000_000)
    assert caught.value.code == "missing_headers"


@pytest.mark.parametrize("stamp", ["1e6", "-1000000", "1_000_000", " 1000000", "now"])
def test_verify_refuses_a_timestamp_that_is_not_plain_digits(stamp: str) -> None:
    """``webhook-timestamp`` is an integer in plain digits."""
    sent = {**signed([NEW], timestamp=1_000_000), "webhook-timestamp": stamp}
    with pytest.raises(InvalidWebhook, match="not an integer"):
        verify(sent, BODY, [WebhookSecret.parse(NEW)], now=1_000_000)


def test_verify_matches_header_names_case_insensitively() -> None:
    """``Webhook-Id`` is ``webhook-id``."""
    sent = {name.title(): value for name, value in signed([NEW], timestamp=1_000_000).items()}
    verify(sent, BODY, [WebhookSecret.parse(NEW)], now=1_000_000)


def test_verify_skips_other_signature_versions() -> None:
    """A ``v1a`` entry carrying a correct HMAC is not a ``v1`` signature."""
    sent = signed([NEW], timestamp=1_000_000)
    sent["webhook-signature"] = sent["webhook-signature"].replace("v1,", "v1a,")
    with pytest.raises(InvalidWebhook, match="no matching signature"):
        verify(sent, BODY, [WebhookSecret.parse(NEW)], now=1_000_000)


# --- sign and secrets -----------------------------------------------------------------------------

@pytest.mark.parametrize("msg_id", ["", "evt.1"])
def test_sign_refuses_an_empty_or_dotted_id(msg_id: str) -> None:
    """The spec forbids '.' in the id (it would make the signed content ambiguous)."""
    with pytest.raises(ValueError, match=r"no '\.'"):
        sign(msg_id, 1, BODY, [WebhookSecret.parse(NEW)])


def test_sign_needs_a_secret() -> None:
    """Signing with no secret is a programming error, not an unsigned request."""
    with pytest.raises(ValueError, match="at least one secret"):
        sign("abc", 1, BODY, [])


@pytest.mark.parametrize("text", ["whsec_", "whsec_not*base64", "whsec_abcde", ""])
def test_secret_parse_refuses_empty_or_invalid(text: str) -> None:
    """An empty key or a ``whsec_`` value that is not base64 is refused."""
    with pytest.raises(ValueError, match=r"base64|empty"):
        WebhookSecret.parse(text)


def test_secret_round_trips_and_hides_its_key() -> None:
    """``serialize`` gives the ``whsec_`` form back; ``repr`` shows no key bytes."""
    secret = WebhookSecret.generate()
    assert len(secret.key) == 32
    assert WebhookSecret.parse(secret.serialize()) == secret
    assert "key" not in repr(secret)
    assert WebhookSecret.parse(OLD).serialize() == OLD


# --- configuration --------------------------------------------------------------------------------

def settings(**env: str) -> Settings:
    base = {"RELAY_SUBSCRIBERS": "crm:completed,archive:*", "RELAY_WEBHOOKS": "crm=https://crm.example/hook",
            "RELAY_WEBHOOK_SECRET_CRM": f"{NEW} {OLD}"}
    return Settings.from_env({k: v for k, v in {**base, **env}.items() if v is not None})


def test_targets_come_from_the_environment_with_secrets_newest_first() -> None:
    """``RELAY_WEBHOOKS`` names the URL, ``RELAY_WEBHOOK_SECRET_<NAME>`` the secrets, in order."""
    [target] = load_targets(settings())
    assert (target.name, target.url, target.host) == ("crm", "https://crm.example/hook", "crm.example")
    assert target.secrets == (WebhookSecret.parse(NEW), WebhookSecret.parse(OLD))
    assert NEW not in repr(target)


def test_no_webhooks_configured_means_no_targets() -> None:
    """Without ``RELAY_WEBHOOKS`` there is nothing to deliver to."""
    assert load_targets(Settings.from_env({})) == ()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]:9/h"])
def test_plain_http_is_allowed_to_loopback(url: str) -> None:
    """Local receivers may be plain http."""
    [target] = load_targets(settings(RELAY_WEBHOOKS=f"crm={url}"))
    assert target.url == url


def test_secret_variable_name_follows_the_webhook_name() -> None:
    """``my-hook`` reads ``RELAY_WEBHOOK_SECRET_MY_HOOK``."""
    assert secret_variable("my-hook") == "RELAY_WEBHOOK_SECRET_MY_HOOK"
    [target] = load_targets(settings(RELAY_SUBSCRIBERS="my-hook:*", RELAY_WEBHOOKS="my-hook=https://h.example",
                                     RELAY_WEBHOOK_SECRET_MY_HOOK=NEW))
    assert target.name == "my-hook"


def test_names_selects_the_targets_to_load() -> None:
    """A function for one webhook loads only that one (the others' secrets may be absent)."""
    chosen = load_targets(settings(RELAY_WEBHOOKS="crm=https://crm.example/hook,other=https://o.example",
                                   RELAY_SUBSCRIBERS="crm:*,other:*"), names=["crm"])
    assert [target.name for target in chosen] == ["crm"]


@pytest.mark.parametrize(("env", "message"), [
    ({"RELAY_SUBSCRIBERS": "archive:*"}, r"RELAY_WEBHOOKS: webhook 'crm' is not a subscriber.*RELAY_SUBSCRIBERS"),
    ({"RELAY_WEBHOOK_SECRET_CRM": ""}, r"RELAY_WEBHOOK_SECRET_CRM is not set"),
    ({"RELAY_WEBHOOK_SECRET_CRM": "", "RELAY_WEBHOOK_SECRET_CRM_PARAM": "/p/crm"},
     r"RELAY_WEBHOOK_SECRET_CRM is not set.*RELAY_WEBHOOK_SECRET_CRM_PARAM"),
    ({"RELAY_WEBHOOKS": "crm=http://crm.example/hook"}, r"RELAY_WEBHOOKS: webhook 'crm' URL must be https"),
    ({"RELAY_WEBHOOKS": "crm=http://10.0.0.5/hook"}, r"RELAY_WEBHOOKS: webhook 'crm' URL must be https"),
    ({"RELAY_WEBHOOKS": "crm=ftp://crm.example/hook"}, r"RELAY_WEBHOOKS: webhook 'crm' URL must be https"),
    ({"RELAY_WEBHOOKS": "crm=https://user:pw@crm.example/hook"}, r"RELAY_WEBHOOKS: .*credentials"),
    ({"RELAY_WEBHOOKS": "crm=https:///hook"}, r"RELAY_WEBHOOKS: .*no host"),
    ({"RELAY_WEBHOOKS": "crm=https://crm.example:99999/"}, r"RELAY_WEBHOOKS: .*malformed"),
    ({"RELAY_WEBHOOKS": "https://crm.example/hook"}, r"RELAY_WEBHOOKS: expected name=url"),
    ({"RELAY_WEBHOOKS": "crm=https://a.example,crm=https://b.example"}, r"RELAY_WEBHOOKS: .*listed twice"),
    ({"RELAY_WEBHOOKS": "a-b=https://a.example,a_b=https://b.example", "RELAY_SUBSCRIBERS": "a-b:*,a_b:*"},
     r"RELAY_WEBHOOKS: .*share RELAY_WEBHOOK_SECRET_A_B"),
    ({"RELAY_WEBHOOK_SECRET_CRM": "whsec_c2hvcnQ="}, r"RELAY_WEBHOOK_SECRET_CRM: secret #1 is 5 bytes"),
    ({"RELAY_WEBHOOK_SECRET_CRM": f"{NEW} whsec_***"}, r"RELAY_WEBHOOK_SECRET_CRM: secret #2 .*base64"),
], ids=["no-subscriber", "no-secret", "param-only", "http-public", "http-private", "ftp", "credentials",
        "no-host", "bad-port", "no-name", "duplicate", "colliding-variables", "short-secret", "bad-base64"])
def test_configuration_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    """Each misconfiguration is a ConfigurationError that says which variable to fix."""
    with pytest.raises(ConfigurationError, match=message):
        load_targets(settings(**env))


def test_asking_for_an_unknown_webhook_names_relay_webhooks() -> None:
    """Selecting a webhook that is not configured is a configuration error."""
    with pytest.raises(ConfigurationError, match=r"RELAY_WEBHOOKS: no webhook named 'nope'"):
        load_targets(settings(), names=["nope"])


def test_configuration_errors_never_quote_the_secret() -> None:
    """A rejected secret is described by position and size, never by value."""
    short = "whsec_c2hvcnQtc2VjcmV0"
    with pytest.raises(ConfigurationError) as caught:
        load_targets(settings(RELAY_WEBHOOK_SECRET_CRM=short))
    assert short not in str(caught.value)
    assert "c2hvcnQtc2VjcmV0" not in str(caught.value)


def test_loaded_secrets_are_redacted_from_log_events() -> None:
    """Loading registers every secret, so the log redactor scrubs it wherever it appears."""
    load_targets(settings())
    event = redact(None, "info", {"event": "oops", "note": f"header was v1 with {NEW} and {OLD[6:]}"})
    assert NEW not in event["note"]
    assert OLD[6:] not in event["note"]


def test_secret_parameters_lists_only_unresolved_params() -> None:
    """Only secrets given solely as an SSM parameter need resolving."""
    configured = settings(RELAY_WEBHOOKS="crm=https://c.example,other=https://o.example,third=https://t.example",
                          RELAY_WEBHOOK_SECRET_CRM="", RELAY_WEBHOOK_SECRET_CRM_PARAM="/p/crm",
                          RELAY_WEBHOOK_SECRET_OTHER=NEW, RELAY_WEBHOOK_SECRET_OTHER_PARAM="/p/other")
    assert secret_parameters(configured, ["crm", "other", "third"]) == {"crm": "/p/crm"}
