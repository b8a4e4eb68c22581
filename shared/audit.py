"""Intake's audit trail as a hash chain: every entry is numbered, linked to the one before it and
sealed with an HMAC-SHA-256 under a key kept in a file (`audit.key`), never in a database.

An entry is its ordinary fields (at, user_id, username, report_id, case_id, reason, remote_addr,
what, action, ...) plus:

- `seq`: its position, 1, 2, 3, ... (the `_id` is the position zero-padded to 12 digits, so two
  writers can never take the same position: an insert with a unique `_id` is atomic on FerretDB v1,
  where updates are not isolated);
- `prev`: the link to the entry before it: that entry's `mac` (64 zeros for position 1);
- `mac`: HMAC-SHA-256 of the canonical JSON of every field but `_id` and `mac` (so `seq` and
  `prev` included): the entry's content, its position and its predecessor, under the key.

Appending (`AuditTrail.append`): take the tail (position and MAC of the last entry), insert the
next position; on DuplicateKeyError another writer was first: read forward to the new tail and
try again. The tail is found from what this process last wrote or saw, else from the hint
`audit_head` (the highest position written; its lost updates only cost a few reads forward).

Verifying (`AuditTrail.verify`) reads every entry, orders the chained ones by `seq` and walks
positions 1..last (last = the highest `seq`, or the hint if higher: entries cut off the end are
missing too). Each position must hold exactly one entry whose MAC is valid and whose `prev` is the
MAC of the entry accepted just before. The first position that does not is reported as:

- `missing`: no entry holds the position (deleted), or the entry there has a valid MAC but links to
  an entry other than its predecessor (the link skips one);
- `reordered`: the entry's MAC is not valid at this position but is valid for the same content at
  another position: a genuine entry moved (two entries with their positions swapped);
- `changed`: the entry's MAC is valid at no position, and the entry stands where a genuine entry
  stood: the next entry links to its MAC (or, for the last one, it links to its predecessor and
  the position had been written): someone edited a genuine entry's fields;
- `inserted`: an entry that is not a genuine one of this chain: a second entry claiming a position
  already held by a valid one, an entry with a MAC valid at no position that nothing links to, an
  entry with a MAC but no position, or an entry without any MAC dated after the chain began.
  Without the key nobody can make a valid MAC, so what tells an insertion from a change is whether
  the chain still runs through the entry (its MAC is the link the next entry holds) or not.

Entries written before the chain existed have no MAC: they are not verified; the trail starts at
position 1, and the answer says how many such older entries there are (`unchained`, those dated
no later than the first chained entry). Truncation of the newest entries shows only as far as the
hint `audit_head` records them (it is in the database too, so someone who can write there can
lower it): compare `entries` with an earlier answer to be sure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

GENESIS = "0" * 64
MAX_ATTEMPTS = 200
HEAD_ID = "head"
PROBLEMS = ("changed", "missing", "inserted", "reordered")

# What this process last knew of each trail's tail: {(database, collection): (seq, mac)}.
_tails: dict[tuple[str, str], tuple[int, str]] = {}
_tails_lock = threading.Lock()


def entry_id(seq: int) -> str:
    """The `_id` of the entry at a position."""
    return f"{seq:012d}"


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)  # BSON keeps milliseconds
        return {"$date": value.isoformat(timespec="milliseconds")}
    if isinstance(value, ObjectId):
        return {"$oid": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    raise TypeError(f"an audit entry cannot hold {type(value).__name__}")


def canonical(body: dict) -> bytes:
    """The bytes a MAC covers: JSON with sorted keys, no spaces, datetimes in UTC to the millisecond."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain).encode()


def seal(key: bytes, body: dict) -> str:
    """The MAC of an entry's body (every field but `_id` and `mac`)."""
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def _body(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("_id", "mac")}


@dataclass
class _Seen:
    """What the walk keeps of one chained entry."""

    entry_id: Any
    seq: Any
    mac: Any
    prev: Any
    at: Any
    valid: bool  # the MAC is valid for the entry as stored (its own seq)


@dataclass
class Verification:
    """The answer of a walk along the chain."""

    ok: bool
    entries: int
    unchained: int
    first_bad: dict | None = None

    def as_dict(self) -> dict:
        out = {"ok": self.ok, "entries": self.entries, "unchained": self.unchained}
        if self.first_bad is not None:
            out["first_bad"] = self.first_bad
        return out


