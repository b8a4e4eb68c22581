"""The archive format: a tar stream encrypted with age to the organisation's recovery key.

Inside, in this order: the members (BSON or JSON, see infra/backup/__init__.py), the manifest
`manifest.json` with every member's size, SHA-256 and record count, and, in a data archive, last,
`manifest.seal`: an HMAC-SHA256 of the manifest under the stack's backup seal key (a secret kept
in the keys archive, never in a data archive). A reader checks three times: age authenticates
every 64 KiB chunk of the ciphertext and its end (a byte changed or a truncated file fails to
decrypt); every member must match the manifest, none missing, none added; and the seal must be
the one the keys archive's seal key gives. age alone does not say who wrote an archive: anyone
holding the recovery key's public half (it sits on the server) can encrypt to it, so without the
seal someone who could write to the backups folder could have a restore load documents of their
own making. No I/O beyond the file objects given: unit-tested without a database or a broker.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import tarfile
import threading
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import pyrage
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

FORMAT = "nrw-backup"
VERSION = 1
MANIFEST = "manifest.json"
SEAL = "manifest.seal"


class ArchiveError(Exception):
    """The archive cannot be trusted or read: refused, nothing restored (the message says why)."""


def new_recovery_key() -> tuple[str, str]:
    """A new recovery key pair (age X25519): (private identity, public recipient)."""
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def parse_recipient(text: str):
    """An age recipient (age1...) from text; ArchiveError if it is not one."""
    try:
        return pyrage.x25519.Recipient.from_str(text.strip())
    except Exception:  # pyrage raises its own RecipientError, or ValueError
        raise ArchiveError("the recovery key's public half is not an age recipient (age1...)") from None


def read_identity(path: Path):
    """The recovery key's private half from its file (lines starting with # are comments)."""
    try:
        lines = [line.strip() for line in Path(path).read_text().splitlines()]
    except FileNotFoundError:
        raise ArchiveError(f"no recovery key at {path}: restoring needs the organisation's recovery key") from None
    for line in lines:
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                return pyrage.x25519.Identity.from_str(line)
            except Exception:
                break
    raise ArchiveError(f"{path} holds no age recovery key (a line AGE-SECRET-KEY-...)")


SEAL_FINGERPRINT = "# backup seal fingerprint: "


def seal_fingerprint(key: bytes) -> str:
    """What the recovery key file records of the backup seal key: a hash of it (the key stays secret)."""
    return hashlib.sha256(b"nrw-backup seal fingerprint\n" + key).hexdigest()


def recorded_fingerprint(path: Path) -> str | None:
    """The seal fingerprint a recovery key file records (made by `recovery-key`), or None."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(SEAL_FINGERPRINT):
            return line[len(SEAL_FINGERPRINT):].strip()
    return None


def check_fingerprint(identity_path: Path, key: bytes) -> bool:
    """ArchiveError if the recovery key file records another seal key than `key`; False if it
    records none (a file made before fingerprints: the keys archive cannot be checked)."""
    recorded = recorded_fingerprint(identity_path)
    if recorded is None:
        return False
    if not hmac.compare_digest(recorded, seal_fingerprint(key)):
        raise ArchiveError("the keys archive's backup seal key is not the one your recovery key file records: these "
                           "archives were not written by your stack (someone holding the recovery key's public half "
                           "can make a keys archive and data sealed with a key of their own): refused, nothing "
                           "restored")
    return True


def sha256(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def _seal_of(key: bytes, manifest: bytes) -> HMAC:
    mac = HMAC(key, hashes.SHA256())
    mac.update(b"nrw-backup manifest seal\n" + manifest)
    return mac


def seal(key: bytes, manifest: bytes) -> bytes:
    """The seal of a manifest's bytes (hex HMAC-SHA256 under the backup seal key)."""
    return _seal_of(key, manifest).finalize().hex().encode()


