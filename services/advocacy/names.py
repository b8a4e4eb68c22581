"""Names for letters, asked of intake over its API by advocacy's service account.

Identifying data never travels on Kafka: when a letter names a person (their advocacy consent
is `named`), the advocacy service asks intake for the name at the moment the letter is made, and
intake writes that read to its audit trail (account svc-advocacy, with the reason given here,
which names the appeal and the advocate who asked).
"""

from __future__ import annotations

import requests

from shared.auth import service_token
from shared.config import Settings


class NamesUnavailable(Exception):
    """Intake could not be asked (down, or refused): the letter cannot be made with names now."""


def fetch_names(case_ids: list[str], *, settings: Settings, signing_key, reason: str,
                timeout_s: float = 5.0) -> dict[str, str]:
    """case id -> the name on its newest report, for each of `case_ids`."""
    names = {}
    with requests.Session() as http:
        for case_id in case_ids:
            try:
                headers = {"Authorization": f"Bearer {service_token('advocacy', signing_key)}"}  # one per request
                res = http.get(f"{settings.url_of('intake')}/api/v1/cases/{case_id}/name", params={"reason": reason},
                               headers=headers, timeout=timeout_s)
            except requests.RequestException as exc:
                raise NamesUnavailable(f"intake did not answer ({type(exc).__name__})") from None
            if res.status_code != 200:
                raise NamesUnavailable(f"intake answered {res.status_code} for a case's name")
            names[case_id] = res.json()["full_name"]
    return names
