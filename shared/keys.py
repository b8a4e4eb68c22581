"""Key files: who may mint what, and where it lives.

Nothing that can mint a token or a page session is kept in a database. Intake's web process
issues every token and session with an Ed25519 private key (`token-signing.key`); every other
web process verifies with the public key (`token-signing.pub`) and so cannot mint. The advocacy
web process signs its own short service token (to ask intake for names in letters) with a key of
its own (`service-advocacy.key`), which intake checks with `service-advocacy.pub`. The four web
processes sign their cookies (language, CSRF, the flash message) with `web-session.secret`; the
login inside the cookie is the issuer's signed session token, which that secret cannot forge.
Intake's processes seal each entry of the audit trail with `audit.key` (an HMAC key: whoever can
write to the database but has not this file cannot change the trail unseen; shared/audit.py).
`python -m infra.backup create` seals each data archive's manifest with `backup-seal.key` (an
HMAC key that travels only in the keys archive), so a restore can tell an archive this stack
wrote from one made by anyone else who knows the recovery key's public half (infra/backup).
Reporting's web process perturbs public figures with record keys derived from
`reporting-cellkey.key` (services/reporting/cellkey.py): kept out of the database, so a copy of
the database cannot undo the noise.

Files live in NRW_SECRETS_DIR (default var/secrets), mode 0600 in a 0700 folder; on a server
they are compose secrets, each given only to the processes listed above. `python -m shared.keys
init` makes whatever is missing; `python -m shared.keys public` prints the public keys.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.config import Settings
from shared.crypto import local_keys

TOKEN_KEY = "token-signing.key"
TOKEN_PUBLIC = "token-signing.pub"
WEB_SESSION_SECRET = "web-session.secret"
DATA_KEYS = "keys.json"  # identifying data's keys (shared/crypto.py): intake's processes only
AUDIT_KEY = "audit.key"  # the audit trail's HMAC key (shared/audit.py): intake's processes only
CASE_NOTES_KEY = "case-notes.key"  # the case service's own key for free text about a person: case-web only
CELLKEY_KEY = "reporting-cellkey.key"  # the cell key method's secret (public figures' noise): reporting-web only
BACKUP_SEAL_KEY = "backup-seal.key"  # seals data archives' manifests (infra/backup): the backup command only
SERVICE_ACCOUNTS = ("advocacy",)


class KeyMissing(RuntimeError):
    """A key file this process needs is not there (run `python -m shared.keys init`)."""


def private_dir(path: Path) -> Path:
    """Make `path` (and missing parents) a folder only its owner can enter; return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_new(path: Path, data: bytes) -> bool:
    """Write a file that did not exist, 0600, atomically against other processes doing the same;
    False if it was already there (theirs is kept)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        os.close(fd)
        wfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(wfd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # readers never see the empty placeholder half-written
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _read(path: Path, what: str) -> bytes:
    for _ in range(50):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyMissing(f"{what} is missing: {path} (run `python -m shared.keys init`)") from None
        if data:
            return data
        time.sleep(0.02)  # another process has just created it and is writing it
    raise KeyMissing(f"{what} is empty: {path}")


def token_key_path(settings: Settings) -> Path:
    """The issuer's private key file (NRW_TOKEN_PRIVATE_KEY_FILE, else in the secrets folder)."""
    return settings.token_private_key_file or settings.secrets_path / TOKEN_KEY


def token_public_path(settings: Settings) -> Path:
    """The public key file every verifying process reads (NRW_TOKEN_PUBLIC_KEY_FILE, else in the secrets folder)."""
    return settings.token_public_key_file or settings.secrets_path / TOKEN_PUBLIC


def service_key_path(settings: Settings, service: str) -> Path:
    """A service account's private key file."""
    return settings.secrets_path / f"service-{service}.key"


def service_public_path(settings: Settings, service: str) -> Path:
    """A service account's public key file (read by intake)."""
    return settings.secrets_path / f"service-{service}.pub"


def _new_pair() -> tuple[bytes, bytes]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def _ensure_pair(private_path: Path, public_path: Path) -> list[Path]:
    made = []
    if not private_path.exists():
        private, public = _new_pair()
        if write_new(private_path, private):
            made.append(private_path)
            public_path.unlink(missing_ok=True)  # a public key without its private key is stale
    if not public_path.exists():
        key = load_private(private_path)
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        if write_new(public_path, public):
            made.append(public_path)
    return made


def init(settings: Settings) -> list[Path]:
    """Create every missing key file of a local stack (0600 in a 0700 folder); the files made."""
    made = _ensure_pair(token_key_path(settings), token_public_path(settings))
    for service in SERVICE_ACCOUNTS:
        made += _ensure_pair(service_key_path(settings, service), service_public_path(settings, service))
    secret = settings.secrets_path / WEB_SESSION_SECRET
    if not secret.exists() and write_new(secret, secrets.token_urlsafe(48).encode()):
        made.append(secret)
    audit = audit_key_path(settings)
    if not audit.exists() and write_new(audit, secrets.token_hex(32).encode()):
        made.append(audit)
    notes = case_notes_key_path(settings)
    if not notes.exists() and write_new(notes, secrets.token_hex(32).encode()):
        made.append(notes)
    for path in (cellkey_key_path(settings), backup_seal_key_path(settings)):
        if not path.exists() and write_new(path, secrets.token_hex(32).encode()):
            made.append(path)
    data_keys = settings.secrets_path / DATA_KEYS
    if not data_keys.exists():
        local_keys(data_keys)
        made.append(data_keys)
    from shared.kafka_auth import ensure_passwords  # it writes with write_new, above
    made += ensure_passwords(settings)
    from shared.mongo_accounts import ensure_credentials  # the database accounts' passwords
    made += ensure_credentials(settings)
    return made


