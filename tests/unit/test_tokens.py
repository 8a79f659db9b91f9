"""Capability tokens: per job, verifiable in constant time, rotatable by key id."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.base.errors import ConfigurationError
from handlers.domain.tokens import TokenSigner

OLD, NEW = "k1:" + "a" * 32, "k2:" + "b" * 32


def test_a_token_verifies_for_its_job_only() -> None:
    signer = TokenSigner.from_config([OLD])
    token = signer.sign("job_a")
    assert token.startswith("k1.") and signer.verify("job_a", token)
    assert not signer.verify("job_b", token)


@pytest.mark.parametrize("token", [None, "", "k1", "k1.", ".abc", "k1.abc", "k9.x", "garbage"])
def test_malformed_tokens_are_false_not_errors(token: str | None) -> None:
    assert not TokenSigner.from_config([OLD]).verify("job_a", token)


def test_rotation_signs_with_the_new_key_and_still_accepts_the_old() -> None:
    before = TokenSigner.from_config([OLD]).sign("job_a")
    rotated = TokenSigner.from_config([NEW, OLD])
    assert rotated.sign("job_a").startswith("k2.")
    assert rotated.verify("job_a", before)


def test_dropping_a_key_revokes_every_token_it_signed() -> None:
    before = TokenSigner.from_config([OLD]).sign("job_a")
    assert not TokenSigner.from_config([NEW]).verify("job_a", before)


def test_a_token_under_another_kid_with_the_right_mac_is_refused() -> None:
    signer = TokenSigner.from_config([NEW, OLD])
    mac = signer.sign("job_a").split(".", 1)[1]
    assert not signer.verify("job_a", f"k1.{mac}")


@pytest.mark.parametrize("entries", [[], ["short"], ["k-1:" + "a" * 32], ["k1:" + "a" * 8]])
def test_weak_or_malformed_secrets_are_refused(entries: list[str]) -> None:
    with pytest.raises(ConfigurationError, match="RELAY_CALLBACK_SECRET"):
        TokenSigner.from_config(entries)


def test_a_bare_secret_gets_key_id_k1() -> None:
    assert TokenSigner.from_config(["x" * 32]).current_kid == "k1"


@given(st.text(min_size=1, max_size=64), st.text(max_size=80))
def test_only_the_signed_token_verifies(job_id: str, forged: str) -> None:
    signer = TokenSigner.from_config([OLD])
    token = signer.sign(job_id)
    assert signer.verify(job_id, token)
    assert signer.verify(job_id, forged) is (forged == token)


def test_a_signer_without_keys_verifies_nothing_and_refuses_to_sign() -> None:
    signer = TokenSigner.from_config([], required=False)
    assert not signer.verify("job_a", "k1.abc")
    with pytest.raises(ConfigurationError, match="RELAY_CALLBACK_SECRET"):
        signer.sign("job_a")
