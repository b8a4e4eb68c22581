"""Tokens, encryption at rest and the blind index, without any server."""

import base64
import hashlib
import hmac
import datetime as dt
import json

import jwt
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import auth
from shared.crypto import Keyring
from shared.errors import ApiError


def _now() -> dt.datetime:
    """The time now: a token signed at import time expires before a long unit run reaches it."""
    return dt.datetime.now(dt.timezone.utc)


PRIVATE = Ed25519PrivateKey.generate()
SIGNER = auth.TokenSigner(PRIVATE)
VERIFIER = auth.TokenVerifier(PRIVATE.public_key())
USER = {"_id": "cw1", "user_id": "u-1", "roles": ["caseworker"], "version": 3}


def _token(**overrides) -> str:
    args = {"session_id": "s-1", "kind": auth.ACCESS, "scope": auth.FULL, "ttl_seconds": 60, "now": _now()}
    return SIGNER.sign(USER, **{**args, **overrides})


def test_a_token_verifies_and_names_the_user_session_and_version_only():
    claims = VERIFIER.claims(_token())
    assert (claims.user_id, claims.username, claims.session_id, claims.version) == ("u-1", "cw1", "s-1", 3)
    payload = jwt.decode(_token(), options={"verify_signature": False})
    assert "roles" not in payload  # roles come from the account on every request, never from the token


def test_a_tampered_token_is_refused():
    header, payload, signature = _token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["name"] = "admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(ApiError) as err:
        VERIFIER.claims(f"{header}.{forged_payload}.{signature}")
    assert err.value.status == 401


def test_a_token_signed_with_another_key_or_algorithm_is_refused():
    other = auth.TokenSigner(Ed25519PrivateKey.generate()).sign(USER, session_id="s", kind=auth.ACCESS,
                                                                scope=auth.FULL, ttl_seconds=60, now=_now())
    claims = {"sub": "u-1", "name": "cw1", "sid": "s", "ver": 3, "typ": "access", "iss": "nrw", "iat": 0,
              "exp": 2**31}
    unsigned = jwt.encode(claims, None, algorithm="none")
    public_pem = PRIVATE.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    # the classic confusion: the public key used as an HMAC secret
    signing_input = b".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
                              for part in ({"alg": "HS256", "typ": "JWT"}, claims))
    mac = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    confused = (signing_input + b"." + mac).decode()
    for token in (other, unsigned, confused):
        with pytest.raises(ApiError) as err:
            VERIFIER.claims(token)
        assert err.value.code == "invalid_token"


def test_an_expired_token_is_refused():
    token = _token(now=_now() - dt.timedelta(hours=2))
    with pytest.raises(ApiError) as err:
        VERIFIER.claims(token)
    assert err.value.code == "token_expired"


def test_a_page_session_is_no_bearer_token_and_a_bearer_token_no_page_session():
    with pytest.raises(ApiError):
        VERIFIER.claims(_token(kind=auth.SESSION))
    with pytest.raises(ApiError):
        VERIFIER.claims(_token(), kinds=(auth.SESSION,))
    with pytest.raises(ApiError):  # a password accepted but no second factor yet opens nothing
        VERIFIER.claims(_token(kind=auth.PENDING), kinds=(auth.SESSION,))


def test_a_service_token_is_checked_with_that_service_key_only():
    advocacy = Ed25519PrivateKey.generate()
    verifier = auth.TokenVerifier(PRIVATE.public_key(), {"advocacy": advocacy.public_key()})
    account, token_id = verifier.service(auth.service_token("advocacy", advocacy))
    assert account == "svc-advocacy" and token_id
    with pytest.raises(ApiError):  # a long-lived one, minted during a compromise, is no good
        verifier.service(auth.service_token("advocacy", advocacy, ttl_seconds=10 * 365 * 86400))
    assert verifier.service(_token()) is None  # a user's token is not a service's
    with pytest.raises(ApiError):  # signed by someone else under advocacy's name
        verifier.service(auth.service_token("advocacy", Ed25519PrivateKey.generate()))
    assert verifier.service(auth.service_token("reporting", advocacy)) is None  # no such service account
    with pytest.raises(ApiError):  # the issuer's key cannot be used as a service's either
        VERIFIER.claims(auth.service_token("advocacy", PRIVATE))


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