def load_private(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file."""
    key = serialization.load_pem_private_key(_read(path, "a private key"), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyMissing(f"{path} is not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file."""
    key = serialization.load_pem_public_key(_read(path, "a public key"))
    if not isinstance(key, Ed25519PublicKey):
        raise KeyMissing(f"{path} is not an Ed25519 public key")
    return key


def web_session_secret(settings: Settings) -> str:
    """The secret the web processes sign their cookies with (made on first use if missing)."""
    path = settings.secrets_path / WEB_SESSION_SECRET
    if not path.exists():
        write_new(path, secrets.token_urlsafe(48).encode())
    return _read(path, "the web session secret").decode().strip()


def case_notes_key_path(settings: Settings) -> Path:
    """The case service's key for free text about a person (a status change's reason)."""
    return settings.secrets_path / CASE_NOTES_KEY


def case_notes_key(settings: Settings) -> bytes:
    """That key (32 random bytes, hex in the file); KeyMissing if the file is not there."""
    return bytes.fromhex(_read(case_notes_key_path(settings), "the case notes key").decode().strip())


def cellkey_key_path(settings: Settings) -> Path:
    """The cell key method's secret file (reporting's web process only)."""
    return settings.secrets_path / CELLKEY_KEY


def cellkey_key(settings: Settings) -> bytes:
    """That secret (32 random bytes, hex in the file), made on first use if missing like the
    cookie secret (a local stack or a test); KeyMissing if the file holds no hex key of 32 bytes."""
    path = cellkey_key_path(settings)
    if not path.exists():
        write_new(path, secrets.token_hex(32).encode())
    return _hex_key(path, "the cell key secret")


def backup_seal_key_path(settings: Settings) -> Path:
    """The key that seals the data archives' manifests (infra/backup)."""
    return settings.secrets_path / BACKUP_SEAL_KEY


def backup_seal_key(settings: Settings) -> bytes:
    """That key (32 random bytes, hex in the file); KeyMissing if there is none: a data archive is
    never sealed with a key that no keys archive holds."""
    return _hex_key(backup_seal_key_path(settings), "the backup seal key")


def parse_hex_key(text: bytes, what: str) -> bytes:
    """A hex key of at least 32 bytes from a file's content; KeyMissing if it holds none."""
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise KeyMissing(f"{what} does not hold a hex key") from None
    if len(key) < 32:
        raise KeyMissing(f"{what} holds a key shorter than 32 bytes")
    return key


def _hex_key(path: Path, what: str) -> bytes:
    """A key of at least 32 bytes written in hex; KeyMissing if the file is missing or holds none."""
    return parse_hex_key(_read(path, what), str(path))


def audit_key_path(settings: Settings) -> Path:
    """The audit trail's HMAC key file (read by intake's processes only)."""
    return settings.secrets_path / AUDIT_KEY


_audit_keys: dict[Path, bytes] = {}


def audit_key(settings: Settings) -> bytes:
    """The audit trail's HMAC key (32 random bytes, hex in the file); KeyMissing if there is none:
    a trail is never sealed under a key made up on the spot by a process that lacks the file."""
    path = audit_key_path(settings)
    if path not in _audit_keys:
        _audit_keys[path] = _hex_key(path, "the audit key")
    return _audit_keys[path]


def main(argv: list[str] | None = None) -> int:
    """`python -m shared.keys init|public`."""
    parser = argparse.ArgumentParser(prog="python -m shared.keys", description=(
        "Create the key files of a stack (token signing, service accounts, cookie secret, audit key) or show the public keys. "
        "Private files are written 0600 in a 0700 folder; on a server give each only to the processes that need it "
        "(see README, 'Running on a server')."))
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="create whatever key file is missing (existing ones are kept)")
    p_init.add_argument("--dir", type=Path, help="the folder (default: NRW_SECRETS_DIR, else var/secrets)")
    p_pub = sub.add_parser("public", help="print the public keys (nothing secret)")
    p_pub.add_argument("--dir", type=Path)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.dir:
        settings = Settings(**{**settings.__dict__, "secrets_dir": args.dir, "token_private_key_file": None,
                               "token_public_key_file": None})
    if args.command == "init":
        made = init(settings)
        for path in made:
            print(f"created {path}")
        print(f"{len(made)} key files created in {settings.secrets_path}" if made else
              f"every key file is present in {settings.secrets_path}")
        return 0
    for path in (token_public_path(settings), *(service_public_path(settings, s) for s in SERVICE_ACCOUNTS)):
        try:
            print(f"# {path.name}\n{_read(path, 'a public key').decode().strip()}")
        except KeyMissing as exc:
            print(f"# {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
