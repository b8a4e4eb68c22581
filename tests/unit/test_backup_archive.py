"""The backup archive format (infra/backup/archive.py): members come back as written, checked
against the manifest; a changed byte anywhere, a truncated file, another key, a member added,
missing or altered under a valid encryption are each refused with a clear ArchiveError."""

from __future__ import annotations

import io
import json
import tarfile

import bson
import pytest

from infra.backup import archive
from infra.backup.archive import ArchiveError, Writer, checked, new_recovery_key, read_members
from infra.backup.dump import settings_snapshot
from infra.backup.load import occupied


def _keys():
    private, public = new_recovery_key()
    return (archive.pyrage.x25519.Identity.from_str(private), archive.parse_recipient(public))


def _archive(recipient, members=None) -> bytes:
    out = io.BytesIO()
    writer = Writer(out, [recipient])
    for name, data in (members or [("db/nrw_case/cases.bson", bson.encode({"_id": "c1"}) + bson.encode({"_id": "c2"})),
                                   ("groups.json", b'{"case": {"intake.events": {"0": 3}}}')]):
        writer.add(name, data, count=data.count(b"_id") or None)
    writer.close({"created_at": "2026-11-29T00:00:00+00:00"})
    return out.getvalue()


def _read(data: bytes, identity, on_member=None) -> dict:
    return checked(read_members(io.BytesIO(data), identity), on_member)


def test_members_come_back_in_order_with_the_manifest():
    identity, recipient = _keys()
    seen = []
    manifest = _read(_archive(recipient), identity, lambda name, data: seen.append((name, data)))
    assert [name for name, _ in seen] == ["db/nrw_case/cases.bson", "groups.json"]
    assert [bson.decode(d)["_id"] for d in archive.split_bson(seen[0][1])] == ["c1", "c2"]
    assert manifest["format"] == "nrw-backup" and manifest["members"]["db/nrw_case/cases.bson"]["count"] == 2
    assert manifest["members"]["groups.json"]["sha256"] == archive.sha256(seen[1][1])


@pytest.mark.parametrize("where", [0, 40, 150, -300, -1])
def test_one_changed_byte_anywhere_is_refused(where):
    identity, recipient = _keys()
    data = bytearray(_archive(recipient))
    data[where] ^= 0x01
    with pytest.raises(ArchiveError):
        _read(bytes(data), identity)