def check_seal(key: bytes, manifest: bytes, found: bytes | None) -> None:
    """ArchiveError unless `found` is the seal of `manifest` under `key` (compared in constant time)."""
    if found is None:
        raise ArchiveError("the archive is not sealed with a backup seal key: it was not written by `create` on a "
                           "stack whose keys archive you gave (anyone with the recovery key's public half can make "
                           "an archive): refused, nothing restored")
    try:
        _seal_of(key, manifest).verify(bytes.fromhex(found.decode("ascii", "replace").strip()))
    except (InvalidSignature, ValueError):
        raise ArchiveError("the archive's seal does not match the keys archive's backup seal key: it was written by "
                           "another stack, or changed by someone who does not hold the keys: refused, nothing "
                           "restored") from None


def matching(manifest: dict, name: str, data: bytes) -> None:
    """ArchiveError unless the member `name` is listed in a manifest already checked, with this
    content: a member is applied only once it is known to be the one the sealed manifest names."""
    entry = (manifest.get("members") or {}).get(name)
    if entry is None or (entry.get("sha256"), entry.get("bytes")) != (sha256(data), len(data)):
        raise ArchiveError(f"the member {name} is not the one the checked manifest names (was the archive replaced "
                           "while it was being restored?): the restore stopped there")


class Writer:
    """Members added one by one to a tar stream that a thread encrypts into `out` as it comes."""

    def __init__(self, out: BinaryIO, recipients: list):
        self._read_fd, write_fd = os.pipe()
        self._pipe = os.fdopen(write_fd, "wb")
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._encrypt, args=(out, recipients), daemon=True)
        self._thread.start()
        self._tar = tarfile.open(fileobj=self._pipe, mode="w|", format=tarfile.PAX_FORMAT)
        self.members: dict[str, dict] = {}

    def _encrypt(self, out, recipients) -> None:
        try:
            with os.fdopen(self._read_fd, "rb") as source:
                pyrage.encrypt_io(source, out, recipients)
        except BaseException as exc:  # reported by close()
            self._error = exc

    def add(self, name: str, data: bytes, count: int | None = None) -> None:
        """Add one member; its checksum, size and count go to the manifest."""
        if name in (MANIFEST, SEAL) or name in self.members:
            raise ValueError(f"member {name} added twice")
        self._member(name, data)
        self.members[name] = {"bytes": len(data), "sha256": sha256(data), **({} if count is None else {"count": count})}

    def add_json(self, name: str, value, count: int | None = None) -> None:
        """Add a JSON member."""
        self.add(name, json.dumps(value, indent=1, sort_keys=True).encode(), count)

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        self._tar.addfile(info, io.BytesIO(data))

    def close(self, manifest: dict, seal_key: bytes | None = None) -> dict:
        """Write the manifest, then its seal when a seal key is given, and finish the encryption;
        the manifest written."""
        manifest = {**manifest, "format": FORMAT, "version": VERSION, "members": self.members}
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        self._member(MANIFEST, data)
        if seal_key is not None:
            self._member(SEAL, seal(seal_key, data))
        self._tar.close()
        self._pipe.close()
        self._thread.join()
        if self._error is not None:
            raise ArchiveError(f"encryption failed: {self._error}")
        return manifest

    def abort(self) -> None:
        """Stop after an error: the encryption thread ends, its output is to be thrown away."""
        try:
            self._pipe.close()
        except OSError:
            pass
        self._thread.join()


