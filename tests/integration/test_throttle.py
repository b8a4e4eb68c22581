"""Login throttling against the real FerretDB: counts shared by every process, exact under
concurrency (FerretDB v1 loses concurrent `$inc`s, so the counters are made of inserts), locks
that grow, the same answers for unknown and known usernames, and a collection that is pruned."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import re
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor

import pytest

from shared import throttle
from shared.mongo_accounts import account_uri
from shared.throttle import COLLECTION, Policy, Throttled, check, record_failure, record_success

NOW = dt.datetime.now(dt.timezone.utc)


def later(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fresh_address() -> str:
    octets = uuid.uuid4().bytes
    return f"10.{octets[0]}.{octets[1]}.{octets[2]}"


@pytest.fixture
def db(mongo, settings):
    """The identity database, where the services keep the throttle's counts."""
    return mongo[settings.database_name("identity")]


def retry_after_of(db, username, address, now, policy) -> int | None:
    """Retry-After if check refuses the attempt now, else None."""
    try:
        check(db, username, address, now, policy=policy)
    except Throttled as exc:
        assert exc.retry_after_seconds >= 1
        return exc.retry_after_seconds
    return None


def run_in_threads(count: int, target) -> list:
    """Run target(i) in `count` threads started together; the exceptions they raised."""
    errors, start = [], threading.Barrier(count)

    def run(i):
        start.wait()
        try:
            target(i)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_concurrent_failures_are_all_counted(db):
    # Threshold 30, base 1 s: 40 failures lock for 2 ** 10 s exactly; one lost failure would halve it.
    policy = Policy(failures_before_lock=30, lock_seconds=1.0, attempts_per_minute=100)
    username = fresh("victim")

    errors = run_in_threads(8, lambda i: [record_failure(db, username, fresh_address(), NOW, policy=policy)
                                          for _ in range(5)])

    assert errors == []
    stored = db[COLLECTION].count_documents(
        {"_id": {"$regex": f"^fail:u:{re.escape(throttle.username_key(username))}:"}})
    assert stored == 40
    assert retry_after_of(db, username, fresh_address(), NOW, policy) == 1024


def fail_from_another_process(mongo_uri: str, database: str, username: str, times: int, policy: Policy,
                              now: dt.datetime) -> None:
    """What a gunicorn worker of another service does: its own client, its own failures."""
    from pymongo import MongoClient

    logging.getLogger("shared.throttle").setLevel(logging.ERROR)  # no lock warnings on the test's stderr
    client = MongoClient(mongo_uri, tz_aware=True)
    try:
        for _ in range(times):
            record_failure(client[database], username, fresh_address(), now, policy=policy)
    finally:
        client.close()


def test_failures_from_several_processes_are_all_counted(db, settings):
    policy = Policy(failures_before_lock=10, lock_seconds=1.0, attempts_per_minute=100)
    username = fresh("everywhere")
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = [pool.submit(fail_from_another_process, account_uri(settings, "intake"), db.name, username, 6, policy, NOW)
                for _ in range(3)]
        for run in runs:
            run.result(timeout=120)
    assert retry_after_of(db, username, fresh_address(), NOW, policy) == 2 ** (18 - 10)  # 17 would give 128


