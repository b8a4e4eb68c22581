"""The rules about people that every service shares."""

import datetime as dt

import pytest
from marshmallow import ValidationError

from shared.people import AGE_GROUPS, age_group, not_future


@pytest.mark.parametrize("birth_year, group", [(2022, "0-4"), (2020, "0-4"), (2019, "5-11"), (2013, "5-11"),
                                               (2012, "12-17"), (2007, "12-17"), (2006, "18-59"), (1965, "18-59"),
                                               (1964, "60+"), (None, "unknown")])
def test_unhcr_age_groups_in_a_year(birth_year, group):
    assert age_group(birth_year, 2024) == group
    assert group in AGE_GROUPS


def test_a_business_date_may_be_today_but_not_tomorrow():
    not_future(dt.date.today())
    not_future(None)
    with pytest.raises(ValidationError):
        not_future(dt.date.today() + dt.timedelta(days=1))
