"""Rules about people that every service applies the same way (no identifying data here)."""

from __future__ import annotations

import datetime as dt

from marshmallow import ValidationError

AGE_GROUPS = ("0-4", "5-11", "12-17", "18-59", "60+", "unknown")  # UNHCR's standard groups


def age_group(birth_year: int | None, year: int) -> str:
    """UNHCR's age group of someone born in `birth_year`, in `year` (unknown without a birth year)."""
    if birth_year is None:
        return "unknown"
    age = year - birth_year
    for upper, label in ((4, "0-4"), (11, "5-11"), (17, "12-17"), (59, "18-59")):
        if age <= upper:
            return label
    return "60+"


def not_future(value: dt.date | None) -> None:
    """Schema validator: a business date cannot be after today."""
    if value is not None and value > dt.date.today():
        raise ValidationError("Must not be in the future.")
