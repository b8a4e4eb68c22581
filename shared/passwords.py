"""Passwords: argon2id hashes (older werkzeug scrypt/pbkdf2 hashes still verify and are replaced
at the next login), a dummy verification that costs what a real one costs, and the rules a new
password must meet, as error codes with one English message each."""

from __future__ import annotations

import functools
import logging
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from werkzeug.security import check_password_hash
from zxcvbn import zxcvbn

log = logging.getLogger(__name__)

# OWASP's Password Storage Cheat Sheet's argon2id setting of 19 MiB, 2 passes, 1 lane: about 25 ms
# on this project's 2-core machines, where argon2-cffi's default (64 MiB, 3 passes, 4 lanes) takes
# 200-600 ms and 64 MiB per login in flight. Hashes made with other parameters verify and are
# replaced at the next successful login (check_needs_rehash).
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16)

LEGACY_PREFIXES = ("scrypt:", "pbkdf2:")  # werkzeug.security.generate_password_hash
ARGON2_PREFIX = "$argon2"

MIN_LENGTH = 12
MAX_LENGTH = 256
# zxcvbn's estimate of the guesses an attacker needs, below which a password counts as common:
# zxcvbn scores 0 and 1, i.e. one of its 30,000 most common passwords (or an English word, a
# name), alone or with a few digits added, a repeat ("aaaaaaaaaaaa"), a sequence
# ("123456789012"), a keyboard walk ("qwertyuiop12"), a date, or the username.
COMMON_GUESSES = 10 ** 6
ZXCVBN_MAX_LENGTH = 72  # zxcvbn refuses longer input (and is slow on it); it judges the first 72

# The rules a password must meet, by error code; routes and forms show the message.
MESSAGES = {
    "too_short": f"Use at least {MIN_LENGTH} characters.",
    "too_long": f"Use at most {MAX_LENGTH} characters.",
    "equals_username": "Do not use your username as your password, nor build the password around it.",
    "common": "This password is too common or too easy to guess; choose a longer phrase of unusual words.",
}

# zxcvbn keeps the user inputs of a call in a module-level dictionary, so two threads estimating
# at once could judge a password against the other thread's username.
_zxcvbn_lock = threading.Lock()


def hash_password(password: str) -> str:
    """An argon2id hash of the password, to store."""
    return HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(True, new hash or None) if the password matches the stored hash, else (False, None).

    The new hash is an argon2id hash to store in place of the old one: given when the stored one
    is a werkzeug scrypt/pbkdf2 hash, or an argon2 hash with other parameters than ours.
    """
    if not stored_hash:
        dummy_verify(password)
        return False, None
    if stored_hash.startswith(ARGON2_PREFIX):
        try:
            HASHER.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):  # a mismatch, or a hash argon2 cannot read
            return False, None
        return True, (hash_password(password) if HASHER.check_needs_rehash(stored_hash) else None)
    if stored_hash.startswith(LEGACY_PREFIXES):
        try:
            ok = check_password_hash(stored_hash, password)
        except ValueError:  # a malformed legacy hash
            ok = False
        return (True, hash_password(password)) if ok else (False, None)
    log.warning("a stored password hash has an unknown format; refusing the login")
    dummy_verify(password)
    return False, None


@functools.cache
def _dummy_hash() -> str:
    return HASHER.hash(secrets.token_urlsafe(24))


def dummy_verify(password: str) -> None:
    """Verify the password against a hash no password matches, at the cost of a real
    verification: for logins with an unknown username, so that they take as long as a wrong
    password does."""
    try:
        HASHER.verify(_dummy_hash(), password)
    except VerificationError:
        pass


def password_problems(password: str, username: str = "") -> list[str]:
    """The codes (keys of MESSAGES) of the rules a new password breaks, [] if none.

    `equals_username`: the password contains the username (ignoring case) and, with every
    occurrence of it taken out, has fewer than MIN_LENGTH characters left; so "Alice",
    "alice2024!!!" and "aliceALICEalice" are refused for alice, while a long phrase that merely
    contains a short username is not. `common`: zxcvbn estimates fewer than COMMON_GUESSES
    guesses, with the username as a word it knows (so variants of it, reversed or in leetspeak,
    count too).
    """
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append("too_short")
    if len(password) > MAX_LENGTH:
        problems.append("too_long")
    name = (username or "").strip().casefold()
    folded = password.casefold()
    if name and name in folded and len(folded.replace(name, "")) < MIN_LENGTH:
        problems.append("equals_username")
    if password and _estimated_guesses(password, name) < COMMON_GUESSES:
        problems.append("common")
    return problems


def _estimated_guesses(password: str, username: str) -> float:
    with _zxcvbn_lock:
        return zxcvbn(password[:ZXCVBN_MAX_LENGTH], user_inputs=[username] if username else [])["guesses"]


def problem_messages(codes: list[str]) -> list[str]:
    """The English message of each problem code, in order."""
    return [MESSAGES[code] for code in codes]