class AuditTrail:
    """The `audit` collection of a database as a chain (and `audit_head`, the hint of its tail)."""

    def __init__(self, db: Database, key: bytes, name: str = "audit"):
        if not key:
            raise ValueError("the audit key is empty")
        self.entries = db[name]
        self.head = db[f"{name}_head"]
        self.key = key
        self._cache_key = (db.name, name)

    # --- appending -----------------------------------------------------------------------------

    def _from_hint(self) -> tuple[int, str]:
        """The tail as far as the hint knows it (0 and the genesis link for an empty trail)."""
        hint = self.head.find_one({"_id": HEAD_ID})
        seq = int(hint["seq"]) if hint and isinstance(hint.get("seq"), int) else 0
        if seq:
            doc = self.entries.find_one({"_id": entry_id(seq)}, {"mac": 1})
            if doc is not None and isinstance(doc.get("mac"), str):
                return seq, doc["mac"]
        # No hint, or its entry is gone: the newest chained entry still there. A position the hint
        # recorded stays taken, so an entry removed from the end remains a gap.
        newest = next(iter(self.entries.find({"seq": {"$gte": 1}}, {"seq": 1, "mac": 1})
                           .sort("seq", -1).limit(1)), None)
        if newest is None:
            return seq, GENESIS
        return max(seq, int(newest["seq"])), str(newest.get("mac") or GENESIS)

    def _forward(self, seq: int, mac: str) -> tuple[int, str]:
        """Read forward from a known position to the last entry written."""
        while True:
            following = self.entries.find_one({"_id": entry_id(seq + 1)}, {"mac": 1})
            if following is None:
                return seq, mac
            seq, mac = seq + 1, str(following.get("mac") or GENESIS)

    def _remember(self, seq: int, mac: str) -> None:
        with _tails_lock:
            known = _tails.get(self._cache_key)
            if known is None or known[0] < seq:
                _tails[self._cache_key] = (seq, mac)

    def _note_head(self, seq: int) -> None:
        try:
            self.head.update_one({"_id": HEAD_ID}, {"$max": {"seq": seq}}, upsert=True)
        except DuplicateKeyError:  # a concurrent first upsert; once more over it
            self.head.update_one({"_id": HEAD_ID}, {"$max": {"seq": seq}}, upsert=True)

    def append(self, entry: dict) -> dict:
        """Append one entry (its fields as given, plus seq, prev and mac); the stored document."""
        if any(k in entry for k in ("seq", "prev", "mac")):
            raise ValueError("an audit entry's seq, prev and mac are the trail's to set")
        entry = {k: v for k, v in entry.items() if k != "_id"}  # its position is its _id
        known = _tails.get(self._cache_key)
        optimistic = known is not None  # try right after what this process last saw; read on conflict
        seq, mac = known if known else self._forward(*self._from_hint())
        for _ in range(MAX_ATTEMPTS):
            body = {**entry, "seq": seq + 1, "prev": mac}
            doc = {"_id": entry_id(seq + 1), **body, "mac": seal(self.key, body)}
            try:
                self.entries.insert_one(doc)
            except DuplicateKeyError:
                if optimistic:
                    optimistic = False
                    seq, mac = self._forward(*max(self._from_hint(), (seq, mac)))
                else:
                    seq, mac = self._forward(seq, mac)
                continue
            self._remember(doc["seq"], doc["mac"])
            self._note_head(doc["seq"])
            return doc
        raise RuntimeError(f"audit trail: gave up after {MAX_ATTEMPTS} conflicting appends")

    def append_many(self, entries: Iterable[dict]) -> list[dict]:
        """Append several entries, in order (each one a position of its own)."""
        return [self.append(e) for e in entries]

    # --- verifying -----------------------------------------------------------------------------

    def _valid_at(self, doc: dict, seq: int) -> bool:
        return hmac.compare_digest(seal(self.key, {**_body(doc), "seq": seq}), str(doc.get("mac")))

    def verify(self, progress: bool = False) -> Verification:
        """Walk the whole chain; the first entry that was changed, removed, inserted or reordered."""
        from tqdm import tqdm

        chained: list[_Seen] = []
        unchained_at: list[tuple[Any, Any]] = []
        total = self.entries.estimated_document_count() if progress else None
        for doc in tqdm(self.entries.find({}), total=total, desc="verifying the audit trail", unit="entry",
                        disable=not progress):
            if "mac" not in doc and "seq" not in doc and "prev" not in doc:
                unchained_at.append((doc.get("at"), doc["_id"]))
                continue
            seq = doc.get("seq")
            valid = (isinstance(seq, int) and isinstance(doc.get("mac"), str)
                     and hmac.compare_digest(seal(self.key, _body(doc)), doc["mac"]))
            chained.append(_Seen(doc["_id"], seq, doc.get("mac"), doc.get("prev"), doc.get("at"), valid))
        hint = self.head.find_one({"_id": HEAD_ID}) or {}
        return self._walk(chained, unchained_at, hint.get("seq") if isinstance(hint.get("seq"), int) else 0)

    def _walk(self, chained: list[_Seen], unchained_at: list[tuple[Any, Any]], hint: int) -> Verification:
        by_seq: dict[int, list[_Seen]] = {}
        no_position = []
        for seen in chained:
            if isinstance(seen.seq, int) and not isinstance(seen.seq, bool) and seen.seq >= 1:
                by_seq.setdefault(seen.seq, []).append(seen)
            else:
                no_position.append(seen)
        last = max([*by_seq, hint, 0])
        first = by_seq.get(1, [])
        start_at = _utc(first[0].at) if first else None
        # Entries without a MAC: older ones are the trail before the chain; newer ones were added.
        older = [u for u in unchained_at if start_at is None or (_utc(u[0]) is not None and _utc(u[0]) <= start_at)]
        added = [u for u in unchained_at if u not in older]
        result = Verification(ok=True, entries=len(chained), unchained=len(older))

        problems: list[tuple[int, int, dict]] = []  # (position, rank, first_bad); the lowest wins
        walked = self._first_break(by_seq, last, hint)
        if walked is not None:
            problems.append((walked["position"], 0, walked))
        for seen in no_position:
            problems.append((last + 1, 1, _bad(last + 1, seen.entry_id, "inserted")))
        for at, eid in added:
            when = _utc(at)
            later = [s for s, group in by_seq.items() if when is not None and _utc(group[0].at) is not None
                     and _utc(group[0].at) > when]
            position = min(later) if later else last + 1
            problems.append((position, 1, _bad(position, eid, "inserted")))
        if problems:
            result.ok = False
            result.first_bad = min(problems, key=lambda p: (p[0], p[1]))[2]
        return result

    def _first_break(self, by_seq: dict[int, list[_Seen]], last: int, hint: int) -> dict | None:
        expected = GENESIS
        accepted: dict[str, int] = {}  # mac -> position, of the entries accepted so far
        links = {}
        for group in by_seq.values():
            for seen in group:
                links.setdefault(seen.prev, seen)  # who links to a MAC (prev -> entry)
        for position in range(1, last + 1):
            group = by_seq.get(position, [])
            if not group:
                return _bad(position, None, "missing")
            genuine = [s for s in group if s.valid and s.prev == expected]
            if genuine:
                if len(group) > 1:
                    other = next(s for s in group if s is not genuine[0])
                    return _bad(position, other.entry_id, "inserted")
                expected = genuine[0].mac
                accepted[expected] = position
                continue
            seen = sorted(group, key=lambda s: s.entry_id != entry_id(position))[0]
            if len(group) > 1:
                return _bad(position, next(s for s in group if s is not seen).entry_id, "inserted")
            if seen.valid:  # a genuine entry of this position, linked elsewhere
                return _bad(position, seen.entry_id, "missing" if seen.prev in accepted else "inserted")
            doc = self.entries.find_one({"_id": seen.entry_id})
            if doc is not None and isinstance(doc.get("mac"), str):
                for q in _candidates(seen, accepted, by_seq):
                    if q != position and self._valid_at(doc, q):
                        return _bad(position, seen.entry_id, "reordered")
            successor = links.get(seen.mac)
            if successor is not None and successor is not seen:
                return _bad(position, seen.entry_id, "changed")
            if position == max(by_seq) and seen.prev == expected and position <= hint:
                return _bad(position, seen.entry_id, "changed")
            return _bad(position, seen.entry_id, "inserted")
        return None


def _candidates(seen: _Seen, accepted: dict[str, int], by_seq: dict[int, list]) -> Iterable[int]:
    """Positions where a moved entry may belong: after the entry it links to, then any position the
    trail holds or the one after its last (never more positions than entries: a forged huge `seq`
    or hint costs nothing)."""
    if seen.prev in accepted:
        yield accepted[seen.prev] + 1
    yield from sorted(by_seq)
    yield max(by_seq) + 1


def _bad(position: int, eid: Any, problem: str) -> dict:
    return {"position": position, "entry_id": None if eid is None else str(eid), "problem": problem}


def _utc(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def audit_trail(db: Database, settings=None) -> AuditTrail:
    """The audit trail of intake's database, under the key in `audit.key` (the settings of the
    running app unless given)."""
    from shared import keys

    if settings is None:
        from shared.web import resources
        settings = resources().settings
    return AuditTrail(db, keys.audit_key(settings))
