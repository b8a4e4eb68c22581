"""Tokens, encryption at rest and the blind index, without any server."""

import base64
import datetime as dt
import json

import jwt
import pytest
from cryptography.exceptions import InvalidTag

from shared import auth
from shared.crypto import Keyring
from shared.errors import ApiError

KEY = "unit-test-signing-key-" + "k" * 20
USER = {"_id": "cw1", "user_id": "u-1", "roles": ["caseworker"]}


def test_a_token_verifies_and_carries_roles_and_a_pseudonymous_subject():
    token = auth.issue_token(USER, KEY, 60)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 60
    claims = auth.verify_token(token["access_token"], KEY)
    assert claims["sub"] == "u-1" and claims["roles"] == ["caseworker"]


def test_a_tampered_token_is_refused():
    token = auth.issue_token(USER, KEY, 60)["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["admin"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(ApiError) as err:
        auth.verify_token(f"{header}.{forged_payload}.{signature}", KEY)
    assert err.value.status == 401


def test_a_token_signed_with_another_key_or_algorithm_is_refused():
    other = auth.issue_token(USER, "another-key-" + "x" * 30, 60)["access_token"]
    unsigned = jwt.encode({"sub": "u-1", "roles": ["admin"], "iss": "nrw", "iat": 0, "exp": 2**31}, None,
                          algorithm="none")
    for token in (other, unsigned):
        with pytest.raises(ApiError) as err:
            auth.verify_token(token, KEY)
        assert err.value.code == "invalid_token"


def test_an_expired_token_is_refused():
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    token = auth.issue_token(USER, KEY, 60, now=past)["access_token"]
    with pytest.raises(ApiError) as err:
        auth.verify_token(token, KEY)
    assert err.value.code == "token_expired"


def _keyring(current="k1"):
    keys = {"k1": b"\x01" * 32, "k2": b"\x02" * 32}
    return Keyring(keys, current, b"\x03" * 32)


def test_encryption_round_trips_and_hides_the_plaintext():
    sealed = _keyring().encrypt({"full_name": "Synthmark A"}, bound_to="r-1")
    assert "Synthmark" not in json.dumps(sealed) and sealed["kid"] == "k1"
    assert _keyring().decrypt(sealed, bound_to="r-1") == {"full_name": "Synthmark A"}


def test_ciphertext_moved_to_another_record_or_altered_does_not_decrypt():
    sealed = _keyring().encrypt({"full_name": "Synthmark A"}, bound_to="r-1")
    with pytest.raises(InvalidTag):
        _keyring().decrypt(sealed, bound_to="r-2")
    raw = bytearray(base64.b64decode(sealed["ct"]))
    raw[0] ^= 1
    with pytest.raises(InvalidTag):
        _keyring().decrypt({**sealed, "ct": base64.b64encode(bytes(raw)).decode()}, bound_to="r-1")


def test_records_under_an_older_key_still_decrypt_after_rotation():
    old = _keyring("k1").encrypt({"x": 1}, bound_to="r-1")
    rotated = _keyring("k2")
    assert rotated.decrypt(old, bound_to="r-1") == {"x": 1}
    assert rotated.encrypt({"x": 1}, bound_to="r-1")["kid"] == "k2"


def test_the_blind_index_is_deterministic_and_keyed():
    ring = _keyring()
    assert ring.blind_index("kim|1990") == ring.blind_index("kim|1990") != ring.blind_index("kim|1991")
    other = Keyring({"k1": b"\x01" * 32}, "k1", b"\x04" * 32)
    assert other.blind_index("kim|1990") != ring.blind_index("kim|1990")
