"""`python -m infra.backup`: back up the local stack, keep its keys apart, check and restore."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import signal
import sys
from pathlib import Path

from tqdm import tqdm

from infra.backup.archive import (SEAL_FINGERPRINT, ArchiveError, Writer, check_fingerprint, checked, matching,
                                  new_recovery_key, parse_recipient, read_identity, read_members, seal_fingerprint)
from shared.config import ROOT, Settings
from shared.keys import BACKUP_SEAL_KEY, KeyMissing, backup_seal_key, backup_seal_key_path, parse_hex_key

RECIPIENT_FILE = "backup-recipient.txt"  # the recovery key's public half, beside the data it protects
KEYS_WARNING = """\
This archive holds every key and password of the stack: the data keys that open identifying data,
the token-signing key, the audit key, the database and Kafka passwords.
  - Move it OFF this server now, to a different place than the data archives (another medium,
    another building): whoever holds both the data and the keys archive, and the recovery key,
    can read every person's record. Never store it beside a data archive.
  - It should be held by the organisation's key custodians (the director and one named deputy),
    not by the person who runs the server.
  - Make a new one after every key rotation and every erasure (an old keys archive can still open
    the records of a person erased since), and destroy the older ones.
"""


def _settings() -> Settings:
    return Settings.from_env()


def _recipients(args, settings: Settings) -> list:
    texts = list(args.recipient or [])
    if not texts and os.environ.get("NRW_BACKUP_RECIPIENT"):
        texts = [os.environ["NRW_BACKUP_RECIPIENT"]]
    if not texts:
        path = settings.var_dir / RECIPIENT_FILE
        if not path.exists():
            raise ArchiveError(f"no recovery key to encrypt to: give --recipient age1..., set NRW_BACKUP_RECIPIENT, "
                               f"or make one with `python -m infra.backup recovery-key --out <off the server>` "
                               f"(its public half goes to {path})")
        texts = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [parse_recipient(t) for t in texts]


def _output(path: Path):
    """A new file, 0600, that must not exist yet (the partial name until it is complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return partial, os.fdopen(fd, "wb")


def _finish(partial: Path, path: Path) -> None:
    if path.exists():
        raise ArchiveError(f"{path} exists already")
    os.replace(partial, path)


def _default_name(kind: str) -> str:
    return f"nrw-{kind}-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.age"


def _target(out: str, kind: str) -> Path:
    """A dated file in the folder `out` (one that exists, or a name ending in /), else the file `out`."""
    path = Path(out)
    if path.is_dir() or out.endswith("/"):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path / _default_name(kind)
    return path


def cmd_recovery_key(args) -> int:
    """Make the organisation's recovery key pair."""
    settings = _settings()
    out = args.out.resolve()
    var = settings.var_dir.resolve()
    if out == var or var in out.parents:
        raise ArchiveError(f"the recovery key's private half must not be kept under {var}: the server's own "
                           "disk is what a backup must survive (give --out a path on another medium)")
    has_seal = backup_seal_key_path(settings).exists()  # `shared.keys init` (make run) makes it
    anchor = (f"# The line below names this stack's backup seal key (a hash of it, not the key): a restore\n"
              f"# refuses archives sealed with any other. Copy it with the key, on paper too.\n"
              f"{SEAL_FINGERPRINT}{seal_fingerprint(backup_seal_key(settings))}\n") if has_seal else ""
    private, public = new_recovery_key()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"# Non-Refoulement Watch recovery key, made {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.\n"
                 f"# public key: {public}\n{anchor}{private}\n")
    if not has_seal:
        print(f"recovery-key: WARNING: no backup seal key in {settings.secrets_path} (run `python -m shared.keys "
              "init`), so this file records none and a restore cannot tell your keys archive from a forged one: "
              "make the recovery key again after init", file=sys.stderr)
    public_file = args.public or settings.var_dir / RECIPIENT_FILE
    public_file.parent.mkdir(parents=True, exist_ok=True)
    public_file.write_text(f"# the recovery key's public half: backups are encrypted to it\n{public}\n")
    print(f"recovery key written to {out} (keep it off this server, with the key custodians; print it on paper too)")
    print(f"public half: {public} (in {public_file}; `create` and `keys` encrypt to it)")
    return 0


