"""What the services' forms share: a schema's validation messages in the page's language, and
marshmallow's errors as the fields of a form (the pages load with the API's own schemas)."""

from __future__ import annotations

import re

from flask_babel import gettext as _
from marshmallow import ValidationError

from shared.errors import flatten_messages
from shared.i18n import N_

# The validation messages people meet, so that extraction puts them in the catalog; messages
# with numbers in them (a range, a length) are in NUMBERED_MESSAGES below.
N_("Missing data for required field.")
N_("Not a valid integer.")
N_("Not a valid date.")
N_("Not a valid list.")
N_("Not a valid string.")
N_("Unknown field.")
N_("Field may not be null.")
N_("Must not be in the future.")

# Messages with numbers in them, worded as the schemas (ours and marshmallow's validators) word
# them, with a placeholder where the number goes: the page finds the numbers and translates.
NUMBERED_MESSAGES = (
    N_("Must be between %(min)s and %(max)s."),
    N_("Length must be between %(min)s and %(max)s."),
    N_("Longer than maximum length %(max)s."),
    N_("Shorter than minimum length %(min)s."),
    N_("Length must be %(equal)s."),
    N_("Must be greater than or equal to %(min)s and less than or equal to %(max)s."),
    N_("Must be greater than or equal to %(min)s."),
    N_("Must be less than or equal to %(max)s."),
)


def _numbered_pattern(msgid: str) -> re.Pattern:
    """A regex matching the message `msgid` stands for, a number in place of each %(name)s."""
    return re.compile(re.sub(r"%\\\(([a-z]+)\\\)s", r"(?P<\1>-?\\d+(?:\\.\\d+)?)", re.escape(msgid)))


NUMBERED_PATTERNS = tuple((msgid, _numbered_pattern(msgid)) for msgid in NUMBERED_MESSAGES)


def translate_message(message: str) -> str:
    """A schema's message in the page's language, where the catalog has it."""
    if message.startswith("Must be one of:"):
        return _("Choose one of the options.")
    for msgid, pattern in NUMBERED_PATTERNS:
        found = pattern.fullmatch(message)
        if found:
            return _(msgid, **found.groupdict())
    return _(message)


def form_errors(exc: ValidationError, field_of=lambda path: path) -> dict[str, list[str]]:
    """marshmallow's errors as {form field: [messages in the page's language]}; `field_of` maps a
    dotted error path (e.g. "case_ids.3", an item of a list) to the form field it belongs to."""
    errors: dict[str, list[str]] = {}
    for path, messages in flatten_messages(exc.messages).items():
        bucket = errors.setdefault(field_of(path), [])
        bucket.extend(m for m in (translate_message(m) for m in messages) if m not in bucket)
    return errors


def password_message(message: str) -> str:
    """A password rule's message (shared/passwords.py, by its code) in the page's language."""
    from shared import passwords

    worded = {
        "too_short": lambda: _("Use at least %(count)s characters.", count=passwords.MIN_LENGTH),
        "too_long": lambda: _("Use at most %(count)s characters.", count=passwords.MAX_LENGTH),
        "equals_username": lambda: _("Do not use the username as the password, nor build the password around it."),
        "common": lambda: _("This password is too common or too easy to guess; choose a longer phrase of "
                            "unusual words."),
    }
    code = next((c for c, m in passwords.MESSAGES.items() if m == message), message)
    return worded[code]() if code in worded else translate_message(message)
