"""Each record about a person is sealed under a data key of its own, kept outside the database, so
that erasing the person can make every copy of their records undecryptable, backups included.

A report's identifying fields (and the free-text reason of a consent a caseworker recorded) are
sealed with AES-256-GCM under a 256-bit key made for that record alone. The key lives in a file
`<record id>.key` in NRW_PERSON_KEYS_DIR (default: NRW_VAR/person-keys, a folder written at run
time, so not among the read-only key files of NRW_SECRETS_DIR; 0700, each file 0600, written
once, atomically; in compose a volume of intake-web's alone), wrapped (AES-GCM, bound to the
record id) by the master key of the keyring (keys.json or NRW_DATA_KEYS, shared/crypto.py). The
database holds only the ciphertext: {"v": 2, "nonce", "ct"}, bound to the record id.

Erasing a record deletes its key file (after overwriting it). A copy of the database taken before
the erasure then holds a ciphertext whose key no longer exists anywhere the server keeps keys: the
master key that survives never wrapped the ciphertext itself, only the deleted file. What this
cannot reach: a copy of the key folder taken before the erasure (key backups), and the disk blocks
of the deleted file where the file system or the device keeps old blocks (journals, SSD wear
levelling, snapshots). README: "Erasure".

No process keeps an unwrapped key in memory past the call that needed it: another worker that
erased a record must not leave this one able to open it.

Older records (before this scheme) were sealed by the master key directly ({"kid", "nonce",
"ct"}); `decrypt` still reads them and `migrate` re-seals them each under a key of its own.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tqdm import tqdm

from shared.config import Settings
from shared.crypto import Keyring
from shared.keys import private_dir, write_new

SCHEME = 2
log = logging.getLogger(__name__)
FOLDER = "person-keys"
_RECORD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


class Erased(Exception):
    """The record's data key was destroyed: its sealed fields can never be read again."""


def is_record_sealed(blob: dict | None) -> bool:
    """True if a sealed blob is under a record's own key (False: under a master key, or none)."""
    return bool(blob) and blob.get("v") == SCHEME


class IntakeKeyring(Keyring):
    """Intake's keyring: `encrypt` and `decrypt` seal each record under a key of its own (made,
    rewrapped and destroyed here); the master keys and the blind index are the Keyring's.
    `encrypt_lasting` seals under the master key directly what must outlive an erasure (the
    erasure's own reason)."""

    def __init__(self, master: Keyring, folder: Path):
        super().__init__(master.keys, master.current, master.blind_index_key, master._settings)
        self.folder = folder

    @classmethod
    def from_settings(cls, settings: Settings) -> "IntakeKeyring":
        """The master keys of these settings and the folder of record keys (NRW_PERSON_KEYS_DIR,
        else NRW_VAR/person-keys)."""
        folder = os.environ.get("NRW_PERSON_KEYS_DIR")
        return cls(Keyring.from_settings(settings), Path(folder) if folder else settings.var_dir / FOLDER)

    def encrypt_lasting(self, fields: dict, bound_to: str) -> dict:
        """Seal under the current master key (survives any erasure; rotation re-seals it)."""
        return super().encrypt(fields, bound_to)

    def decrypt_lasting(self, blob: dict, bound_to: str) -> dict:
        """Open what `encrypt_lasting` sealed."""
        return super().decrypt(blob, bound_to)

    # --- files --------------------------------------------------------------------------------

    def path(self, record_id: str) -> Path:
        """The key file of a record (ValueError for an id that is not a plain identifier)."""
        if not _RECORD_ID.match(record_id or ""):
            raise ValueError("a record id of letters, digits, '-' and '_' is needed for a key file")
        return self.folder / f"{record_id}.key"

    @contextlib.contextmanager
    def _locked(self):
        """Rewrapping and destroying exclude each other (across processes): a rewrap must never
        write back a key that was destroyed while it worked."""
        private_dir(self.folder)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _wrap(self, key: bytes, record_id: str) -> bytes:
        wrapped = self.encrypt_lasting({"key": base64.b64encode(key).decode()}, bound_to=f"record-key:{record_id}")
        return json.dumps(wrapped).encode()

    def _load(self, record_id: str) -> tuple[bytes, str]:
        """(the record's key, the master key id it is wrapped under); Erased if there is none."""
        path = self.path(record_id)
        for _ in range(50):
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                raise Erased(record_id) from None
            if raw:
                break
            time.sleep(0.02)  # another process has just created it and is writing it
        else:
            raise Erased(record_id)
        wrapped = json.loads(raw)
        opened = self.decrypt_lasting(wrapped, bound_to=f"record-key:{record_id}")
        return base64.b64decode(opened["key"]), wrapped["kid"]

    def _new_key(self, record_id: str) -> bytes:
        """A new key for a record, stored before it is used (the record's own: if the record was
        being sealed by another process at the same moment, theirs is taken)."""
        key = AESGCM.generate_key(bit_length=256)
        if write_new(self.path(record_id), self._wrap(key, record_id)):
            self._sync_folder()  # the file's name is durable before any ciphertext depends on it
            return key
        return self._load(record_id)[0]

    def has_key(self, record_id: str) -> bool:
        """True if the record's key file exists."""
        return self.path(record_id).exists()

    # --- sealing --------------------------------------------------------------------------------

    def encrypt(self, fields: dict, bound_to: str) -> dict:
        """Encrypt a dict of identifying fields under the record's own key (made now if it has
        none); the ciphertext only decrypts for the same record id."""
        record_id = bound_to
        try:
            key = self._load(record_id)[0]
        except Erased:
            key = self._new_key(record_id)
        nonce = secrets.token_bytes(12)
        plaintext = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        sealed = AESGCM(key).encrypt(nonce, plaintext, record_id.encode("utf-8"))
        return {"v": SCHEME, "nonce": base64.b64encode(nonce).decode(), "ct": base64.b64encode(sealed).decode()}

    def decrypt(self, blob: dict | None, bound_to: str) -> dict:
        """Decrypt what `encrypt` sealed (or an older record sealed by a master key). Erased if the
        record's key was destroyed or its ciphertext overwritten; raises if it was tampered with."""
        record_id = bound_to
        if not blob:
            raise Erased(record_id)
        if not is_record_sealed(blob):
            return self.decrypt_lasting(blob, bound_to=record_id)
        key = self._load(record_id)[0]
        plaintext = AESGCM(key).decrypt(base64.b64decode(blob["nonce"]), base64.b64decode(blob["ct"]),
                                        record_id.encode("utf-8"))
        return json.loads(plaintext)

    # --- erasure and rotation -------------------------------------------------------------------

    def destroy(self, record_id: str) -> bool:
        """Overwrite and delete a record's key file; False if it had none (idempotent)."""
        path = self.path(record_id)
        with self._locked():
            try:
                with open(path, "r+b") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    fh.write(b"\0" * size)
                    fh.flush()
                    os.fsync(fh.fileno())
            except FileNotFoundError:
                return False
            path.unlink(missing_ok=True)
            self._sync_folder()
        return True

    def rewrap(self, progress: bool = False) -> int:
        """Wrap every record key that is under an older master key with the current one (the
        records themselves are not touched); how many were rewrapped."""
        if not self.folder.exists():
            return 0
        done = 0
        names = sorted(p.name for p in self.folder.glob("*.key"))
        for name in tqdm(names, desc=f"rewrapping under {self.current}", unit="key", disable=not progress):
            record_id = name[:-len(".key")]
            with self._locked():
                try:
                    key, kid = self._load(record_id)
                except Erased:
                    continue  # destroyed since the listing
                if kid == self.current:
                    continue
                tmp = self.folder / f".{name}.{os.getpid()}.rewrap"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(self._wrap(key, record_id))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path(record_id))
                self._sync_folder()
                done += 1
        return done


