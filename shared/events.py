"""The event contract between services: one envelope, one payload schema per event type.

Producers validate strictly (an unexpected field, such as a name, is refused before it can leave
the service); consumers validate tolerantly (fields added by later schema versions are ignored).
No payload may carry identifying data: names, birth dates, hometowns, contacts or free text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared import unhcr_offices

SCHEMA_VERSION = 1

SEXES = ("female", "male", "unknown")
CONSENT_ADVOCACY = ("named", "anonymous", "none")
CONSENT_GIVEN_BY = ("person", "family", "representative")
VULNERABILITIES = (
    "minor",
    "pregnant",
    "elderly",
    "ill",
    "prior_repatriation",
    "religious_contact",
    "contact_with_south_koreans",
    "trafficking_victim",
)
SOURCE_TYPES = ("family", "fellow_escapee", "broker", "church_partner", "ngo_partner", "media", "other")
RELIABILITIES = ("confirmed", "probable", "unverified")
# A UPR cycle: the reviewed State's ISO 3166 alpha-2 code and the cycle's number (CN-4: China's
# fourth review). A fixed form, not free text: it travels in upr.snapshot_taken.
UPR_CYCLE = r"^[A-Z]{2}-[1-9][0-9]?$"
CASE_STATUSES = (
    "reported",
    "detained",
    "deportation_imminent",
    "released",
    "in_third_country",
    "whereabouts_unknown",
    "repatriated",
    "resettled",
    "deceased",
    "closed_duplicate",
    "closed_unfounded",
)
# After a return (case.after_return_recorded): fixed choices, never free text about the person.
CUSTODY = ("mss", "mps", "border_guards", "other", "unknown")
RETURN_OUTCOMES = ("released", "labour_training_camp", "kyohwaso", "kwanliso", "died_in_custody", "disappeared",
                   "unknown")
SENTENCED_OUTCOMES = ("labour_training_camp", "kyohwaso")  # the outcomes a sentence in years goes with
SENTENCE_YEARS_MAX = 50
FORCED_LABOUR = ("yes", "no", "unknown")
LABOUR_WORK = ("mining", "logging", "farming", "construction", "textiles", "wigs_eyelashes", "other")
ILL_TREATMENT = ("torture", "sexual_violence", "forced_abortion", "other")
# Products, facilities and companies a testimony names: things, never people; each trimmed, of
# 1..NAMED_THING_MAX characters, at most NAMED_THINGS_MAX of each kind in a record.
NAMED_THING_MAX = 120
NAMED_THINGS_MAX = 20
# Asylum and status determination (case.asylum_recorded): each procedure's steps.
ASYLUM_STEPS = {
    "art46": ("applied", "tic_issued", "refused", "no_answer", "granted"),
    "unhcr_rsd": ("requested", "access_granted", "access_denied", "recognised", "rejected"),
    "china_status": ("granted", "refused"),
}
ASYLUM_STEP_NAMES = tuple(sorted({step for steps in ASYLUM_STEPS.values() for step in steps}))
_PHONE = re.compile(r"\+?\(?\d(?:[\s().-]*\d){6,}")  # seven digits or more, however grouped


CONTACT_REFUSED = {"e-mail address": "Name things, never people: this looks like an e-mail address.",
                   "phone number": "Name things, never people: this looks like a phone number."}


def looks_like_contact(text: str) -> str | None:
    """What a name of a thing looks like instead ("e-mail address", "phone number"), or None: a
    contact is about a person and never goes into a record of things."""
    if "@" in text:
        return "e-mail address"
    if _PHONE.search(text):
        return "phone number"
    return None


class EventError(ValueError):
    """An event that does not satisfy the contract; `reason` says why, without the data."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _uuid(value: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ValidationError("Not a valid UUID.") from None


class Envelope(Schema):
    """The envelope every record on every topic carries."""

    event_id = fields.String(required=True, validate=_uuid)
    event_type = fields.String(required=True, validate=validate.Length(min=3, max=64))
    schema_version = fields.Integer(required=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True, default_timezone=dt.timezone.utc)
    producer = fields.String(required=True, validate=validate.Length(min=1, max=32))
    case_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    correlation_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    causation_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    actor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    payload = fields.Dict(required=True, keys=fields.String())