def test_concurrent_attempts_get_exactly_the_minute_s_allowance(db):
    policy = Policy(failures_before_lock=5, lock_seconds=30.0, attempts_per_minute=7)
    username, address = fresh("burst"), fresh_address()
    refused = []

    def attempt(_):
        if (seconds := retry_after_of(db, username, address, NOW, policy)) is not None:
            refused.append(seconds)

    assert run_in_threads(12, attempt) == []
    assert len(refused) == 12 - 7
    window_end = (int(NOW.timestamp()) // 60 + 1) * 60  # the end of this calendar minute
    assert set(refused) == {throttle.retry_after(window_end, NOW.timestamp())}
    assert all(1 <= seconds <= 60 for seconds in refused)
    assert retry_after_of(db, username, address, later(60), policy) is None  # a new minute


def test_the_attempts_of_one_address_are_limited_across_usernames(db):
    policy = Policy(failures_before_lock=5, lock_seconds=30.0, attempts_per_minute=3)
    address = fresh_address()
    answers = [retry_after_of(db, fresh("spray"), address, NOW, policy) for _ in range(4)]
    assert answers[:3] == [None] * 3 and 1 <= answers[3] <= 60
    assert retry_after_of(db, fresh("spray"), fresh_address(), NOW, policy) is None


def test_the_lock_starts_at_the_threshold_and_doubles(db):
    policy = Policy(failures_before_lock=3, lock_seconds=10.0, attempts_per_minute=20)
    username, address = fresh("grow"), fresh_address()
    for second in range(2):
        assert retry_after_of(db, username, address, later(second), policy) is None
        record_failure(db, username, address, later(second), policy=policy)
    assert retry_after_of(db, username, address, later(2), policy) is None
    record_failure(db, username, address, later(2), policy=policy)  # the third: locked 10 s

    assert retry_after_of(db, username, address, later(2), policy) == 10
    assert retry_after_of(db, username, fresh_address(), later(7), policy) == 5  # from anywhere
    assert retry_after_of(db, username, address, later(12.5), policy) is None
    record_failure(db, username, address, later(12.5), policy=policy)  # the fourth: 20 s
    assert retry_after_of(db, username, address, later(12.5), policy) == 20
    assert retry_after_of(db, username, address, later(33), policy) is None
    record_failure(db, username, address, later(33), policy=policy)  # the fifth: 40 s
    assert retry_after_of(db, username, address, later(33), policy) == 40


def test_the_lock_is_capped_at_an_hour(db):
    policy = Policy(failures_before_lock=1, lock_seconds=600.0, attempts_per_minute=20)
    username = fresh("cap")
    for _ in range(5):
        record_failure(db, username, fresh_address(), NOW, policy=policy)
    assert retry_after_of(db, username, fresh_address(), NOW, policy) == 3600


def test_unknown_and_known_usernames_are_throttled_alike(db):
    policy = Policy(failures_before_lock=2, lock_seconds=15.0, attempts_per_minute=20)
    known = fresh("known")
    db["users"].insert_one({"_id": known, "user_id": str(uuid.uuid4()), "roles": ["analyst"]})
    unknown = fresh("nobody")

    def story(username):
        address, answers = fresh_address(), []
        for second in (0, 1, 2, 20, 21, 50):
            answers.append(retry_after_of(db, username, address, later(second), policy))
            if answers[-1] is None:
                record_failure(db, username, address, later(second), policy=policy)
        return answers

    assert story(known) == story(unknown) == [None, None, 14, None, 29, None]


def test_a_success_starts_the_count_of_consecutive_failures_again(db):
    policy = Policy(failures_before_lock=3, lock_seconds=10.0, attempts_per_minute=20)
    username, address = fresh("forgetful"), fresh_address()
    for _ in range(2):
        record_failure(db, username, address, NOW, policy=policy)
    assert retry_after_of(db, username, address, NOW, policy) is None
    record_success(db, username, address, later(1))
    for _ in range(2):
        record_failure(db, username, address, later(2), policy=policy)
    assert retry_after_of(db, username, address, later(2), policy) is None
    record_failure(db, username, address, later(3), policy=policy)
    assert retry_after_of(db, username, address, later(3), policy) == 10


def test_a_locked_username_stays_locked_whatever_the_caller_would_have_found(db):
    # check is called before the password is verified: the right password gets the same 429.
    policy = Policy(failures_before_lock=2, lock_seconds=30.0, attempts_per_minute=20)
    username = fresh("locked")
    for _ in range(2):
        record_failure(db, username, fresh_address(), NOW, policy=policy)
    answers = [retry_after_of(db, username, fresh_address(), later(s), policy) for s in (0, 10, 29)]
    assert answers == [30, 20, 1]


def test_an_address_failing_across_usernames_is_locked_and_a_success_does_not_clear_it(db):
    policy = Policy(failures_before_lock=2, lock_seconds=30.0, attempts_per_minute=100)
    address = fresh_address()
    own = fresh("own")
    for _ in range(policy.address_failures_before_lock):  # 8, each username failing once
        record_failure(db, fresh("sprayed"), address, NOW, policy=policy)
    record_success(db, own, address, NOW)
    try:
        check(db, fresh("next"), address, NOW, policy=policy)
    except Throttled as exc:
        assert (exc.retry_after_seconds, exc.reason) == (30, "address_locked")
    else:
        pytest.fail("an address with 8 failures was not locked")
    assert retry_after_of(db, fresh("next"), fresh_address(), NOW, policy) is None


def test_the_settings_give_the_default_policy(db, settings):
    # NRW_LOGIN_FAILURES_BEFORE_LOCK etc. unset in the test stack: 5 failures, 30 s, 20 a minute.
    username, address = fresh("defaults"), fresh_address()
    for _ in range(settings.login_failures_before_lock):
        check(db, username, address, NOW)
        record_failure(db, username, address, NOW)
    assert retry_after_of(db, username, address, NOW, None) == int(settings.login_lock_seconds)


def test_the_collection_holds_no_username_and_no_address(db):
    username, address = fresh("Secret.Name"), "198.51.100.23"
    check(db, username, address, NOW, policy=Policy())
    record_failure(db, username, address, NOW, policy=Policy())
    record_success(db, username, address, NOW)
    text = " ".join(str(doc) for doc in db[COLLECTION].find())
    assert username.lower() not in text.lower() and address not in text


def test_expired_documents_are_deleted(mongo, settings, monkeypatch):
    db = mongo[settings.database_name(fresh("throttleprune").replace("-", ""))]
    monkeypatch.setattr(throttle, "_pruned_period", {"last": None})
    old = later(-3 * 24 * 3600)
    for _ in range(3):
        check(db, "someone", "192.0.2.1", old, policy=Policy())
        record_failure(db, "someone", "192.0.2.1", old, policy=Policy())
    record_success(db, "someone", "192.0.2.1", old)
    before = db[COLLECTION].count_documents({})

    check(db, "someone else", "192.0.2.2", NOW, policy=Policy())

    left = sorted(doc["_id"].split(":")[0] for doc in db[COLLECTION].find())
    assert before >= 10
    assert left == ["prune", "rate", "rate", "reset"]  # this period's marker and this attempt's counts
    mongo.drop_database(db.name)
