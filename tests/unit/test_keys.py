"""Key files: made once, private, and the public command shows nothing secret."""

from __future__ import annotations

import stat
import threading

from shared import keys
from shared.config import Settings


def test_init_makes_every_key_file_0600_in_a_0700_folder_and_keeps_existing_ones(tmp_path):
    settings = Settings(var_dir=tmp_path)
    made = keys.init(settings)
    assert {p.name for p in made} == {"token-signing.key", "token-signing.pub", "service-advocacy.key",
                                      "service-advocacy.pub", "web-session.secret", "keys.json", "audit.key",
                                      "case-notes.key", "reporting-cellkey.key", "backup-seal.key", "mongo-operator.uri",
                                      *(f"mongo-{a}.password" for a in ("intake", "case", "advocacy", "reporting", "operator")),
                                      "kafka-client.properties",
                                      *(f"kafka-{p}.password" for p in ("admin", "broker", "controller", "intake", "case",
                                                                        "advocacy", "reporting", "deadletters", "operator"))}
    folder = settings.secrets_path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert keys.init(settings) == []
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_the_audit_key_is_32_random_bytes_read_from_its_file(tmp_path):
    settings = Settings(var_dir=tmp_path)
    keys.init(settings)
    key = keys.audit_key(settings)
    assert len(key) == 32 and keys.audit_key_path(settings).read_text().strip() == key.hex()


def test_a_process_without_the_audit_key_fails_rather_than_making_one(tmp_path):
    import pytest

    with pytest.raises(keys.KeyMissing):
        keys.audit_key(Settings(var_dir=tmp_path / "none"))
    assert not keys.audit_key_path(Settings(var_dir=tmp_path / "none")).exists()


def test_the_public_key_belongs_to_the_private_key(tmp_path):
    settings = Settings(var_dir=tmp_path)
    keys.init(settings)
    private = keys.load_private(keys.token_key_path(settings))
    public = keys.load_public(keys.token_public_path(settings))
    signature = private.sign(b"x")
    public.verify(signature, b"x")  # raises if they are not a pair


def test_processes_starting_together_make_one_key(tmp_path):
    settings = Settings(var_dir=tmp_path)
    threads = [threading.Thread(target=keys.init, args=(settings,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys.load_public(keys.token_public_path(settings)).verify(
        keys.load_private(keys.token_key_path(settings)).sign(b"y"), b"y")
    assert not [p for p in settings.secrets_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_a_settable_private_key_path_is_used(tmp_path):
    elsewhere = tmp_path / "vault" / "signing.pem"
    settings = Settings(var_dir=tmp_path / "var", token_private_key_file=elsewhere)
    keys.init(settings)
    assert elsewhere.exists() and stat.S_IMODE(elsewhere.stat().st_mode) == 0o600
    assert not (settings.secrets_path / "token-signing.key").exists()


def test_the_public_command_prints_no_secret(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NRW_SECRETS_DIR", str(tmp_path))
    assert keys.main(["init"]) == 0
    capsys.readouterr()
    assert keys.main(["public"]) == 0
    out = capsys.readouterr().out
    assert "PUBLIC KEY" in out and "PRIVATE" not in out
    assert (tmp_path / "web-session.secret").read_text() not in out