class CaseReported(Schema):
    """intake.events / case.reported: a report was logged; non-identifying facts only."""

    report_id = fields.String(required=True)
    matched_existing_case = fields.Boolean(required=True)
    sex = fields.String(required=True, validate=validate.OneOf(SEXES))
    birth_year = fields.Integer(allow_none=True, load_default=None)
    nationality = fields.String(required=True, validate=validate.Length(equal=2))
    province = fields.String(required=True, validate=validate.Length(min=1, max=64))
    detained_on = fields.Date(allow_none=True, load_default=None)
    deportation_imminent = fields.Boolean(required=True)
    expected_deportation_on = fields.Date(allow_none=True, load_default=None)
    vulnerabilities = fields.List(fields.String(validate=validate.OneOf(VULNERABILITIES)), required=True)
    trafficking_victim = fields.Boolean(required=True)
    source_type = fields.String(required=True, validate=validate.OneOf(SOURCE_TYPES))
    source_reliability = fields.String(required=True, validate=validate.OneOf(RELIABILITIES))
    received_on = fields.Date(allow_none=True, load_default=None)
    consent_advocacy = fields.String(required=True, validate=validate.OneOf(CONSENT_ADVOCACY))
    consent_statistics = fields.Boolean(required=True)


class ConsentChanged(Schema):
    """intake.events / consent.changed: a case's consent as intake (the authority) now holds it.

    Published when a caseworker records the person's consent (`given_by` says who gave it) and
    when a new report narrows the case's consent or makes its reports disagree (`given_by` null,
    `disputed` true while they do). Never the reason given: that is free text and stays in intake.
    """

    consent_advocacy = fields.String(required=True, validate=validate.OneOf(CONSENT_ADVOCACY))
    consent_statistics = fields.Boolean(required=True)
    given_by = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(CONSENT_GIVEN_BY))
    disputed = fields.Boolean(load_default=False)


class CaseMerged(Schema):
    """intake.events / case.merged: the envelope's case was merged into another."""

    into_case_id = fields.String(required=True)


class PersonErased(Schema):
    """intake.events / person.erased: the case's person was erased on request; their identifying
    data can no longer be read anywhere. Services drop any copy of free text about the person;
    the case keeps its non-identifying facts. Never the reason given (it stays in intake)."""

    statistics_withdrawn = fields.Boolean(required=True)
    merged_case_ids = fields.List(fields.String(validate=validate.Length(min=1, max=64)), load_default=list,
                                  validate=validate.Length(max=1000))  # the person's cases merged into this one


class CaseOpened(Schema):
    """case.events / case.opened: the case's non-identifying attributes."""

    status = fields.String(required=True, validate=validate.Equal("reported"))
    sex = fields.String(required=True, validate=validate.OneOf(SEXES))
    birth_year = fields.Integer(allow_none=True, load_default=None)
    nationality = fields.String(required=True, validate=validate.Length(equal=2))
    province = fields.String(required=True)
    detained_on = fields.Date(allow_none=True, load_default=None)
    deportation_imminent = fields.Boolean(required=True)
    vulnerabilities = fields.List(fields.String(validate=validate.OneOf(VULNERABILITIES)), required=True)
    consent_advocacy = fields.String(required=True, validate=validate.OneOf(CONSENT_ADVOCACY))
    consent_statistics = fields.Boolean(required=True)


class CaseStatusChanged(Schema):
    """case.events / case.status_changed."""

    from_ = fields.String(required=True, data_key="from", validate=validate.OneOf(CASE_STATUSES))
    to = fields.String(required=True, validate=validate.OneOf(CASE_STATUSES))
    effective_on = fields.Date(required=True)


