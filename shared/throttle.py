"""Login throttling, counted across every process that shares the identity database: at most
`login_attempts_per_minute` attempts per username and per client address, a lock on a username
after `login_failures_before_lock` consecutive failures that doubles with each further failure (up
to an hour), and a lock on an address that fails too often across usernames.

The caller calls `check` before it verifies a password (so a locked account is refused even with
the right password), then `record_failure` or `record_success`. Nothing here looks the user up:
an unknown username is throttled exactly like a known one.

How it is stored, and why so: FerretDB 1.24 (v1, SQLite) does not make an update atomic, not even
a plain `$inc` (measured: 8 threads x 50 `$inc` on one document stored 45, with or without
upsert), and it has no TTL indexes (`expireAfterSeconds` is "not implemented yet"). An insert
with a unique `_id` is atomic, and a lookup by `_id` is the one query that does not scan the
collection. So every counted event is the insert of a numbered slot, `<counter>:0`, `<counter>:1`,
..., taking the lowest free number (a duplicate key means someone else took it: try the next),
and a count is the number of slots taken, found by probing `_id`s (a galloping search, so about
2 log2(n) lookups; slots are only ever taken in order, so the taken ones are always 0..n-1).
Counters live in time windows and expire whole; expired documents are deleted at most every
PRUNE_EVERY_SECONDS by one process. The collection holds no username and no address, only
SHA-256 digests of them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import ipaddress
import logging
import math
import secrets
import unicodedata

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.config import Settings

log = logging.getLogger(__name__)

COLLECTION = "login_throttle"
RATE_WINDOW_SECONDS = 60  # attempts are counted per calendar minute
LOCK_CAP_SECONDS = 3600.0  # a lock doubles with each further failure up to this
# A username's failures are counted in buckets of this length, the current one and the one
# before: failures are forgotten one to two days after the last of them (or at a success).
USERNAME_MEMORY_SECONDS = 24 * 3600
# An address's failures (across usernames; a success does not clear them) over one to two hours,
# so that an office behind one address is not locked out for long by its people's typos.
ADDRESS_MEMORY_SECONDS = 3600
ADDRESS_FAILURES_FACTOR = 4  # an address is locked after this many times a username's threshold
PRUNE_EVERY_SECONDS = 600

UTC = dt.timezone.utc


class Throttled(Exception):
    """Refused without checking the password: too many attempts or failures; try again after
    `retry_after_seconds` (at least 1). `reason` is for logs: "username_locked",
    "address_locked" or "rate"."""

    def __init__(self, retry_after_seconds: int, reason: str = "rate"):
        super().__init__(f"too many login attempts ({reason}); retry after {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Policy:
    """The numbers throttling works with (from Settings)."""

    failures_before_lock: int = 5
    lock_seconds: float = 30.0
    attempts_per_minute: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> "Policy":
        """The policy of NRW_LOGIN_FAILURES_BEFORE_LOCK, NRW_LOGIN_LOCK_SECONDS and
        NRW_LOGIN_ATTEMPTS_PER_MINUTE."""
        return cls(failures_before_lock=settings.login_failures_before_lock,
                   lock_seconds=settings.login_lock_seconds,
                   attempts_per_minute=settings.login_attempts_per_minute)

    @property
    def address_failures_before_lock(self) -> int:
        """Failures from one address, across usernames, before the address is locked."""
        return ADDRESS_FAILURES_FACTOR * self.failures_before_lock


@functools.cache
def _policy_from_env() -> Policy:
    return Policy.from_settings(Settings.from_env())


# --- pure rules -------------------------------------------------------------------------------

def lock_seconds(failures: int, threshold: int, base: float, cap: float = LOCK_CAP_SECONDS) -> float:
    """How long a lock lasts after the `failures`-th consecutive failure: none below the
    threshold, `base` at it, doubling with each further failure, never more than `cap`."""
    if failures < threshold:
        return 0.0
    return min(cap, base * 2 ** min(failures - threshold, 64))


def retry_after(until: float, now: float) -> int:
    """Whole seconds from now until `until` (epoch seconds), at least 1."""
    return max(1, math.ceil(until - now))


def normalise_username(username: str) -> str:
    """The username as the throttle counts it: NFKC, trimmed, case-folded ("Admin " is "admin")."""
    return unicodedata.normalize("NFKC", username or "").strip().casefold()


def normalise_address(address: str | None) -> str:
    """The client address as the throttle counts it: an IPv4 address; an IPv6 address as its /64
    network (what one subscriber usually has whole); an IPv4-mapped IPv6 address as IPv4."""
    text = (address or "").strip()
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text.lower()[:100] or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def username_key(username: str) -> str:
    """The digest a username is counted under (SHA-256 of its normalised form)."""
    return hashlib.sha256(b"nrw-login-username\0" + normalise_username(username).encode()).hexdigest()


def address_key(address: str | None) -> str:
    """The digest a client address is counted under (SHA-256 of its normalised form)."""
    return hashlib.sha256(b"nrw-login-address\0" + normalise_address(address).encode()).hexdigest()


def bucket_of(now: float, length: float) -> int:
    """The number of the time bucket of `length` seconds that `now` (epoch seconds) falls in."""
    return int(now // length)


def _seconds(now: dt.datetime) -> float:
    return (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()


def _datetime(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, UTC)


# --- slots: counters made of inserts ----------------------------------------------------------

def _slot(coll: Collection, counter: str, number: int) -> dict | None:
    return coll.find_one({"_id": f"{counter}:{number}"}, {"at": 1})


def _taken(coll: Collection, counter: str, cap: int | None = None) -> tuple[int, dict | None]:
    """How many slots of a counter are taken (at most `cap`), and the last of them."""
    if cap is not None and cap <= 0:
        return 0, None
    last = _slot(coll, counter, 0)
    if last is None:
        return 0, None
    low, high = 0, 1  # slot `low` is taken; `high` is the next to probe
    while cap is None or high < cap:
        doc = _slot(coll, counter, high)
        if doc is None:
            break
        low, last, high = high, doc, high * 2
    else:
        high = cap  # every slot below cap may be taken: search up to it
    while high - low > 1:  # low taken, high free (or the cap)
        middle = (low + high) // 2
        doc = _slot(coll, counter, middle)
        if doc is None:
            high = middle
        else:
            low, last = middle, doc
    return low + 1, last


def _take(coll: Collection, counter: str, at: float, expires: float,
          limit: int | None = None) -> int | None:
    """Take the lowest free slot of a counter; its number, or None if `limit` slots are taken."""
    number, _ = _taken(coll, counter, limit)
    while limit is None or number < limit:
        try:
            coll.insert_one({"_id": f"{counter}:{number}", "at": _datetime(at), "expires": _datetime(expires)})
            return number
        except DuplicateKeyError:
            number += 1
    return None


# --- counters ---------------------------------------------------------------------------------

def _generation(coll: Collection, user: str) -> str:
    """The username's current run of failures: a new one starts at each success."""
    doc = coll.find_one({"_id": f"reset:u:{user}"}, {"gen": 1})
    return doc["gen"] if doc else "0"


