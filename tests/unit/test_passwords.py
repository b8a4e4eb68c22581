"""Password hashing (argon2id, old werkzeug hashes upgraded at login) and the rules for new passwords."""

from __future__ import annotations

import argon2
import pytest
from werkzeug.security import generate_password_hash

from shared import passwords
from shared.passwords import (MESSAGES, dummy_verify, hash_password, password_problems, problem_messages,
                              verify_password)


def test_a_hash_is_argon2id_with_our_parameters_and_salted():
    first, second = hash_password("a long enough passphrase"), hash_password("a long enough passphrase")
    assert first.startswith("$argon2id$")
    assert first != second
    params = argon2.extract_parameters(first)
    assert (params.time_cost, params.memory_cost, params.parallelism) == (2, 19 * 1024, 1)


def test_the_right_password_verifies_and_needs_no_new_hash():
    stored = hash_password("a long enough passphrase")
    assert verify_password(stored, "a long enough passphrase") == (True, None)


def test_a_wrong_password_does_not_verify():
    stored = hash_password("a long enough passphrase")
    assert verify_password(stored, "a long enough passphrasE") == (False, None)


@pytest.mark.parametrize("method", ["scrypt", "pbkdf2"])
def test_an_old_werkzeug_hash_verifies_and_comes_back_as_argon2id(method):
    stored = generate_password_hash("an old but fine passphrase", method=method)
    assert stored.startswith(f"{method}:")
    ok, new_hash = verify_password(stored, "an old but fine passphrase")
    assert ok and new_hash.startswith("$argon2id$")
    assert verify_password(new_hash, "an old but fine passphrase") == (True, None)
    assert verify_password(stored, "another passphrase") == (False, None)


def test_an_argon2_hash_with_other_parameters_is_replaced_at_login():
    older = argon2.PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=2)
    stored = older.hash("some passphrase here")
    ok, new_hash = verify_password(stored, "some passphrase here")
    assert ok and new_hash != stored
    assert not passwords.HASHER.check_needs_rehash(new_hash)


@pytest.mark.parametrize("stored", [None, "", "plain-text-password", "md5$abc", "$argon2id$broken",
                                    "scrypt:32768:8:1$salt$nothex", "pbkdf2:sha256:x$salt$00"])
def test_a_missing_or_unreadable_hash_never_verifies(stored):
    assert verify_password(stored, "plain-text-password") == (False, None)


def test_dummy_verification_costs_what_a_real_one_costs():
    # Same parameters, same work: argon2's cost depends on its parameters, not on the password.
    dummy_verify("anything")
    assert argon2.extract_parameters(passwords._dummy_hash()) == argon2.extract_parameters(hash_password("x"))
    assert dummy_verify("anything") is None


@pytest.mark.parametrize("password", ["aaaaaaaaaaaa", "password1234", "qwertyuiop12", "123456789012",
                                      "Password1234", "iloveyou2024", "qwerty123456", "1q2w3e4r5t6y",
                                      "letmein12345", "a" * 100])
def test_common_passwords_are_refused(password):
    assert "common" in password_problems(password, "someone")


@pytest.mark.parametrize("password", ["Seoul rain in the late autumn", "integration-password-1",
                                      "test-admin-password-0001", "Tr0ub4dor&3xyz", "kim-loves-the-sea-2024",
                                      "x7#Qm2!vLp9z"])
def test_uncommon_passwords_are_accepted(password):
    assert password_problems(password, "kim") == []


def test_short_and_long_passwords_are_refused():
    assert "too_short" in password_problems("Tr0ub4dor&3", "someone")
    assert "too_short" not in password_problems("Tr0ub4dor&3x", "someone")
    long = "correct horse battery staple " * 9
    assert "too_long" in password_problems(long[:257], "someone")
    assert "too_long" not in password_problems(long[:256], "someone")


@pytest.mark.parametrize("password", ["caseworker-7", "CASEWORKER-7", "Caseworker-7!!", "caseworker-72025",
                                      "caseworker-7caseworker-7"])
def test_the_username_or_a_password_built_around_it_is_refused(password):
    assert "equals_username" in password_problems(password, "caseworker-7")


def test_a_long_phrase_that_merely_contains_a_short_username_is_accepted():
    assert password_problems("kim walks to the harbour at dawn", "kim") == []
    assert "equals_username" not in password_problems("short", "kim")  # only too short (and common)


def test_the_username_in_leetspeak_counts_as_common_for_that_user():
    assert "common" in password_problems("4l3x4ndr4-99", "alexandra")
    assert "common" not in password_problems("4l3x4ndr4-99", "someone")


def test_every_code_has_a_message():
    codes = {code for pw, user in [("a", "a"), ("x" * 300, "x"), ("password1234", "")]
             for code in password_problems(pw, user)}
    assert codes == set(MESSAGES) == {"too_short", "too_long", "equals_username", "common"}
    assert problem_messages(["too_short", "common"]) == [MESSAGES["too_short"], MESSAGES["common"]]
    assert all(isinstance(message, str) and message.endswith(".") for message in MESSAGES.values())