class NamedThing(fields.String):
    """A product, facility or company a testimony names: trimmed, bounded, one line, and never
    anything that looks like a contact (a phone number, an e-mail address)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = " ".join(super()._deserialize(value, attr, data, **kwargs).split())
        if not 1 <= len(text) <= NAMED_THING_MAX:
            raise ValidationError(f"Between 1 and {NAMED_THING_MAX} characters.")
        if (kind := looks_like_contact(text)) is not None:
            raise ValidationError(CONTACT_REFUSED[kind])
        return text


def _named_things() -> fields.List:
    return fields.List(NamedThing(), load_default=list, validate=validate.Length(max=NAMED_THINGS_MAX))


def sentence_in_halves(value: float | None) -> None:
    """A sentence in years: 0 to SENTENCE_YEARS_MAX, in halves of a year (or not known: None)."""
    if value is not None and not (0 <= value <= SENTENCE_YEARS_MAX and float(value * 2).is_integer()):
        raise ValidationError(f"Years from 0 to {SENTENCE_YEARS_MAX}, in halves.")


class CaseAfterReturnRecorded(Schema):
    """case.events / case.after_return_recorded: one piece of news about a returned person, with
    when it happened (`effective_on`, the business date; null if not known) and when it was
    learned. Fixed choices and the names of things only (products, facilities, companies)."""

    record_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    learned_on = fields.Date(required=True)
    effective_on = fields.Date(allow_none=True, load_default=None)
    source_type = fields.String(required=True, validate=validate.OneOf(SOURCE_TYPES))
    source_reliability = fields.String(required=True, validate=validate.OneOf(RELIABILITIES))
    custody = fields.String(required=True, validate=validate.OneOf(CUSTODY))
    outcome = fields.String(required=True, validate=validate.OneOf(RETURN_OUTCOMES))
    sentence_years = fields.Float(allow_none=True, load_default=None, allow_nan=False, validate=sentence_in_halves)
    forced_labour = fields.String(required=True, validate=validate.OneOf(FORCED_LABOUR))
    work = fields.List(fields.String(validate=validate.OneOf(LABOUR_WORK)), load_default=list)
    products = _named_things()
    facilities = _named_things()
    companies = _named_things()
    ill_treatment = fields.List(fields.String(validate=validate.OneOf(ILL_TREATMENT)), load_default=list)


class CaseAsylumRecorded(Schema):
    """case.events / case.asylum_recorded: a step of an asylum procedure (article 46, UNHCR's
    refugee status determination, a status granted by China) on its business date."""

    record_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    procedure = fields.String(required=True, validate=validate.OneOf(tuple(ASYLUM_STEPS)))
    step = fields.String(required=True, validate=validate.OneOf(ASYLUM_STEP_NAMES))
    effective_on = fields.Date(required=True)
    source_type = fields.String(required=True, validate=validate.OneOf(SOURCE_TYPES))
    source_reliability = fields.String(required=True, validate=validate.OneOf(RELIABILITIES))

    @validates_schema
    def _step_of_its_procedure(self, data, **_kwargs):
        if data.get("step") not in ASYLUM_STEPS.get(data.get("procedure"), (data.get("step"),)):
            raise ValidationError("Not a step of this procedure.", "step")


class CaseFactsUpdated(Schema):
    """case.events / case.facts_updated: only the attributes that changed."""

    deportation_imminent = fields.Boolean()
    detained_on = fields.Date(allow_none=True)
    province = fields.String()
    vulnerabilities = fields.List(fields.String(validate=validate.OneOf(VULNERABILITIES)))
    consent_advocacy = fields.String(validate=validate.OneOf(CONSENT_ADVOCACY))
    consent_statistics = fields.Boolean()
    report_count = fields.Integer()


class OfficeCode(fields.String):
    """A UNHCR office of the maintained list (shared/unhcr_offices.py), as its code. Whatever a
    producer hands it, the event carries a fixed value: an office's code or name becomes the code,
    anything else `unlisted`, so no typed text travels (and an older event's text is not kept)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        return unhcr_offices.code_for(text) or unhcr_offices.UNLISTED


class UnhcrAccessRequested(Schema):
    """advocacy.events / unhcr_access.requested: `office` is a code of the maintained list."""

    request_id = fields.String(required=True)
    office = OfficeCode(required=True)
    channel = fields.String(required=True)
    sent_on = fields.Date(required=True)


class UnhcrAccessResponded(Schema):
    """advocacy.events / unhcr_access.responded."""

    request_id = fields.String(required=True)
    outcome = fields.String(
        required=True, validate=validate.OneOf(("acknowledged", "granted", "denied", "no_response"))
    )
    received_on = fields.Date(required=True)


class AppealDrafted(Schema):
    """advocacy.events / appeal.drafted."""

    appeal_id = fields.String(required=True)
    kind = fields.String(required=True)
    due_by = fields.AwareDateTime(required=True, default_timezone=dt.timezone.utc)


class AppealIssued(Schema):
    """advocacy.events / appeal.issued."""

    appeal_id = fields.String(required=True)
    kind = fields.String(required=True)
    recipients = fields.List(fields.String(), required=True)
    issued_on = fields.Date(required=True)


class AppealAnswered(Schema):
    """advocacy.events / appeal.answered."""

    appeal_id = fields.String(required=True)
    outcome = fields.String(required=True)
    received_on = fields.Date(required=True)


class UprSnapshotTaken(Schema):
    """reporting.events / upr.snapshot_taken."""

    snapshot_id = fields.String(required=True)
    cycle = fields.String(required=True, validate=validate.Regexp(UPR_CYCLE))
    as_of = fields.Date(required=True)


AUDIT_EVENT = "audit.recorded"
# The writes another service makes that intake's audit trail must show (shared/audit_events.py),
# each with the only form its `detail` may take: fixed words, never anything typed.
_STATUS = "|".join(CASE_STATUSES)
AUDIT_DETAILS = {
    "status_changed": rf"({_STATUS}) > ({_STATUS})",
    "cases_merged": None,
    "snapshot_taken": r"as_of=\d{4}-\d{2}-\d{2}",
    "letter_generated": r"(appeal|unhcr_access) (en|ko) (md|html|pdf)",
    "after_return_recorded": rf"({'|'.join(RETURN_OUTCOMES)})",
    "asylum_recorded": rf"({'|'.join(ASYLUM_STEPS)}) ({'|'.join(ASYLUM_STEP_NAMES)})",
    "recommendation_saved": r"added|changed",
}
AUDITED_ACTIONS = tuple(AUDIT_DETAILS)


class AuditRecorded(Schema):
    """<service>.events / audit.recorded: an audited write, stored in the same write as the change
    (its outbox) and appended by intake to its audit trail. Who is the envelope's `actor` (the
    verified account's id); the payload holds ids and fixed words only, never a reason typed."""

    action = fields.String(required=True, validate=validate.OneOf(AUDITED_ACTIONS))
    case_ids = fields.List(fields.String(validate=validate.Length(min=1, max=64)), load_default=list,
                           validate=validate.Length(max=100))
    object_id = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=64))
    detail = fields.String(allow_none=True, load_default=None)

    @validates_schema
    def _fixed_detail(self, data, **_kwargs):
        form = AUDIT_DETAILS.get(data.get("action"))
        if data.get("detail") is not None and (form is None or not re.fullmatch(form, data["detail"])):
            raise ValidationError("Only the fixed words of its action.", "detail")


