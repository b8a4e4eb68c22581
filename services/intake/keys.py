"""`python -m services.intake.keys`: rotate the key that seals identifying data.

    rotate              re-encrypt every report still sealed under an older key with the current one
    rotate --generate   (local key file only) make a new key, make it current, then re-encrypt

With keys from configuration (NRW_DATA_KEYS, NRW_DATA_KEY_ID), add the new key to NRW_DATA_KEYS,
point NRW_DATA_KEY_ID at it, restart the services, then run `rotate`; once it reports nothing
left under the old key, the old key can be removed from NRW_DATA_KEYS.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tqdm import tqdm

from shared.config import Settings
from shared.crypto import Keyring
from shared.mongo import connect


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


def reseal_all(reports, keyring: Keyring, progress: bool = True) -> dict:
    """Re-encrypt every report not sealed under the current key; counts of what was done."""
    stale = [doc["_id"] for doc in reports.find({}, {"sealed.kid": 1}) if doc["sealed"]["kid"] != keyring.current]
    done = 0
    for report_id in tqdm(stale, desc=f"re-sealing under {keyring.current}", unit="report", disable=not progress):
        doc = reports.find_one({"_id": report_id}, {"sealed": 1})
        if doc["sealed"]["kid"] == keyring.current:
            continue
        sealed = keyring.encrypt(keyring.decrypt(doc["sealed"], bound_to=report_id), bound_to=report_id)
        reports.update_one({"_id": report_id}, {"$set": {"sealed": sealed}})
        done += 1
    return {"resealed": done, "current": keyring.current}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m services.intake.keys",
                                     description="Rotate the key that seals identifying data in intake's database.",
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rotate = sub.add_parser("rotate", help="re-encrypt reports under the current key")
    rotate.add_argument("--generate", action="store_true", help="first make a new key in the local key file")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.generate:
        if os.environ.get("NRW_DATA_KEYS"):
            print("keys: --generate works on the local key file only; with NRW_DATA_KEYS, add the key there",
                  file=sys.stderr)
            return 2
        print(f"keys: new current key {generate_local_key(settings)}")
    client = connect(settings, "intake")
    try:
        result = reseal_all(client[settings.database_name("intake")]["reports"], Keyring.from_settings(settings),
                            progress=sys.stderr.isatty())
    finally:
        client.close()
    print(f"keys: {result['resealed']} report(s) re-sealed; every report is now under {result['current']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
