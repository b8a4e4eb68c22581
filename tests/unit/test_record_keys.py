"""A key per record, outside the database (services/intake/datakeys.py), and the consent rules of
an erased person (services/intake/domain.py): no I/O but a temporary folder."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.intake import domain
from services.intake.datakeys import Erased, IntakeKeyring, is_record_sealed
from shared.crypto import Keyring

NAME = {"person": {"full_name": "Synthmark Erasable"}}


def _master(*kids: str) -> Keyring:
    return Keyring({kid: AESGCM.generate_key(bit_length=256) for kid in kids}, kids[-1], b"b" * 32)


def _keyring(tmp_path, master: Keyring | None = None) -> IntakeKeyring:
    return IntakeKeyring(master or _master("k1"), tmp_path / "person-keys")


def test_a_record_is_sealed_under_a_key_of_its_own_in_a_private_file(tmp_path):
    keyring = _keyring(tmp_path)
    sealed = keyring.encrypt(NAME, bound_to="r-1")
    assert is_record_sealed(sealed) and "kid" not in sealed and "Synthmark" not in json.dumps(sealed)
    assert keyring.decrypt(sealed, bound_to="r-1") == NAME
    path = keyring.path("r-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["kid"] == "k1"  # the record's key, wrapped by the master key
    other = keyring.encrypt(NAME, bound_to="r-2")
    assert keyring.path("r-2").read_bytes() != path.read_bytes()
    with pytest.raises(InvalidTag):
        keyring.decrypt(sealed, bound_to="r-2")  # moved to another record: its key does not open it
    assert keyring.decrypt(other, bound_to="r-2") == NAME


def test_after_its_key_is_destroyed_no_key_the_server_still_holds_opens_a_copy(tmp_path):
    master = _master("k1")
    keyring = _keyring(tmp_path, master)
    kept = keyring.encrypt({"person": {"full_name": "Synthmark Kept"}}, bound_to="r-kept")
    backup = keyring.encrypt(NAME, bound_to="r-gone")  # the database's copy, as a backup holds it
    assert keyring.destroy("r-gone") is True
    assert not keyring.path("r-gone").exists()
    assert keyring.destroy("r-gone") is False  # idempotent
    with pytest.raises(Erased):
        keyring.decrypt(backup, bound_to="r-gone")
    # Every key the server still holds: the master key and every other record's key.
    survivors = [master.keys["k1"]] + [
        base64.b64decode(master.decrypt(json.loads(p.read_text()), bound_to=f"record-key:{p.stem}")["key"])
        for p in (tmp_path / "person-keys").glob("*.key")]
    assert len(survivors) == 2
    for key in survivors:
        with pytest.raises(InvalidTag):
            AESGCM(key).decrypt(base64.b64decode(backup["nonce"]),
                                base64.b64decode(backup["ct"]), b"r-gone")
    with pytest.raises(InvalidTag):
        master.decrypt({**backup, "kid": "k1"}, bound_to="r-gone")
    assert keyring.decrypt(kept, bound_to="r-kept")["person"]["full_name"] == "Synthmark Kept"


def test_an_overwritten_ciphertext_and_an_unknown_record_are_erased_not_an_error(tmp_path):
    keyring = _keyring(tmp_path)
    with pytest.raises(Erased):
        keyring.decrypt(None, bound_to="r-1")
    with pytest.raises(Erased):
        keyring.decrypt({"v": 2, "nonce": "AAAA", "ct": "AAAA"}, bound_to="r-never")


def test_a_wrapped_key_copied_under_another_record_s_name_does_not_unwrap(tmp_path):
    keyring = _keyring(tmp_path)
    sealed = keyring.encrypt(NAME, bound_to="r-1")
    keyring.path("r-2").write_bytes(keyring.path("r-1").read_bytes())
    with pytest.raises(InvalidTag):
        keyring.decrypt(sealed, bound_to="r-2")


def test_records_sealed_by_the_master_key_before_still_open(tmp_path):
    master = _master("k1")
    older = master.encrypt(NAME, bound_to="r-old")
    assert _keyring(tmp_path, master).decrypt(older, bound_to="r-old") == NAME


def test_rotation_rewraps_every_key_and_never_brings_back_a_destroyed_one(tmp_path):
    old = _master("k1")
    keyring = _keyring(tmp_path, old)
    sealed = {r: keyring.encrypt(NAME, bound_to=r) for r in ("r-1", "r-2", "r-3")}
    keyring.destroy("r-3")
    rotated = _master("k1", "k2")
    rotated.keys["k1"] = old.keys["k1"]
    after = _keyring(tmp_path, rotated)
    assert after.rewrap() == 2 and after.rewrap() == 0
    assert not after.path("r-3").exists()
    only_new = _keyring(tmp_path, Keyring({"k2": rotated.keys["k2"]}, "k2", b"b" * 32))
    assert only_new.decrypt(sealed["r-1"], bound_to="r-1") == NAME
    with pytest.raises(Erased):
        only_new.decrypt(sealed["r-3"], bound_to="r-3")


def test_a_record_sealed_twice_keeps_its_one_key_and_odd_ids_are_refused(tmp_path):
    keyring = _keyring(tmp_path)
    first = keyring.encrypt(NAME, bound_to="r-1")
    before = keyring.path("r-1").read_bytes()
    second = keyring.encrypt(NAME, bound_to="r-1")
    assert keyring.path("r-1").read_bytes() == before
    assert keyring.decrypt(first, bound_to="r-1") == keyring.decrypt(second, bound_to="r-1") == NAME
    for bad in ("../escape", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            keyring.path(bad)
    assert not [p for p in os.listdir(tmp_path) if p != "person-keys"]


@pytest.mark.parametrize("consent,withdrawn,expected", [
    ({"advocacy": "named", "statistics": True}, False, ("anonymous", True)),
    ({"advocacy": "named", "statistics": True}, True, ("anonymous", False)),
    ({"advocacy": "none", "statistics": True}, False, ("none", True)),
    ({"advocacy": "anonymous", "statistics": False}, False, ("anonymous", False)),
])
def test_an_erased_person_is_never_named_and_counted_as_consent_says(consent, withdrawn, expected):
    after = domain.consent_after_erasure({**consent, "disputed": False}, statistics_withdrawn=withdrawn)
    assert (after["advocacy"], after["statistics"]) == expected


def test_a_consent_recorded_after_the_erasure_outweighs_its_withdrawal_of_statistics():
    erasure = {"at": 10, "statistics_withdrawn": True}
    assert domain.erasure_withdraws_statistics(erasure, None)
    assert domain.erasure_withdraws_statistics(erasure, {"at": 5})
    assert not domain.erasure_withdraws_statistics(erasure, {"at": 11})
    assert not domain.erasure_withdraws_statistics({"at": 10, "statistics_withdrawn": False}, None)


def test_processes_sealing_the_same_record_at_once_share_its_one_key(tmp_path):
    """Every worker migrates older records on start, so several may seal the same record at once."""
    from concurrent.futures import ThreadPoolExecutor

    keyring = _keyring(tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        sealed = list(pool.map(lambda _: _keyring(tmp_path, keyring).encrypt(NAME, bound_to="r-same"), range(16)))
    assert [p.name for p in (tmp_path / "person-keys").glob("*.key")] == ["r-same.key"]
    assert all(keyring.decrypt(blob, bound_to="r-same") == NAME for blob in sealed)
