"""Record keys of the cell key method (disclosure.py): each case's secret key in 0..255, the
first byte of HMAC-SHA256(secret, case id), with the secret read once per process from
`reporting-cellkey.key` in the secrets folder (shared/keys.py), never from the database: whoever
has a copy of the database cannot work the noise out, so cannot undo it.

create_app names the settings (``configure``); a process that did not (a script, a unit test)
reads NRW_SECRETS_DIR from the environment.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Callable

from shared import keys
from shared.config import Settings

_settings: Settings | None = None
_keyers: dict[Path, Callable[[str], int]] = {}


def record_keyer(secret: bytes) -> Callable[[str], int]:
    """case id -> its record key (0..255) under ``secret``; remembered per case (a few bytes each)."""
    cache: dict[str, int] = {}

    def record_key(case_id: str) -> int:
        key = cache.get(case_id)
        if key is None:
            key = cache[case_id] = hmac.new(secret, case_id.encode(), hashlib.sha256).digest()[0]
        return key

    return record_key


def configure(settings: Settings | None) -> None:
    """Use these settings' secrets folder for this process's record keys (called by create_app)."""
    global _settings
    _settings = settings


def process_record_key() -> Callable[[str], int]:
    """This process's record keys: the secret file read on first use, then kept."""
    settings = _settings or Settings.from_env()
    path = keys.cellkey_key_path(settings)
    if path not in _keyers:
        _keyers[path] = record_keyer(keys.cellkey_key(settings))
    return _keyers[path]
