"""The second factor: TOTP (RFC 6238: SHA-1, 6 digits, 30 s, via pyotp), a QR code to scan
(segno), and ten one-time recovery codes kept only as hashes.

The TOTP secret is stored sealed (AES-256-GCM) under a key derived from the issuer's private
signing key, which no database holds: a copy of the identity database gives neither the secrets
nor a way to compute codes. A code is accepted once: the time step it belongs to is remembered,
so a code seen over someone's shoulder cannot be used again.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

import pyotp
import segno
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ISSUER_NAME = "Non-Refoulement Watch"
RECOVERY_CODES = 10
VALID_WINDOW = 1  # one step either side: a phone's clock a little off still works


def sealing_key(signing_key: Ed25519PrivateKey) -> bytes:
    """The AES key that seals TOTP secrets, derived from the issuer's private key."""
    raw = signing_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"nrw totp secrets").derive(raw)


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits)."""
    return pyotp.random_base32(32)


def seal(secret: str, key: bytes, username: str) -> str:
    """The secret sealed for storage, bound to the username."""
    nonce = secrets.token_bytes(12)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, secret.encode(), username.encode())).decode()


def unseal(sealed: str, key: bytes, username: str) -> str:
    """The secret back from storage."""
    raw = base64.b64decode(sealed)
    return AESGCM(key).decrypt(raw[:12], raw[12:], username.encode()).decode()


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER_NAME)


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (no script, no style)."""
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")


def accepted_step(secret: str, code: str, last_step: int | None, now: dt.datetime) -> int | None:
    """The time step a code belongs to if it is right and newer than the last one used, else None."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // totp.interval
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (last_step is None or step > last_step):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like 'k7q2-m9xp-4tzr', shown to the user once."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return ["-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))
            for _ in range(RECOVERY_CODES)]


def recovery_hash(code: str, key: bytes) -> str:
    """How a recovery code is stored: keyed (HMAC-SHA-256 under the sealing key, which no database
    holds), so that a copy of the database cannot be searched for codes offline."""
    return hmac.new(key, b"nrw recovery code:" + code.strip().lower().encode(), hashlib.sha256).hexdigest()


def looks_like_recovery_code(code: str) -> bool:
    """True for the shape of a recovery code (not six digits)."""
    return len(code.strip()) == 14 and code.strip().count("-") == 2