def totals(manifest: dict) -> tuple[int, int, int]:
    """(documents, records, consumer groups) a data archive's manifest counts; ArchiveError if its
    counts are not of the format (an archive nobody sealed may carry any manifest)."""
    try:
        documents = sum(sum(c.values()) for c in manifest["databases"].values())
        records = sum(r["count"] for t in manifest["topics"].values() for r in t["records"].values())
        return documents, records, len(manifest["groups"])
    except (KeyError, TypeError, AttributeError):
        raise ArchiveError("the archive's manifest does not count databases, topics and groups as this format "
                           "does: refused") from None


def cmd_create(args) -> int:
    """Write a data archive of the running stack."""
    from infra.backup.dump import create

    settings = _settings()
    recipients = _recipients(args, settings)
    target = _target(args.out, "data")
    partial, out = _output(target)
    try:
        with out:
            manifest = create(settings, out, recipients, dict(os.environ), quiet=args.quiet)
        _finish(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    documents, records, _ = totals(manifest)
    print(f"backup: {target}: {len(manifest['databases'])} databases, {documents} documents, "
          f"{len(manifest['topics'])} topics, {records} records, {len(manifest['groups'])} consumer groups")
    print("backup: now run `python -m infra.backup keys` too if keys changed, and copy this file off the server")
    return 0


def key_files(settings: Settings) -> list[tuple[str, Path]]:
    """Every key file of the stack as (member name, path): the secrets folder, the record keys."""
    person_keys = Path(os.environ.get("NRW_PERSON_KEYS_DIR") or settings.var_dir / "person-keys")
    found = []
    for prefix, folder in (("secrets", settings.secrets_path), ("person-keys", person_keys)):
        if folder.is_dir():
            found += [(f"{prefix}/{p.name}", p) for p in sorted(folder.iterdir())
                      if p.is_file() and not p.name.startswith(".")]
    return found


def cmd_keys(args) -> int:
    """Write the keys archive."""
    settings = _settings()
    recipients = _recipients(args, settings)
    files = key_files(settings)
    if not files:
        raise ArchiveError(f"no key files in {settings.secrets_path}")
    target = _target(args.out, "keys")
    partial, out = _output(target)
    try:
        with out:
            writer = Writer(out, recipients)
            try:
                for name, path in tqdm(files, unit="file", desc="keys", disable=args.quiet):
                    writer.add(name, path.read_bytes())
                writer.close({"created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "kind": "keys", "files": len(files)})
            except BaseException:
                writer.abort()
                raise
        _finish(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    print(f"keys: {target}: {len(files)} key files\n")
    print(KEYS_WARNING)
    return 0


class _Progress(io.RawIOBase):
    """A file read through a progress bar (bytes of ciphertext)."""

    def __init__(self, fh, bar):
        self.fh, self.bar = fh, bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.fh.readinto(buffer)
        self.bar.update(n or 0)
        return n


def read_archive(path: Path, identity, on_member=None, desc: str = "checking", quiet: bool = False,
                 seal_key: bytes | None = None) -> dict:
    """Decrypt and check one archive against its manifest (on_member gets each member), and its
    manifest against its seal when a seal key is given; the manifest."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise ArchiveError(f"no archive at {path}") from None
    with fh, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=desc, disable=quiet) as bar:
        return checked(read_members(io.BufferedReader(_Progress(fh, bar)), identity), on_member, seal_key)


SEAL_MEMBER = f"secrets/{BACKUP_SEAL_KEY}"


def read_keys(path: Path, identity, quiet: bool = False) -> tuple[dict, bytes]:
    """Check a keys archive; its manifest and the backup seal key it holds (ArchiveError if none)."""
    found: dict[str, bytes] = {}
    manifest = read_archive(path, identity, lambda name, data: found.update({name: data}) if name == SEAL_MEMBER
                            else None, desc="checking keys", quiet=quiet)
    if manifest.get("kind") != "keys":
        raise ArchiveError(f"{path} is not a keys archive")
    if SEAL_MEMBER not in found:
        raise ArchiveError(f"{path} holds no backup seal key ({BACKUP_SEAL_KEY}): data archives cannot be checked "
                           "against it (make a keys archive again with `python -m infra.backup keys`)")
    try:
        return manifest, parse_hex_key(found[SEAL_MEMBER], f"the keys archive's {BACKUP_SEAL_KEY}")
    except KeyMissing as exc:
        raise ArchiveError(str(exc)) from None


def anchored(identity_path: Path, seal_key: bytes) -> None:
    """The keys archive's seal key against the fingerprint the recovery key file records (off the
    server, so a forger cannot change it); a warning where the file records none."""
    if not check_fingerprint(identity_path, seal_key):
        print(f"backup: WARNING: {identity_path} records no backup seal fingerprint (made before they were), so "
              "nothing says this keys archive is your stack's: make a new recovery key file with `recovery-key` and "
              "keep it with the old one", file=sys.stderr)


def cmd_verify(args) -> int:
    """Check an archive without restoring it (a data archive's seal too, given its keys archive)."""
    identity = read_identity(_identity_path(args))
    seal_key = read_keys(args.keys, identity, quiet=args.quiet)[1] if args.keys else None
    if seal_key is not None:
        anchored(_identity_path(args), seal_key)
    manifest = read_archive(args.archive, identity, quiet=args.quiet, seal_key=seal_key)
    if manifest.get("kind") == "keys":
        print(f"verify: {args.archive}: a keys archive of {len(manifest['members'])} files, made "
              f"{manifest.get('created_at')}: intact")
        return 0
    documents, records, _ = totals(manifest)
    print(f"verify: {args.archive}: made {manifest['created_at']}, {documents} documents in "
          f"{len(manifest['databases'])} databases, {records} records in {len(manifest['topics'])} topics, "
          f"{len(manifest['members'])} members: every checksum matches" +
          (", sealed by the keys archive's seal key" if seal_key else
           " (give --keys to check its seal too: without it, this does not say who wrote the archive)"))
    return 0


def _identity_path(args) -> Path:
    path = args.identity or (Path(os.environ["NRW_RECOVERY_KEY_FILE"]) if os.environ.get("NRW_RECOVERY_KEY_FILE")
                             else None)
    if path is None:
        raise ArchiveError("restoring needs the organisation's recovery key: give --identity <file> "
                           "(or NRW_RECOVERY_KEY_FILE)")
    return path


def _stack_pid(var: Path) -> int | None:
    """The pid of a `make run` stack using this var/ (its pid file names a live process), or None:
    one started with other ports is not found by looking at the configured ports."""
    try:
        pid = int((var / "run" / "stack.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def cmd_restore(args) -> int:
    """Restore a data archive and a keys archive into an empty var/."""
    from infra.backup import load
    from infra.stack import Stack, port_open, wait_until

    settings = _settings()
    identity = read_identity(_identity_path(args))
    busy = [a for a in (settings.kafka_bootstrap, settings.mongo_uri) if port_open(a)]
    if busy:
        raise ArchiveError(f"something is listening at {', '.join(busy)}: stop the stack first (make stop)")
    var = settings.var_dir
    running = _stack_pid(var)
    if running is not None:
        raise ArchiveError(f"a stack (pid {running}, {var / 'run' / 'stack.pid'}) is running on {var}: stop it "
                           "first (make stop; if no stack runs, the pid is another process's: remove the file)")
    occupied = load.occupied(var)
    if occupied and not args.force:
        raise ArchiveError(f"{var} is not empty ({', '.join(f'{k}/: {n} files' for k, n in occupied.items())}): "
                           "refused. Restore into an empty var/, or add --force to DESTROY what it holds")
    # Both archives are read whole and checked before anything is changed: the data archive's
    # manifest against the seal key of the keys archive. When they are read again to be restored,
    # each member is applied only if it is the one the checked manifest names.
    keys_manifest, seal_key = read_keys(args.keys, identity, quiet=args.quiet)
    anchored(_identity_path(args), seal_key)
    manifest = read_archive(args.archive, identity, desc="checking data", quiet=args.quiet, seal_key=seal_key)
    if manifest.get("kind") == "keys":
        raise ArchiveError(f"{args.archive} is a keys archive, not a data archive")
    documents, records, groups = totals(manifest)
    odd = load.unexpected_keys(keys_manifest)
    if odd:
        raise ArchiveError(f"the keys archive holds {len(odd)} members that are not key files (first: {odd[0]!r}): "
                           "refused, nothing changed")
    odd = load.unexpected_members(settings, manifest)
    if odd:
        raise ArchiveError(f"the archive holds {len(odd)} members this stack does not restore (first: {odd[0]!r}: "
                           f"another prefix than NRW_DB_PREFIX={settings.db_prefix!r}, or not the system's): refused")
    if occupied:
        print(f"restore: --force: destroying {', '.join(f'{var / k} ({n} files)' for k, n in occupied.items())}")
        load.wipe(var)
    secrets = settings.secrets_path
    person_keys = Path(os.environ.get("NRW_PERSON_KEYS_DIR") or var / "person-keys")
    written = [0]

    def restore_key(name, data):
        matching(keys_manifest, name, data)
        written[0] += load.restore_keys([(name, data)], secrets, person_keys)

    def restore_member(name, data):
        matching(manifest, name, data)
        loader(name, data)

    try:
        read_archive(args.keys, identity, restore_key, desc="keys", quiet=args.quiet)
        print(f"restore: {written[0]} key files back in {secrets} and {person_keys}")
        recipient = var / RECIPIENT_FILE  # the next backups are encrypted to the same recovery key
        recipient.write_text(f"# the recovery key's public half: backups are encrypted to it\n{identity.to_public()}\n")
        stack = Stack()
        # The stack's pid file names this process while its Kafka and FerretDB serve the restore:
        # `make run` then refuses to start the consumers and relays against a half-restored var/.
        pidfile = var / "run" / "stack.pid"
        pidfile.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pidfile.write_text(str(os.getpid()))
        # `make stop` sends SIGTERM to that pid: stop Kafka and FerretDB and say so, not die leaving them running
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            stack.start("kafka", "ferretdb")
            wait_until(lambda: port_open(settings.mongo_uri), 120, "FerretDB")
            wait_until(lambda: port_open(settings.kafka_bootstrap), 120, "Kafka")
            loader = load.Loader(settings, manifest)
            try:
                read_archive(args.archive, identity, restore_member, desc="restoring", quiet=args.quiet,
                             seal_key=seal_key)
                loader.check()
            finally:
                loader.close()
        finally:
            stack.stop()
            pidfile.unlink(missing_ok=True)
            signal.signal(signal.SIGTERM, previous)
    except BaseException:
        print(f"restore: did NOT finish; {var} holds part of the backup: mend the cause, then restore again "
              "with --force", file=sys.stderr)
        raise
    print(f"restore: {documents} documents, {records} records and {groups} consumer groups' "
          f"offsets from the backup of {manifest['created_at']} are back. `make run` starts the stack.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m infra.backup", description=(
        "Back up the local stack (databases, topics, consumer offsets, settings) into an archive encrypted to the "
        "organisation's recovery key; keep its keys in a separate archive; check an archive; restore both into an "
        "empty var/. README: 'Disaster recovery'."))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("recovery-key", help="make the recovery key pair (private half off the server)")
    p.add_argument("--out", type=Path, required=True, help="where the private half goes (not under var/)")
    p.add_argument("--public", type=Path, help=f"where the public half goes (default var/{RECIPIENT_FILE})")
    p.add_argument("--quiet", action="store_true", help="(nothing to show: for symmetry with the others)")
    p.set_defaults(func=cmd_recovery_key)
    for name, func, what in (("create", cmd_create, "a data archive of the running stack"),
                             ("keys", cmd_keys, "a keys archive (every key and password), kept apart")):
        p = sub.add_parser(name, help=f"write {what}")
        p.add_argument("--out", default=f"{ROOT / 'backups'}/",
                       help="a folder (a dated name is made in it) or a file name (default backups/)")
        p.add_argument("--recipient", action="append",
                       help=f"an age public key (age1...) to encrypt to; default NRW_BACKUP_RECIPIENT or var/{RECIPIENT_FILE}")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=func)
    p = sub.add_parser("verify", help="decrypt an archive and check it against its manifest (changes nothing)")
    p.add_argument("archive", type=Path)
    p.add_argument("--keys", type=Path, help="the keys archive, to check a data archive's seal with it")
    p.add_argument("--identity", type=Path, help="the recovery key file (or NRW_RECOVERY_KEY_FILE)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("restore", help="restore a data archive and a keys archive into an empty var/")
    p.add_argument("archive", type=Path, help="the data archive")
    p.add_argument("--keys", type=Path, required=True, help="the keys archive")
    p.add_argument("--identity", type=Path, help="the recovery key file (or NRW_RECOVERY_KEY_FILE)")
    p.add_argument("--force", action="store_true", help="DESTROY the databases, topics and keys in var/ first")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_restore)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ArchiveError, KeyMissing) as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
