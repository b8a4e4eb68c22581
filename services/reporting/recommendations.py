"""Recommendations followed across cycles (issue 11 point 5): UPR recommendations (cycle, number,
recommending State, China's response) and treaty-body ones (symbol, paragraph), each linked to the
measures and UPR questions whose documented cases bear on it. Pure: no database, no Flask.

The list starts from a file the project ships (`data/recommendations.json`: those the reference
document quotes, its texts copied as it quotes them, a field it does not give left null), loaded
at each start by id: a recommendation's id comes from what identifies it (mechanism, cycle and
number, or symbol, paragraph and text), so loading again adds nothing and never overwrites an
analyst's edits. Figures "since" a recommendation are the statistics code's own tables with
`since = issued_on` (events in (issued_on, as_of]); a recommendation without a date is followed
over every documented case up to `as_of`, and says so.

`text` is the official text, in English; `text_ko` an optional unofficial Korean translation of it
(not part of what identifies a recommendation), which Korean readers see first, marked as such,
with the official text beside it (recommendation_words.quoted)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.reporting import domain, figures
from shared.i18n import N_  # marks the messages for the catalog: the pages show them in Korean

SHIPPED = Path(__file__).resolve().parent / "data" / "recommendations.json"
MECHANISMS = ("upr", "treaty_body")
RESPONSES = ("supported", "noted")
KINDS = ("made", "proposed")  # made by a State or a committee; proposed by a submission
QUESTION_IDS = tuple(q[0] for q in figures.QUESTIONS)
UPR_CYCLE = r"^[A-Z]{2}-[1-9][0-9]?$"  # as a snapshot's cycle: CN-3
FIELDS = ("recommendation_id", "mechanism", "kind", "cycle", "number", "symbol", "paragraph", "text", "text_ko",
          "recommending_state", "response", "issued_on", "measures", "questions")
UPR_ONLY = N_("Only a UPR recommendation has a cycle, a number, a recommending State and a response.")
EDITABLE = ("text", "text_ko", "recommending_state", "response", "issued_on", "measures", "questions")


def _text(max_len: int, **kw):
    return fields.String(validate=validate.Length(min=1, max=max_len), **kw)


def _not_future(day: dt.date) -> None:
    if day > dt.date.today():
        raise ValidationError("Must not be in the future.")


class _Links(Schema):
    measures = fields.List(fields.String(validate=validate.OneOf(domain.ALL_MEASURES)), load_default=list,
                           validate=validate.Length(max=len(domain.ALL_MEASURES)))
    questions = fields.List(fields.String(validate=validate.OneOf(QUESTION_IDS)), load_default=list,
                            validate=validate.Length(max=len(QUESTION_IDS)))


class RecommendationIn(_Links):
    """POST /api/v1/recommendations: a UPR recommendation needs its cycle (CN-3) and, once made, its
    number; a treaty-body one its symbol and paragraph, and has no response. Unknown fields: 422."""

    mechanism = fields.String(required=True, validate=validate.OneOf(MECHANISMS))
    kind = fields.String(load_default="made", validate=validate.OneOf(KINDS))
    cycle = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        UPR_CYCLE, error="Give the reviewed State's two-letter code and the cycle's number, such as CN-4."))
    number = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^\d{1,4}(\.\d{1,4}){0,2}$", error=N_("A recommendation's number, such as 28.131.")))
    symbol = _text(60, load_default=None, allow_none=True)
    paragraph = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^\d{1,4}( ?\([a-z]{1,4}\))?$", error=N_("A paragraph's number, such as 47 or 47 (a).")))
    text = _text(4000, required=True)
    text_ko = _text(4000, load_default=None, allow_none=True)  # an unofficial Korean translation of `text`
    recommending_state = _text(120, load_default=None, allow_none=True)
    response = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(RESPONSES))
    issued_on = fields.Date(load_default=None, allow_none=True, validate=_not_future)

    @validates_schema
    def _by_mechanism(self, data, **_kwargs):
        errors: dict[str, list[str]] = {}
        if data.get("mechanism") == "upr":
            if not data.get("cycle"):
                errors["cycle"] = [N_("A UPR recommendation needs its cycle, such as CN-3.")]
            if data.get("kind") == "made" and not data.get("number"):
                errors["number"] = [N_("A recommendation made in a UPR cycle needs its number, such as 28.131.")]
            for name in ("symbol", "paragraph"):
                if data.get(name):
                    errors[name] = [N_("Only a treaty-body recommendation has a symbol and a paragraph.")]
        elif data.get("mechanism") == "treaty_body":
            for name in ("symbol", "paragraph"):
                if not data.get(name):
                    errors[name] = [N_("A treaty-body recommendation needs its symbol and paragraph.")]
            for name in ("cycle", "number", "response", "recommending_state"):
                if data.get(name):
                    errors[name] = [UPR_ONLY]
        if data.get("kind") == "proposed" and data.get("response"):
            errors["response"] = [N_("A proposed recommendation has no response yet.")]
        if errors:
            raise ValidationError(errors)


class RecommendationEdit(_Links):
    """PATCH /api/v1/recommendations/{id}: what an analyst may change (what identifies it stays)."""

    text = _text(4000)
    text_ko = _text(4000, allow_none=True)  # null: no Korean translation
    recommending_state = _text(120, allow_none=True)
    response = fields.String(allow_none=True, validate=validate.OneOf(RESPONSES))
    issued_on = fields.Date(allow_none=True, validate=_not_future)
    measures = fields.List(fields.String(validate=validate.OneOf(domain.ALL_MEASURES)),
                           validate=validate.Length(max=len(domain.ALL_MEASURES)))
    questions = fields.List(fields.String(validate=validate.OneOf(QUESTION_IDS)),
                            validate=validate.Length(max=len(QUESTION_IDS)))


def recommendation_id(rec: dict) -> str:
    """The id from what identifies a recommendation: a UPR one by cycle and number (by its text
    while it has no number), a treaty-body one by symbol, paragraph and text (a paragraph may hold
    several recommendations). Whitespace and case of the text do not make another one."""
    text = " ".join(str(rec.get("text") or "").split()).casefold()
    if rec["mechanism"] == "upr":
        key = ["upr", rec.get("cycle"), rec.get("number") or text]
    else:
        key = ["treaty_body", " ".join(str(rec.get("symbol")).split()).upper(), rec.get("paragraph"), text]
    return "rec-" + hashlib.sha256(json.dumps(key).encode("utf-8")).hexdigest()[:20]


def new_state(cmd: dict) -> dict:
    """A recommendation's stored state from a loaded command (dates as ISO text, links de-duplicated)."""
    state = {name: cmd.get(name) for name in FIELDS if name != "recommendation_id"}
    state["issued_on"] = cmd["issued_on"].isoformat() if cmd.get("issued_on") else None
    state["measures"] = list(dict.fromkeys(cmd.get("measures") or []))
    state["questions"] = list(dict.fromkeys(cmd.get("questions") or []))
    state["recommendation_id"] = recommendation_id(state)
    return state