def migrate(collection, field: str, keyring: IntakeKeyring, progress: bool = False) -> int:
    """Re-seal every document of `collection` whose `field` is still sealed by a master key
    (before per-record keys) under a key of its own; how many were re-sealed. Safe to run in
    several processes at once: each write only replaces the exact ciphertext it read."""
    stale = [doc["_id"] for doc in collection.find({f"{field}.kid": {"$exists": True}}, {"_id": 1})]
    done = 0
    for record_id in tqdm(stale, desc=f"{collection.name}: a key per record", unit="record", disable=not progress):
        doc = collection.find_one({"_id": record_id}, {field: 1})
        blob = (doc or {}).get(field)
        if not blob or is_record_sealed(blob):
            continue
        sealed = keyring.encrypt(keyring.decrypt_lasting(blob, bound_to=record_id), bound_to=record_id)
        result = collection.update_one({"_id": record_id, f"{field}.nonce": blob["nonce"]}, {"$set": {field: sealed}})
        done += result.modified_count
    return done


SEALED_FIELDS = (("reports", "sealed"), ("consent_commands", "reason_sealed"))  # what has a key per record


def migrate_all(db, keyring: IntakeKeyring, progress: bool = False) -> int:
    """Give every record of intake's database still sealed by a master key a key of its own."""
    return sum(migrate(db[name], field, keyring, progress=progress) for name, field in SEALED_FIELDS)


def migrate_in_background(db, keyring: IntakeKeyring) -> threading.Thread:
    """Run `migrate_all` in a thread of this process (on start: the first request need not wait;
    several processes doing it at once is safe). Failures are logged, never the data."""

    def run() -> None:
        try:
            done = migrate_all(db, keyring)
        except Exception as exc:  # the next start tries again; older records stay readable meanwhile
            log.warning("per-record keys: migration stopped (%s); the next start resumes it", type(exc).__name__)
            return
        if done:
            log.info("per-record keys: %d older record(s) re-sealed each under a key of its own", done)

    thread = threading.Thread(target=run, name="intake-record-keys-migration", daemon=True)
    thread.start()
    return thread
