"""`python -m services.intake.keys`: rotate the master key that wraps the keys of identifying data.

    rotate              wrap every record's own key (services/intake/datakeys.py) with the current
                        master key; give older records sealed by a master key a key of their own;
                        re-seal what stays under the master key (erasure reasons)
    rotate --generate   (local key file only) make a new master key, make it current, then rotate

With keys from configuration (NRW_DATA_KEYS, NRW_DATA_KEY_ID), add the new key to NRW_DATA_KEYS,
point NRW_DATA_KEY_ID at it, restart the services, then run `rotate`; once it reports nothing
left under the old key, the old key can be removed from NRW_DATA_KEYS. Removing it also makes
every copy of the database from before the per-record keys undecryptable (README: "Erasure").
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tqdm import tqdm

from pymongo.errors import PyMongoError

from shared.audit_events import append_for_command, command_entry
from shared.config import Settings
from shared.crypto import Keyring
from shared.keys import KeyMissing
from shared.mongo import connect

from services.intake.datakeys import IntakeKeyring, migrate_all


def generate_local_key(settings: Settings) -> str:
    """Add a new data key to the local key file and make it current; its id."""
    path = settings.secrets_path / "keys.json"
    Keyring.from_settings(settings)  # creates the file if this is the first use
    stored = json.loads(path.read_text())
    kid = f"k{len(stored['data_keys']) + 1}"
    stored["data_keys"][kid] = base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()
    stored["current"] = kid
    tmp = path.with_suffix(".rotating")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(stored, fh)
    os.replace(tmp, path)
    return kid


def _reseal_lasting(erasures, keyring: IntakeKeyring, progress: bool) -> int:
    """Re-seal the erasure reasons not under the current master key."""
    stale = [d["_id"] for d in erasures.find({}, {"reason_sealed.kid": 1})
             if (d.get("reason_sealed") or {}).get("kid") not in (None, keyring.current)]
    for case_id in tqdm(stale, desc="erasure reasons", unit="reason", disable=not progress):
        blob = erasures.find_one({"_id": case_id}, {"reason_sealed": 1})["reason_sealed"]
        opened = keyring.decrypt_lasting(blob, bound_to=f"erasure:{case_id}")
        erasures.update_one({"_id": case_id, "reason_sealed.nonce": blob["nonce"]},
                            {"$set": {"reason_sealed": keyring.encrypt_lasting(opened, bound_to=f"erasure:{case_id}")}})
    return len(stale)


def rotate(db, keyring: IntakeKeyring, progress: bool = True) -> dict:
    """Bring everything under the current master key; counts of what was done."""
    migrated = migrate_all(db, keyring, progress=progress)
    rewrapped = keyring.rewrap(progress=progress)
    resealed = _reseal_lasting(db["erasures"], keyring, progress)
    return {"migrated": migrated, "rewrapped": rewrapped, "resealed": resealed, "current": keyring.current}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m services.intake.keys",
                                     description="Rotate the key that seals identifying data in intake's database.",
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    command = sub.add_parser("rotate", help="wrap every record's key with the current master key")
    command.add_argument("--generate", action="store_true", help="first make a new master key in the local key file")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.generate and os.environ.get("NRW_DATA_KEYS"):
        print("keys: --generate works on the local key file only; with NRW_DATA_KEYS, add the key there",
              file=sys.stderr)
        return 2
    try:  # written before anything changes: no rotation leaves no trace
        append_for_command(settings, [command_entry(
            "keys_rotated", detail="generate and reseal" if args.generate else "reseal")])
    except (KeyMissing, PyMongoError) as exc:
        print(f"keys: the audit trail cannot be written ({type(exc).__name__}); nothing was changed", file=sys.stderr)
        return 2
    if args.generate:
        print(f"keys: new current key {generate_local_key(settings)}")
    client = connect(settings, "intake")
    try:
        result = rotate(client[settings.database_name("intake")], IntakeKeyring.from_settings(settings),
                        progress=sys.stderr.isatty())
    finally:
        client.close()
    print(f"keys: {result['rewrapped']} record key(s) rewrapped, {result['migrated']} older record(s) given a key "
          f"of their own, {result['resealed']} erasure reason(s) re-sealed; everything is now under "
          f"{result['current']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