def edited(state: dict, changes: dict) -> dict | None:
    """The state after an analyst's changes, or None if nothing changes."""
    out = dict(state)
    for name in EDITABLE:
        if name not in changes:
            continue
        value = changes[name]
        if name == "issued_on":
            value = value.isoformat() if value else None
        elif name in ("measures", "questions"):
            value = list(dict.fromkeys(value))
        out[name] = value
    if out.get("mechanism") == "treaty_body" and (out.get("response") or out.get("recommending_state")):
        raise ValidationError({"response": [N_("Only a UPR recommendation has a recommending State and a response.")]})
    if out.get("kind") == "proposed" and out.get("response"):
        raise ValidationError({"response": [N_("A proposed recommendation has no response yet.")]})
    return None if all(out.get(n) == state.get(n) for n in EDITABLE) else out


def shipped(path: Path = SHIPPED) -> list[dict]:
    """The recommendations the project ships, validated as a POST would be, with their ids.
    A broken file fails loudly at start (ValueError naming the entry), never half-loads."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out, seen = [], set()
    for position, item in enumerate(data["items"]):
        try:
            state = new_state(RecommendationIn().load(item))
        except ValidationError as exc:
            raise ValueError(f"{path.name}: entry {position} is invalid: {exc.messages}") from None
        if state["recommendation_id"] in seen:
            raise ValueError(f"{path.name}: entry {position} repeats an earlier recommendation")
        seen.add(state["recommendation_id"])
        out.append(state)
    return out


def public(state: dict) -> dict:
    """The fields API.md lists (and the links), in that order."""
    return {name: state.get(name) for name in FIELDS}


LINK_FIELDS = ("recommendation_id", "mechanism", "kind", "cycle", "number", "symbol", "paragraph",
               "recommending_state", "response", "issued_on")


def by_question(states: list[dict], names: tuple[str, ...] = LINK_FIELDS) -> dict[str, list[dict]]:
    """The recommendations linked to each UPR question, in the list's order, each with the fields
    `names`: by default what identifies it (cycle and number, or symbol and paragraph), its State,
    China's response and its date (the API's answer; the texts are on the recommendation's own page)."""
    out: dict[str, list[dict]] = {qid: [] for qid in QUESTION_IDS}
    for state in sorted(states, key=sort_key):
        for qid in dict.fromkeys(state.get("questions") or ()):
            if qid in out:
                out[qid].append({name: state.get(name) for name in names})
    return out


