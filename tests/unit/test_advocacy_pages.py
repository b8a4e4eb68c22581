"""The advocacy pages' words: time left as people read it, case ids as typed, and the domain's
refusals each said by the page (values as words: tests/unit/test_words.py)."""

import datetime as dt
import inspect

import pytest

from services.advocacy import domain, handlers, web
from services.advocacy.app import create_app
from tests.support import offline_app


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The advocacy app; nothing here touches a database."""
    return offline_app(create_app, tmp_path_factory.mktemp("var"))


@pytest.mark.parametrize("lang, left, said", [
    ("en", dt.timedelta(hours=4, minutes=59, seconds=50), "in 5 hours"),
    ("en", -dt.timedelta(hours=2, seconds=3), "overdue by 2 hours"),
    ("en", dt.timedelta(hours=23, minutes=50), "in 24 hours"),
    ("en", dt.timedelta(seconds=20), "in 1 minute"),
    ("ko", dt.timedelta(hours=5), "5시간 후"),
    ("ko", -dt.timedelta(hours=2), "기한 2시간 지남"),
])
def test_the_time_left_reads_as_people_say_it(app, lang, left, said):
    with app.test_request_context("/", headers={"Accept-Language": lang}):
        assert web.time_left_text(left) == said
    assert web.time_left_text(None) is None


def test_case_ids_are_read_one_per_line_or_separated_by_commas():
    assert web.split_case_ids(" a1,b2\r\nc3 ;d4\n\n, e5 ") == ["a1", "b2", "c3", "d4", "e5"]
    assert web.split_case_ids(" \n, ") == []


def test_each_refusal_the_pages_translate_is_one_the_domain_still_makes():
    source = inspect.getsource(domain) + inspect.getsource(handlers)
    for start, _field, _msgid in web.NOT_ALLOWED:
        assert start in source, start
