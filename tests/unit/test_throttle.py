"""Login throttling's rules: how locks grow, what counts as the same username or address, and what
is stored in place of them. Storage and concurrency are tested against FerretDB in
tests/integration/test_throttle.py."""

from __future__ import annotations

import hashlib

import pytest

from shared.config import Settings
from shared.throttle import (LOCK_CAP_SECONDS, Policy, Throttled, address_key, bucket_of, lock_seconds,
                             normalise_address, normalise_username, retry_after, username_key)


def test_no_lock_below_the_threshold():
    assert [lock_seconds(n, 5, 30.0) for n in range(5)] == [0.0] * 5


def test_the_lock_starts_at_the_base_and_doubles_with_each_further_failure():
    assert [lock_seconds(n, 5, 30.0) for n in range(5, 11)] == [30.0, 60.0, 120.0, 240.0, 480.0, 960.0]


def test_the_lock_is_capped_at_an_hour_however_many_failures():
    assert lock_seconds(12, 5, 30.0) == LOCK_CAP_SECONDS == 3600.0
    assert lock_seconds(10_000, 5, 30.0) == 3600.0
    assert lock_seconds(7, 5, 30.0, cap=100.0) == 100.0


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one():
    assert retry_after(100.2, 70.0) == 31
    assert retry_after(100.0, 70.0) == 30
    assert retry_after(100.0, 99.99) == 1
    assert retry_after(100.0, 100.0) == 1
    assert retry_after(100.0, 250.0) == 1


def test_throttled_carries_a_positive_retry_after_and_a_reason():
    exc = Throttled(42, "username_locked")
    assert (exc.retry_after_seconds, exc.reason) == (42, "username_locked")
    assert "42" in str(exc)


@pytest.mark.parametrize("typed", ["admin", "Admin", " ADMIN ", "ａｄｍｉｎ"])
def test_a_username_is_counted_whatever_its_case_spacing_or_width(typed):
    assert normalise_username(typed) == "admin"
    assert username_key(typed) == username_key("admin")


def test_a_username_is_stored_as_a_sha256_digest_only():
    key = username_key("jane.harrison")
    assert len(key) == 64 and int(key, 16) >= 0
    assert "jane" not in key
    assert key != hashlib.sha256(b"jane.harrison").hexdigest()  # domain-separated from a bare hash
    assert username_key("jane.harrison") != username_key("jane.harrisen")


def test_addresses_of_one_ipv6_subscriber_network_count_as_one():
    assert normalise_address("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert normalise_address("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert normalise_address("2001:db8:1:3::1") != normalise_address("2001:db8:1:2::1")
    assert normalise_address("fe80::1%eth0") == "fe80::/64"


def test_ipv4_addresses_count_one_by_one_also_when_mapped_into_ipv6():
    assert normalise_address("203.0.113.7") == "203.0.113.7"
    assert normalise_address("::ffff:203.0.113.7") == "203.0.113.7"
    assert normalise_address(" 203.0.113.7 ") == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == address_key("203.0.113.7") != address_key("203.0.113.8")


def test_a_missing_or_odd_address_is_still_counted():
    assert normalise_address(None) == normalise_address("") == "unknown"
    assert normalise_address("Some-Proxy") == "some-proxy"
    assert "203.0.113.7" not in address_key("203.0.113.7")


def test_time_buckets():
    assert bucket_of(0, 60) == 0
    assert bucket_of(59.999, 60) == 0
    assert bucket_of(60, 60) == 1
    assert bucket_of(1_700_000_123.5, 3600) == 472_222


def test_the_policy_comes_from_the_settings():
    policy = Policy.from_settings(Settings(login_failures_before_lock=3, login_lock_seconds=12.5,
                                           login_attempts_per_minute=7))
    assert policy == Policy(failures_before_lock=3, lock_seconds=12.5, attempts_per_minute=7)
    assert policy.address_failures_before_lock == 12
    assert Policy.from_settings(Settings()) == Policy()  # the defaults agree with Settings'