def sort_key(state: dict) -> tuple:
    """UPR before treaty bodies, by cycle and number; proposals last in their cycle."""
    def number(value):
        return tuple(int(p) for p in str(value).split(".")) if value else (10 ** 9,)
    para = str(state.get("paragraph") or "")
    return (MECHANISMS.index(state["mechanism"]), state.get("cycle") or "", state.get("kind") != "made",
            number(state.get("number")), state.get("symbol") or "", number(para.split(" ")[0]) if para else (0,),
            state.get("text") or "")


def followed(records: list[dict], state: dict, *, as_of: dt.date, disclosure_level: str,
             by: tuple[str, ...] = ("sex",)) -> dict:
    """The figures that bear on a recommendation: each linked measure's table (the statistics API's
    own) from its date to `as_of`. A recommendation dated after `as_of` has nothing to follow yet."""
    issued = dt.date.fromisoformat(state["issued_on"]) if state.get("issued_on") else None
    out = {"as_of": as_of.isoformat(), "since": issued.isoformat() if issued else None, "measures": []}
    if issued is not None and issued >= as_of:
        out["note"] = "The recommendation is dated on or after the date of the figures: nothing to follow yet."
        return out
    out["note"] = (None if issued else "The recommendation's date is not recorded: the figures cover every "
                                       "documented case up to the date.")
    for measure in state.get("measures") or ():
        tab = figures.table(records, measure=measure, as_of=as_of, since=issued, by=list(by),
                            disclosure_level=disclosure_level)
        entry = {"measure": measure, "stock": measure in domain.DETAINED, **tab}
        if disclosure_level == "internal":
            entry["case_ids"] = figures.counted_case_ids(records, measure=measure, as_of=as_of, since=issued)
        out["measures"].append(entry)
    return out


def snapshot_part(records: list[dict], states: list[dict], *, as_of: dt.date) -> list[dict]:
    """What a snapshot keeps of the recommendations: each one as of the snapshot, with the public
    figures of its linked measures since its date (the annex reads these back)."""
    return [{**public(s), "figures": followed(records, s, as_of=as_of, disclosure_level="public")}
            for s in sorted(states, key=sort_key)]