PAYLOAD_SCHEMAS: dict[str, type[Schema]] = {
    "case.reported": CaseReported,
    "consent.changed": ConsentChanged,
    "case.merged": CaseMerged,
    "person.erased": PersonErased,
    "case.opened": CaseOpened,
    "case.status_changed": CaseStatusChanged,
    "case.facts_updated": CaseFactsUpdated,
    "case.after_return_recorded": CaseAfterReturnRecorded,
    "case.asylum_recorded": CaseAsylumRecorded,
    "unhcr_access.requested": UnhcrAccessRequested,
    "unhcr_access.responded": UnhcrAccessResponded,
    "appeal.drafted": AppealDrafted,
    "appeal.issued": AppealIssued,
    "appeal.answered": AppealAnswered,
    "upr.snapshot_taken": UprSnapshotTaken,
    AUDIT_EVENT: AuditRecorded,
}

_ENVELOPE = Envelope()
_PAYLOADS = {name: schema() for name, schema in PAYLOAD_SCHEMAS.items()}


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    """Field paths of a marshmallow error dict (the messages name fields, never their values)."""
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            out.extend(_flatten(value, f"{prefix}{key}."))
        return out
    return [prefix.rstrip(".")]


def new_event(
    event_type: str,
    *,
    producer: str,
    case_id: str,
    payload: dict,
    actor: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """Build an event as a JSON-ready dict and validate it strictly, as a producer must."""
    event_id = str(uuid.uuid4())
    event = {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": (now or dt.datetime.now(dt.timezone.utc)).isoformat(),
        "producer": producer,
        "case_id": case_id,
        "correlation_id": correlation_id or event_id,
        "causation_id": causation_id,
        "actor": actor,
        "payload": _dump_payload(event_type, payload),
    }
    validate_event(event, strict=True)
    return event


def _dump_payload(event_type: str, payload: dict) -> dict:
    schema = _PAYLOADS.get(event_type)
    if schema is None:
        raise EventError(f"unknown event type {event_type!r}")
    try:
        loaded = schema.load(payload, unknown=RAISE)
    except ValidationError as exc:
        raise EventError(f"payload of {event_type} invalid at: {', '.join(_flatten(exc.messages))}") from None
    return schema.dump(loaded)


def validate_event(event: Any, *, strict: bool = False) -> dict:
    """Check an event dict against the envelope and its payload schema; return the loaded form.

    strict=True (producers) refuses unknown fields and unknown event types; strict=False
    (consumers) ignores fields added later and accepts event types it has no schema for.
    """
    if not isinstance(event, dict):
        raise EventError("event is not a JSON object")
    unknown = RAISE if strict else EXCLUDE
    try:
        envelope = _ENVELOPE.load(event, unknown=unknown)
    except ValidationError as exc:
        raise EventError(f"envelope invalid at: {', '.join(_flatten(exc.messages))}") from None
    schema = _PAYLOADS.get(envelope["event_type"])
    if schema is None:
        if strict:
            raise EventError(f"unknown event type {envelope['event_type']!r}")
        return envelope
    try:
        envelope["payload"] = schema.load(envelope["payload"], unknown=unknown)
    except ValidationError as exc:
        raise EventError(
            f"payload of {envelope['event_type']} invalid at: {', '.join(_flatten(exc.messages))}"
        ) from None
    return envelope


def encode(event: dict) -> bytes:
    """The bytes of an event on the wire: UTF-8 JSON."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(raw: bytes | None) -> dict:
    """Parse a record value into a dict, or raise EventError saying why it could not be."""
    if raw is None:
        raise EventError("record has no value")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise EventError("record value is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise EventError(f"record value is not JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:  # nested deeper than the parser goes: dead-lettered, not a consumer that loops
        raise EventError("record value nests too deeply") from None
    return value