def read_members(source: BinaryIO, identity) -> Iterator[tuple[str, bytes]]:
    """Decrypt and yield (name, data) of every member in order, the manifest last as (MANIFEST, data).
    ArchiveError if decryption fails (a wrong key, a changed or truncated archive)."""
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def decrypt():
        try:
            with os.fdopen(write_fd, "wb") as sink:
                pyrage.decrypt_io(source, sink, [identity])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=decrypt, daemon=True)
    thread.start()
    plain = os.fdopen(read_fd, "rb")
    try:
        try:
            with tarfile.open(fileobj=plain, mode="r|") as tar:
                for info in tar:
                    # Plain files only: a sparse member (PAX GNU.sparse.*) of a few bytes would be read
                    # as its declared size in zeros (one of 10 KiB made 1 GiB), before any seal is checked.
                    if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or info.issparse():
                        raise ArchiveError(f"unexpected entry {info.name!r} in the archive (not a plain file)")
                    yield info.name, tar.extractfile(info).read()
            while plain.read(1 << 16):  # the tar's padding: decrypted to the end, so the last chunk is authenticated
                pass
        except tarfile.TarError as exc:
            thread.join()
            raise _decrypt_error(errors) or ArchiveError(f"the archive's contents are damaged ({exc})") from None
    finally:
        plain.close()  # a decryption still writing gets a broken pipe and ends
        thread.join()
    failure = _decrypt_error(errors)
    if failure is not None:
        raise failure


def _decrypt_error(errors: list[BaseException]) -> ArchiveError | None:
    if not errors:
        return None
    exc = errors[0]
    if isinstance(exc, BrokenPipeError):
        return None
    if "No matching keys" in str(exc):
        return ArchiveError("this recovery key cannot open the archive (it was encrypted to another key): refused, "
                            "nothing restored")
    return ArchiveError("the archive was changed or damaged after it was written (its encryption does not "
                        f"authenticate: {exc}): refused, nothing restored")


def checked(members: Iterable[tuple[str, bytes]], on_member: Callable[[str, bytes], None] | None = None,
            seal_key: bytes | None = None) -> dict:
    """Pass each member to on_member while checking it against the manifest that closes the stream
    (and, given the seal key, the manifest against its seal); the manifest, or ArchiveError naming
    the first member that does not match."""
    seen: dict[str, dict] = {}
    manifest = manifest_bytes = found_seal = None
    for name, data in members:
        if manifest is not None:
            if name != SEAL or found_seal is not None:
                raise ArchiveError(f"a member ({name}) follows the manifest")
            found_seal = data
            continue
        if name == MANIFEST:
            try:
                manifest, manifest_bytes = json.loads(data), data
            except ValueError:
                raise ArchiveError("the manifest is not JSON") from None
            if not isinstance(manifest, dict):
                raise ArchiveError("the manifest is not a JSON object")
            continue
        if name in seen:
            raise ArchiveError(f"the member {name} appears twice")
        seen[name] = {"bytes": len(data), "sha256": sha256(data)}
        if on_member is not None:
            on_member(name, data)
    if manifest is None:
        raise ArchiveError("the archive has no manifest (cut short?)")
    if seal_key is not None:
        check_seal(seal_key, manifest_bytes, found_seal)
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ArchiveError(f"not an archive of this format (format {manifest.get('format')!r}, "
                           f"version {manifest.get('version')!r})")
    listed = manifest.get("members") or {}
    if not isinstance(listed, dict) or not all(isinstance(e, dict) for e in listed.values()):
        raise ArchiveError("the manifest's list of members is not of this format: refused, nothing restored")
    for name, entry in listed.items():
        if name not in seen:
            raise ArchiveError(f"the member {name} listed in the manifest is missing")
        if (entry.get("sha256"), entry.get("bytes")) != (seen[name]["sha256"], seen[name]["bytes"]):
            raise ArchiveError(f"the member {name} does not match its checksum in the manifest")
    extra = sorted(set(seen) - set(listed))
    if extra:
        raise ArchiveError(f"the member {extra[0]} is not in the manifest")
    return manifest


def split_bson(data: bytes) -> Iterator[bytes]:
    """The documents of a BSON stream (each a length-prefixed document), as bytes."""
    at = 0
    while at < len(data):
        if at + 4 > len(data):
            raise ArchiveError("a BSON member ends inside a document")
        size = int.from_bytes(data[at:at + 4], "little")
        if size < 5 or at + size > len(data):
            raise ArchiveError("a BSON member ends inside a document")
        yield data[at:at + size]
        at += size
