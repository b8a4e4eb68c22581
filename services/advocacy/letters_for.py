"""A letter for an appeal or a UNHCR-access request: what it may say about each case (consent
decides), the names asked of intake only for `named` cases, then letters.render_letter."""

from __future__ import annotations

import datetime as dt

from shared.config import Settings
from shared.people import age_group

from services.advocacy import domain
from services.advocacy.names import NamesUnavailable, fetch_names
from services.advocacy.store import AdvocacyStore

__all__ = ["render", "build_context", "NamesUnavailable"]

ORGANISATION = "Non-Refoulement Watch"
EXTENSIONS = {"md": "md", "html": "html", "pdf": "pdf"}


def build_context(record: dict, letter: str, *, cases: dict[str, dict], names: dict[str, str],
                  recipients: dict[str, dict], today: dt.date) -> dict:
    """The letter's context: each case described by its non-identifying attributes, with a name
    only when its consent is `named` (and a case with consent `none` refused: NoConsent)."""
    domain.check_consent(record["case_ids"], cases)
    described = []
    for case_id in record["case_ids"]:
        case = cases[case_id]
        consent = case.get("consent_advocacy")
        described.append({
            "case_id": case_id, "consent": consent,
            "full_name": names.get(case_id) if consent == "named" else None,
            "sex": case.get("sex") or "unknown", "age_group": age_group(case.get("birth_year"), today.year),
            "nationality": case.get("nationality") or "KP", "province": case.get("province"),
            "status": case.get("status"), "detained_on": _date(case.get("detained_on")),
            "expected_deportation_on": _date(case.get("expected_deportation_on")),
            "deportation_imminent": domain.is_imminent(case), "vulnerabilities": list(case.get("vulnerabilities") or []),
        })
    if letter == "appeal":
        date = _date(record.get("issued_on")) or today
        extra = {"kind": record["kind"],
                 "recipients": [recipients.get(n, {"name": n, "mandate": n, "channel": ""}) for n in record["recipients"]]}
    else:
        date = _date(record["sent_on"])
        extra = {"office": record["office"], "channel": record["channel"]}
    return {"letter": letter, "reference": record.get("appeal_id") or record.get("request_id"), "date": date,
            "organisation": ORGANISATION, "cases": described, **extra}


def render(record: dict, letter: str, *, lang: str, fmt: str, store: AdvocacyStore, settings: Settings,
           signing_key, requested_by: str, today: dt.date) -> tuple[bytes, str, str]:
    """The letter's bytes, MIME type and a file name."""
    cases = store.known_cases(record["case_ids"])
    domain.check_consent([c for c in record["case_ids"] if c in cases], cases)
    named = [c for c in record["case_ids"] if cases.get(c, {}).get("consent_advocacy") == "named"]
    reference = record.get("appeal_id") or record.get("request_id")
    names = fetch_names(named, settings=settings, signing_key=signing_key,
                        reason=f"{letter} letter {reference} for {requested_by}") if named else {}
    recipients = {r["name"]: r for r in store.list_recipients()}
    context = build_context(record, letter, cases=cases, names=names, recipients=recipients, today=today)
    from services.advocacy import letters  # reportlab and markdown load only when a letter is made
    content, mimetype = letters.render_letter(context, lang=lang, fmt=fmt)
    _audit(record, letter, lang=lang, fmt=fmt, store=store)
    return content, mimetype, f"{letter}-{reference[:8]}-{lang}.{EXTENSIONS[fmt]}"


def _audit(record: dict, letter: str, *, lang: str, fmt: str, store: AdvocacyStore) -> None:
    """Record the letter made (audited in intake's trail) before it is handed out: render runs in a
    request of the API or a page, whose verified account made it."""
    from flask import g

    from shared.mongo import utcnow
    from shared.web import resources

    from services.advocacy import handlers

    handlers.record_letter(record, letter, lang=lang, fmt=fmt, actor=g.user["id"], store=store,
                           publisher=resources().publisher, now=utcnow())


def _date(value) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
