"""Identifying data at rest: AES-256-GCM (authenticated) under rotatable keys, and a keyed blind
index that finds duplicates without decrypting.

Keys come from configuration: NRW_DATA_KEYS ("id:base64key,id2:base64key"), NRW_DATA_KEY_ID (the
key new records use) and NRW_BLIND_INDEX_KEY. On a developer's machine with none set, keys are
generated once into $NRW_VAR/secrets/keys.json (mode 0600), never into a database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.config import Settings

_LOCK = threading.Lock()


class UnknownKeyError(Exception):
    """A record names a key this process does not have."""


class Keyring:
    """Data keys by id, the current key id, and the blind-index key."""

    def __init__(self, keys: dict[str, bytes], current: str, blind_index_key: bytes, settings: Settings | None = None):
        if current not in keys:
            raise ValueError(f"current data key {current!r} is not among the configured keys")
        self.keys = keys
        self.current = current
        self.blind_index_key = blind_index_key
        self._settings = settings  # where to look again for a key added since (rotation)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Keyring":
        """Keys from NRW_DATA_KEYS / NRW_DATA_KEY_ID / NRW_BLIND_INDEX_KEY, else the local key file."""
        raw = os.environ.get("NRW_DATA_KEYS")
        if raw:
            keys = {}
            for item in raw.split(","):
                kid, _, b64 = item.strip().partition(":")
                keys[kid] = base64.urlsafe_b64decode(b64)
            current = os.environ.get("NRW_DATA_KEY_ID") or sorted(keys)[-1]
            blind = os.environ.get("NRW_BLIND_INDEX_KEY")
            if not blind:
                raise ValueError("NRW_BLIND_INDEX_KEY must be set together with NRW_DATA_KEYS")
            return cls(keys, current, base64.urlsafe_b64decode(blind), settings)
        stored = local_keys(settings.secrets_path / "keys.json")
        keys = {kid: base64.urlsafe_b64decode(v) for kid, v in stored["data_keys"].items()}
        return cls(keys, stored["current"], base64.urlsafe_b64decode(stored["blind_index_key"]), settings)

    def encrypt(self, fields: dict, bound_to: str) -> dict:
        """Encrypt a dict of identifying fields; the ciphertext only decrypts for the same record id."""
        nonce = secrets.token_bytes(12)
        plaintext = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext, bound_to.encode("utf-8"))
        return {"kid": self.current, "nonce": base64.b64encode(nonce).decode(), "ct": base64.b64encode(sealed).decode()}

    def decrypt(self, blob: dict, bound_to: str) -> dict:
        """Decrypt what `encrypt` sealed; raises if it was tampered with or bound to another record."""
        key = self.keys.get(blob["kid"])
        if key is None and self._settings is not None:
            self.keys = {**Keyring.from_settings(self._settings).keys, **self.keys}  # rotated since we started
            key = self.keys.get(blob["kid"])
        if key is None:
            raise UnknownKeyError(f"data key {blob['kid']!r} is not configured")
        plaintext = AESGCM(key).decrypt(base64.b64decode(blob["nonce"]), base64.b64decode(blob["ct"]),
                                        bound_to.encode("utf-8"))
        return json.loads(plaintext)

    def blind_index(self, normalised: str) -> str:
        """A keyed hash of a normalised value: equal inputs match, nothing can be read back."""
        return hmac.new(self.blind_index_key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()

    def blind_tokens(self, tokens: list[str], purpose: str) -> list[str]:
        """Keyed hashes of short tokens (a name's letter pairs), shortened to 64 bits: enough to
        compare sets of them, and the key (with `purpose` kept apart from the person index) keeps
        a reader of the database from hashing guesses."""
        prefix = purpose.encode("utf-8") + b"\x00"
        return sorted({hmac.new(self.blind_index_key, prefix + t.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
                       for t in tokens})


def local_keys(path: Path) -> dict:
    """The data keys of the key file (created 0600, with a first data key, if missing)."""
    with _LOCK:
        if path.exists():
            return json.loads(path.read_text())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        stored = {
            "current": "k1",
            "data_keys": {"k1": base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()},
            "blind_index_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh)
        try:
            os.link(tmp, path)  # atomic and fails if another process won the race
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return json.loads(path.read_text())