def _failures(coll: Collection, counter: str, now: float, memory: float) -> tuple[int, float | None]:
    """Failures counted in this bucket and the one before, and when the last one happened."""
    bucket = bucket_of(now, memory)
    current, last_current = _taken(coll, f"{counter}:{bucket}")
    earlier, last_earlier = _taken(coll, f"{counter}:{bucket - 1}")
    last = last_current or last_earlier
    if last is None:
        return 0, None
    at = last["at"]
    return current + earlier, (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _locked_until(coll: Collection, counter: str, now: float, memory: float, threshold: int,
                  policy: Policy) -> float | None:
    count, last_at = _failures(coll, counter, now, memory)
    if last_at is None or count < threshold:
        return None
    until = last_at + lock_seconds(count, threshold, policy.lock_seconds)
    return until if until > now else None


def _record(coll: Collection, counter: str, now: float, memory: float) -> int:
    """Count one failure; the number of failures counted now (this bucket and the one before)."""
    bucket = bucket_of(now, memory)
    number = _take(coll, f"{counter}:{bucket}", now, (bucket + 2) * memory)
    earlier, _ = _taken(coll, f"{counter}:{bucket - 1}")
    return earlier + number + 1


_pruned_period = {"last": None}


def _maybe_prune(coll: Collection, now: float) -> None:
    """Delete expired documents, once per PRUNE_EVERY_SECONDS across all processes (FerretDB has
    no TTL index): the process that inserts the period's marker does it."""
    period = bucket_of(now, PRUNE_EVERY_SECONDS)
    if _pruned_period["last"] is not None and period <= _pruned_period["last"]:
        return
    _pruned_period["last"] = period
    try:
        coll.insert_one({"_id": f"prune:{period}", "at": _datetime(now),
                         "expires": _datetime((period + 2) * PRUNE_EVERY_SECONDS)})
    except DuplicateKeyError:
        return  # another process prunes this period
    deleted = coll.delete_many({"expires": {"$lt": _datetime(now)}}).deleted_count
    log.info("login throttle: deleted %s expired documents", deleted)


# --- the API ----------------------------------------------------------------------------------

def check(db: Database, username: str, address: str | None, now: dt.datetime, *,
          policy: Policy | None = None) -> None:
    """Count a login attempt for the username and the address; raise Throttled if either is
    locked or has used up this minute's attempts. Call it before verifying the password."""
    policy = policy or _policy_from_env()
    coll, t = db[COLLECTION], _seconds(now)
    _maybe_prune(coll, t)
    user, addr = username_key(username), address_key(address)
    locks = {
        "username_locked": _locked_until(coll, f"fail:u:{user}:{_generation(coll, user)}", t,
                                         USERNAME_MEMORY_SECONDS, policy.failures_before_lock, policy),
        "address_locked": _locked_until(coll, f"fail:a:{addr}", t, ADDRESS_MEMORY_SECONDS,
                                        policy.address_failures_before_lock, policy),
    }
    until, reason = max(((u, r) for r, u in locks.items() if u is not None), default=(None, None))
    if until is not None:
        raise Throttled(retry_after(until, t), reason)
    window = bucket_of(t, RATE_WINDOW_SECONDS)
    window_end = (window + 1) * RATE_WINDOW_SECONDS
    # The address is charged only for attempts the username's count let through, so that
    # attempts refused for one username do not use up the quota of everyone behind an address.
    for counter in (f"rate:u:{user}:{window}", f"rate:a:{addr}:{window}"):
        if _take(coll, counter, t, window_end + RATE_WINDOW_SECONDS, policy.attempts_per_minute) is None:
            raise Throttled(retry_after(window_end, t), "rate")


def record_failure(db: Database, username: str, address: str | None, now: dt.datetime, *,
                   policy: Policy | None = None) -> dict[str, float]:
    """Count a failed login (wrong password, unknown user, wrong second factor) against the
    username's consecutive failures and the address's failures. Returns the locks this failure
    starts, {"username_locked" | "address_locked": seconds} (attempts while locked are refused
    before they are counted, so each lock is started, and reported, once)."""
    policy = policy or _policy_from_env()
    coll, t = db[COLLECTION], _seconds(now)
    user, addr = username_key(username), address_key(address)
    locks = {}
    failures = _record(coll, f"fail:u:{user}:{_generation(coll, user)}", t, USERNAME_MEMORY_SECONDS)
    if failures >= policy.failures_before_lock:
        locks["username_locked"] = lock_seconds(failures, policy.failures_before_lock, policy.lock_seconds)
        log.warning("login throttle: username %s… locked for %.0f s after %s consecutive failures", user[:8],
                    locks["username_locked"], failures)
    failures = _record(coll, f"fail:a:{addr}", t, ADDRESS_MEMORY_SECONDS)
    if failures >= policy.address_failures_before_lock:
        locks["address_locked"] = lock_seconds(failures, policy.address_failures_before_lock, policy.lock_seconds)
        log.warning("login throttle: address %s locked for %.0f s after %s failures",
                    normalise_address(address), locks["address_locked"], failures)
    return locks


def record_success(db: Database, username: str, address: str | None, now: dt.datetime, *,
                   policy: Policy | None = None) -> None:
    """A successful login: the username's consecutive failures start again from zero (the
    address's failures and both attempt counts stay)."""
    coll, t = db[COLLECTION], _seconds(now)
    user = username_key(username)
    # No `expires`: only a real user's login writes this, so there is at most one per user; were
    # it deleted, the failures counted since would be forgotten with it.
    doc = {"gen": secrets.token_hex(8), "at": _datetime(t)}
    try:
        coll.replace_one({"_id": f"reset:u:{user}"}, doc, upsert=True)
    except DuplicateKeyError:  # a concurrent success inserted it first: last writer wins
        coll.replace_one({"_id": f"reset:u:{user}"}, doc)