def test_a_changed_payload_byte_says_the_archive_was_changed():
    identity, recipient = _keys()
    data = bytearray(_archive(recipient))
    data[len(data) // 2] ^= 0x80
    with pytest.raises(ArchiveError, match="changed or damaged"):
        _read(bytes(data), identity)


def test_a_truncated_archive_is_refused():
    identity, recipient = _keys()
    data = _archive(recipient)
    with pytest.raises(ArchiveError):
        _read(data[:-20], identity)


def test_another_key_cannot_open_it():
    _, recipient = _keys()
    other, _ = _keys()
    with pytest.raises(ArchiveError, match="cannot open the archive"):
        _read(_archive(recipient), other)


def _reencrypted(identity, recipient, edit) -> bytes:
    """The archive's plain tar, edited (as someone holding the public key could), encrypted again."""
    return _encrypted(edit(_plain_members(_archive(recipient), identity)), recipient)


def _plain_members(data: bytes, identity) -> list[tuple[str, bytes]]:
    """An archive's members as its tar holds them, decrypted without any check."""
    plain = io.BytesIO()
    archive.pyrage.decrypt_io(io.BytesIO(data), plain, [identity])
    with tarfile.open(fileobj=io.BytesIO(plain.getvalue()), mode="r|") as tar:
        return [(info.name, tar.extractfile(info).read()) for info in tar]


def _encrypted(members, recipient) -> bytes:
    """Members written as a tar and encrypted to the recipient, as anyone holding it could."""
    tar_out = io.BytesIO()
    with tarfile.open(fileobj=tar_out, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    archive.pyrage.encrypt_io(io.BytesIO(tar_out.getvalue()), out, [recipient])
    return out.getvalue()


@pytest.mark.parametrize("edit, message", [
    (lambda m: [(n, d + b"x" if n == "groups.json" else d) for n, d in m], "does not match its checksum"),
    (lambda m: [(n, d) for n, d in m if n != "groups.json"], "is missing"),
    (lambda m: m[:-1] + [("extra.json", b"{}")] + m[-1:], "is not in the manifest"),
    (lambda m: m[:-1], "has no manifest"),
    (lambda m: m + [("late.json", b"{}")], "follows the manifest"),
    (lambda m: m[:-1] + [(m[-1][0], json.dumps({**json.loads(m[-1][1]), "version": 99}).encode())], "not an archive"),
])
def test_the_manifest_catches_what_the_encryption_cannot(edit, message):
    identity, recipient = _keys()
    with pytest.raises(ArchiveError, match=message):
        _read(_reencrypted(identity, recipient, edit), identity)


def test_a_member_cannot_be_written_twice_or_as_the_manifest():
    _, recipient = _keys()
    writer = Writer(io.BytesIO(), [recipient])
    writer.add("a", b"1")
    with pytest.raises(ValueError):
        writer.add("a", b"2")
    with pytest.raises(ValueError):
        writer.add(archive.MANIFEST, b"{}")
    writer.abort()


def test_a_bson_member_cut_inside_a_document_is_refused():
    data = bson.encode({"_id": "a"}) + bson.encode({"_id": "b"})
    with pytest.raises(ArchiveError):
        list(archive.split_bson(data[:-3]))


def test_recovery_key_files_and_recipients(tmp_path):
    private, public = new_recovery_key()
    path = tmp_path / "recovery.key"
    path.write_text(f"# a comment\n{private}\n")
    assert str(archive.read_identity(path).to_public()) == public
    with pytest.raises(ArchiveError, match="no recovery key at"):
        archive.read_identity(tmp_path / "missing.key")
    (tmp_path / "bad.key").write_text("not a key\n")
    with pytest.raises(ArchiveError, match="holds no age recovery key"):
        archive.read_identity(tmp_path / "bad.key")
    with pytest.raises(ArchiveError, match="not an age recipient"):
        archive.parse_recipient("age1nonsense")


def test_the_settings_kept_are_not_secret():
    kept = settings_snapshot({"NRW_KAFKA_BOOTSTRAP": "k:9092", "NRW_ADMIN_PASSWORD": "p", "NRW_BLIND_INDEX_KEY": "k",
                              "NRW_KAFKA_SASL_PASSWORD_FILE": "/x", "NRW_DATA_KEYS": "{}",
                              "NRW_MONGO_URI": "mongodb://case:secret@db:27017/?authSource=admin", "HOME": "/root"})
    assert kept == {"NRW_KAFKA_BOOTSTRAP": "k:9092", "NRW_MONGO_URI": "mongodb://db:27017/"}
    # pymongo takes a '#' in a password unescaped; urlsplit reads it as the start of a fragment
    assert settings_snapshot({"NRW_MONGO_URI": "mongodb://case:p#ss@db:27017/"}) == {}


def test_a_var_with_only_logs_is_empty_for_a_restore(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "kafka.log").write_text("x")
    (tmp_path / "secrets").mkdir()
    assert occupied(tmp_path) == {}
    (tmp_path / "secrets" / "audit.key").write_text("x")
    assert occupied(tmp_path) == {"secrets": 1}


def test_a_committed_offset_follows_its_record_when_offsets_change():
    from infra.backup.load import new_offset

    assert [new_offset([0, 1, 2, 3], c) for c in (0, 2, 4)] == [0, 2, 4]  # from 0, nothing left out: the same
    assert [new_offset([5, 6, 9], c) for c in (5, 6, 7, 9, 10)] == [0, 1, 2, 2, 3]  # retention, records left out


def test_a_cut_keeps_what_was_published_before_the_copy_and_what_the_copy_holds():
    from infra.backup.dump import Cut

    cut = Cut({0: 10})
    cut.event_ids.add("in-copy")
    assert cut.keeps(0, 9, b'{"event_id": "gone-since"}')  # before the copy began: kept
    assert cut.keeps(0, 10, b'{"event_id": "in-copy"}')
    assert not cut.keeps(0, 11, b'{"event_id": "after-the-copy"}')
    assert cut.keeps(0, 12, b"not json")  # a poison record stays as the topic holds it
    assert not cut.keeps(1, 0, b'{"event_id": "x"}')  # a partition the copy did not see end: from 0


SEAL_KEY = bytes(range(32))


def _sealed(recipient, key=SEAL_KEY) -> bytes:
    out = io.BytesIO()
    writer = Writer(out, [recipient])
    writer.add("groups.json", b"{}")
    writer.add("db/nrw_case/cases.bson", bson.encode({"_id": "c1"}))
    writer.close({"created_at": "2026-11-29T00:00:00+00:00"}, seal_key=key)
    return out.getvalue()


def test_a_sealed_archive_reads_with_its_seal_key_and_not_with_another():
    identity, recipient = _keys()
    data = _sealed(recipient)
    assert _read(data, identity)["members"]["groups.json"]["bytes"] == 2  # without a key: the seal is not asked for
    assert checked(read_members(io.BytesIO(data), identity), seal_key=SEAL_KEY)["format"] == "nrw-backup"
    with pytest.raises(ArchiveError, match="seal does not match"):
        checked(read_members(io.BytesIO(data), identity), seal_key=bytes(32))


def test_someone_with_only_the_public_half_cannot_make_an_archive_that_restores():
    """The attacker holds the recovery key's public half (it sits on the server) and writes an archive
    of their own, with a manifest that lists it right: without the seal key it is refused."""
    identity, recipient = _keys()
    forged = io.BytesIO()
    writer = Writer(forged, [recipient])
    writer.add("db/nrw_identity/users.bson", bson.encode({"_id": "planted-admin"}))
    writer.close({"created_at": "2026-11-29T00:00:00+00:00"})
    with pytest.raises(ArchiveError, match="not sealed"):
        checked(read_members(io.BytesIO(forged.getvalue()), identity), seal_key=SEAL_KEY)

    def swap(members):  # a real sealed archive, one member changed and its manifest entry with it
        manifest = json.loads(dict(members)[archive.MANIFEST])
        out = []
        for name, data in members:
            if name == "groups.json":
                data = b'{"case": {}}'
                manifest["members"][name] = {"bytes": len(data), "sha256": archive.sha256(data)}
            elif name == archive.MANIFEST:
                data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            out.append((name, data))
        return out

    again = _encrypted(swap(_plain_members(_sealed(recipient), identity)), recipient)
    assert _read(again, identity)  # every checksum matches: only the seal tells
    with pytest.raises(ArchiveError, match="seal does not match"):
        checked(read_members(io.BytesIO(again), identity), seal_key=SEAL_KEY)


def test_the_seal_cannot_be_written_as_a_member_nor_come_twice():
    identity, recipient = _keys()
    with pytest.raises(ValueError):
        Writer(io.BytesIO(), [recipient]).add(archive.SEAL, b"00")
    twice = _reencrypted(identity, recipient, lambda m: m + [(archive.SEAL, b"00"), (archive.SEAL, b"00")])
    with pytest.raises(ArchiveError, match="follows the manifest"):
        _read(twice, identity)


def test_a_member_is_applied_only_if_the_checked_manifest_names_it_with_that_content():
    manifest = {"members": {"groups.json": {"bytes": 2, "sha256": archive.sha256(b"{}")}}}
    archive.matching(manifest, "groups.json", b"{}")
    for name, data in (("groups.json", b"[]"), ("settings.json", b"{}")):
        with pytest.raises(ArchiveError, match="not the one the checked manifest names"):
            archive.matching(manifest, name, data)


def test_a_restore_takes_only_the_systems_databases_and_topics():
    from infra.backup.load import unexpected_members
    from shared.config import Settings

    settings = Settings.from_env()
    fine = ["db/nrw_case/cases.bson", "db/nrw_identity/users.indexes.json", "topics/case.events/0.bson",
            "topics/intake.events.dlq/2.bson", "groups.json", "settings.json"]
    odd = ["db/admin/system.users.bson", "db/nrw_case/system.users.bson", "db/other_case/cases.bson",
           "db/nrw_case/x$y.bson", "topics/__consumer_offsets/0.bson", "topics/case.events/x.bson",
           "topics/case.events/-1.bson", "db/nrw_case/a/b.bson", "secrets/audit.key", "db/nrw_case/.bson"]
    assert unexpected_members(settings, {"members": dict.fromkeys(fine + odd, {})}) == sorted(odd)


def test_keys_init_makes_the_backup_seal_key(tmp_path, monkeypatch):
    import os
    import stat

    from shared import keys
    from shared.config import Settings

    monkeypatch.setenv("NRW_SECRETS_DIR", str(tmp_path / "secrets"))
    settings = Settings.from_env()
    with pytest.raises(keys.KeyMissing):
        keys.backup_seal_key(settings)
    keys.init(settings)
    assert len(keys.backup_seal_key(settings)) == 32
    assert stat.S_IMODE(os.stat(keys.backup_seal_key_path(settings)).st_mode) == 0o600


def _encrypted_tar(recipient, infos: list) -> bytes:
    """A tar of (TarInfo, data) made by hand (as anyone with the public half could), encrypted."""
    tar_out = io.BytesIO()
    with tarfile.open(fileobj=tar_out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in infos:
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    archive.pyrage.encrypt_io(io.BytesIO(tar_out.getvalue()), out, [recipient])
    return out.getvalue()


def test_a_sparse_member_is_refused_before_it_is_read_out_to_its_declared_size():
    """A PAX sparse member of a few hundred bytes declares any size it likes; reading it yields that
    many zero bytes, all in memory, before the manifest or its seal is looked at (1 TiB declared:
    the restore or verify process is killed for memory). Only plain files are members."""
    identity, recipient = _keys()
    declared = 64 << 20  # enough to tell, small enough not to hurt when the check is missing
    sparse_map = b"1\n0\n1\n"  # PAX 1.0 sparse map: one region, at offset 0, 1 byte long
    info = tarfile.TarInfo("db/nrw_case/cases.bson")
    info.size = 512 + 1
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": info.name,
                        "GNU.sparse.realsize": str(declared)}
    data = _encrypted_tar(recipient, [(info, sparse_map.ljust(512, b"\0") + b"x")])
    seen = []
    with pytest.raises(ArchiveError, match="not a plain file"):
        _read(data, identity, lambda name, body: seen.append(len(body)))
    assert seen == []


@pytest.mark.parametrize("members", [["groups.json"], {"groups.json": "0" * 64}, {"groups.json": 2}, "x"])
def test_a_manifest_whose_member_list_has_the_wrong_shape_is_refused_clearly(members):
    """An archive nobody sealed (verify without --keys; the keys archive, which has no seal) may carry
    any manifest: a list of the wrong type is an ArchiveError, not a traceback."""
    identity, recipient = _keys()
    manifest = json.dumps({"format": archive.FORMAT, "version": archive.VERSION, "members": members}).encode()
    info = tarfile.TarInfo(archive.MANIFEST)
    info.size = len(manifest)
    with pytest.raises(ArchiveError, match="list of members is not of this format"):
        _read(_encrypted_tar(recipient, [(info, manifest)]), identity)


def _free_address() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _commands_env(tmp_path, monkeypatch, private):
    """A var/ of its own, nothing listening where its Kafka and database would be, a recovery key file."""
    for name in ("NRW_SECRETS_DIR", "NRW_PERSON_KEYS_DIR", "NRW_MONGO_URI_FILE", "NRW_RECOVERY_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NRW_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("NRW_KAFKA_BOOTSTRAP", _free_address())
    monkeypatch.setenv("NRW_MONGO_URI", f"mongodb://{_free_address()}/")
    key = tmp_path / "recovery.key"
    key.write_text(f"{private}\n")
    return key


def _write(path, recipient, members, manifest, seal_key=None):
    with open(path, "wb") as out:
        writer = Writer(out, [recipient])
        for name, data in members:
            writer.add(name, data)
        writer.close(manifest, seal_key=seal_key)


def test_verify_refuses_an_unsealed_manifest_without_counts_with_a_message(tmp_path, monkeypatch, capsys):
    from infra.backup.__main__ import main

    private, public = new_recovery_key()
    key = _commands_env(tmp_path, monkeypatch, private)
    _write(tmp_path / "data.age", archive.parse_recipient(public), [("groups.json", b"{}")],
           {"created_at": "2026-11-29T00:00:00+00:00", "databases": ["not", "counts"]})
    assert main(["verify", str(tmp_path / "data.age"), "--identity", str(key), "--quiet"]) == 2
    assert "does not count databases" in capsys.readouterr().err


def test_a_forced_restore_refuses_a_keys_archive_with_odd_members_before_it_wipes_anything(tmp_path, monkeypatch,
                                                                                             capsys):
    """--force destroys var/'s data: only once both archives are known to restore. A keys archive
    member that restore_keys refuses (here person-keys/a/b) used to be found after the wipe."""
    from infra.backup.__main__ import main

    private, public = new_recovery_key()
    key = _commands_env(tmp_path, monkeypatch, private)
    recipient = archive.parse_recipient(public)
    _write(tmp_path / "keys.age", recipient, [("secrets/backup-seal.key", SEAL_KEY.hex().encode()),
                                              ("person-keys/a/b", b"k")],
           {"created_at": "2026-11-29T00:00:00+00:00", "kind": "keys", "files": 2})
    _write(tmp_path / "data.age", recipient, [("groups.json", b"{}")],
           {"created_at": "2026-11-29T00:00:00+00:00", "databases": {}, "topics": {}, "groups": {}},
           seal_key=SEAL_KEY)
    live = tmp_path / "var" / "secrets" / "audit.key"
    live.parent.mkdir(parents=True)
    live.write_text("the live stack's key")
    assert main(["restore", str(tmp_path / "data.age"), "--keys", str(tmp_path / "keys.age"),
                 "--identity", str(key), "--force", "--quiet"]) == 2
    assert "not key files" in capsys.readouterr().err
    assert live.read_text() == "the live stack's key"


def test_a_restore_refuses_a_var_whose_stack_is_running_on_other_ports(tmp_path, monkeypatch, capsys):
    """The port check looks where this shell's settings say Kafka and the database are; a stack
    started with other ports (or other settings) still holds var/: its pid file says so, and even
    --force refuses before anything is read or wiped."""
    import os

    from infra.backup.__main__ import main

    private, _ = new_recovery_key()
    key = _commands_env(tmp_path, monkeypatch, private)
    (tmp_path / "var" / "run").mkdir(parents=True)
    (tmp_path / "var" / "run" / "stack.pid").write_text(str(os.getpid()))  # a live process
    (tmp_path / "var" / "secrets").mkdir()
    (tmp_path / "var" / "secrets" / "audit.key").write_text("live")
    assert main(["restore", str(tmp_path / "missing-data.age"), "--keys", str(tmp_path / "missing-keys.age"),
                 "--identity", str(key), "--force", "--quiet"]) == 2
    assert "is running on" in capsys.readouterr().err
    assert (tmp_path / "var" / "secrets" / "audit.key").read_text() == "live"


def test_while_a_restore_runs_its_pid_file_keeps_make_run_away_and_is_gone_after(tmp_path, monkeypatch):
    """`make run` refuses a var/ whose pid file names a live process: the restore writes its own pid
    there while its Kafka and FerretDB are up (consumers and relays started against a half-restored
    var/ would publish and commit into it), and removes it when it stops them."""
    import os

    import infra.stack
    from infra.backup.__main__ import main

    private, public = new_recovery_key()
    key = _commands_env(tmp_path, monkeypatch, private)
    recipient = archive.parse_recipient(public)
    _write(tmp_path / "keys.age", recipient, [("secrets/backup-seal.key", SEAL_KEY.hex().encode())],
           {"created_at": "2026-11-29T00:00:00+00:00", "kind": "keys", "files": 1})
    _write(tmp_path / "data.age", recipient, [("groups.json", b"{}")],
           {"created_at": "2026-11-29T00:00:00+00:00", "databases": {}, "topics": {}, "groups": {}},
           seal_key=SEAL_KEY)
    pidfile = tmp_path / "var" / "run" / "stack.pid"
    seen = []

    class NoStack:  # stands for Kafka and FerretDB: what the pid file says while they would run
        def start(self, *names):
            seen.append(pidfile.read_text() if pidfile.exists() else None)
            raise RuntimeError("no real processes in a unit test")

        def stop(self):
            pass

    monkeypatch.setattr(infra.stack, "Stack", NoStack)
    args = ["restore", str(tmp_path / "data.age"), "--keys", str(tmp_path / "keys.age"), "--identity", str(key),
            "--quiet"]
    with pytest.raises(RuntimeError):
        main(args)
    assert seen == [str(os.getpid())]
    assert not pidfile.exists()

    import signal

    stopped = []

    class StoppedByMakeStop(NoStack):  # `make stop` sends SIGTERM to the pid in the file meanwhile
        def start(self, *names):
            signal.raise_signal(signal.SIGTERM)

        def stop(self):
            stopped.append(True)

    monkeypatch.setattr(infra.stack, "Stack", StoppedByMakeStop)
    before = signal.getsignal(signal.SIGTERM)
    for name in ("secrets", "person-keys"):  # the first attempt restored the keys: start again
        import shutil
        shutil.rmtree(tmp_path / "var" / name, ignore_errors=True)
    with pytest.raises(SystemExit):
        main(args)
    assert stopped == [True] and not pidfile.exists()  # Kafka and FerretDB stopped, not left running
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_recovery_key_file_anchors_the_seal_key(tmp_path):
    """Someone with the recovery key's public half can make a keys archive holding a seal key of
    their own and a data archive sealed with it; the recovery key file, kept off the server, records
    a hash of the real seal key, and a restore refuses any other."""
    private, _ = new_recovery_key()
    path = tmp_path / "recovery.key"
    path.write_text(f"# a comment\n{archive.SEAL_FINGERPRINT}{archive.seal_fingerprint(SEAL_KEY)}\n{private}\n")
    assert archive.read_identity(path) is not None
    assert archive.check_fingerprint(path, SEAL_KEY) is True
    with pytest.raises(ArchiveError, match="not the one your recovery key file records"):
        archive.check_fingerprint(path, bytes(32))
    assert SEAL_KEY.hex() not in path.read_text()  # a hash of the key, not the key
    older = tmp_path / "older.key"
    older.write_text(f"{private}\n")
    assert archive.check_fingerprint(older, bytes(32)) is False  # nothing recorded: the caller warns
