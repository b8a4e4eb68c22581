"""The report form's validation messages in the page's language, numbers included."""

import datetime as dt

import pytest
from marshmallow import ValidationError, validate

from services.intake.app import create_app
from services.intake.schemas import ReportIn
from shared.errors import flatten_messages
from shared.forms import NUMBERED_MESSAGES, translate_message
from tests.support import SYNTH, offline_app, synthetic_report

THIS_YEAR = dt.date.today().year


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The intake app; nothing here touches a database."""
    return offline_app(create_app, tmp_path_factory.mktemp("var"))


def form_errors(app, lang: str, body: dict) -> dict[str, list[str]]:
    """The errors the new-report page shows for `body`, for a reader of `lang`."""
    with pytest.raises(ValidationError) as err:
        ReportIn().load(body)
    with app.test_request_context("/reports/new", headers={"Accept-Language": lang}):
        return {field: [translate_message(m) for m in messages]
                for field, messages in flatten_messages(err.value.messages).items()}


def too_long_report() -> dict:
    """A synthetic report whose birth year and lengths are out of bounds."""
    return synthetic_report(person={"birth_year": 1899, "full_name": f"{SYNTH} " + "x" * 200},
                            detention={"province": "J" * 65}, notes=f"{SYNTH} " + "n" * 10000)


def test_messages_with_numbers_are_korean_on_a_korean_page(app):
    errors = form_errors(app, "ko", too_long_report())
    assert errors["person.birth_year"] == [f"1900에서 {THIS_YEAR} 사이여야 합니다."]
    assert errors["person.full_name"] == ["1자에서 200자 사이여야 합니다."]
    assert errors["detention.province"] == ["1자에서 64자 사이여야 합니다."]
    assert errors["notes"] == ["최대 10000자까지 입력할 수 있습니다."]


def test_the_same_messages_stay_as_the_schema_words_them_in_english(app):
    errors = form_errors(app, "en", too_long_report())
    assert errors["person.birth_year"] == [f"Must be between 1900 and {THIS_YEAR}."]
    assert errors["person.full_name"] == ["Length must be between 1 and 200."]
    assert errors["detention.province"] == ["Length must be between 1 and 64."]
    assert errors["notes"] == ["Longer than maximum length 10000."]


@pytest.mark.parametrize("validator, value, korean", [
    (validate.Length(min=3), "ab", "최소 3자 이상이어야 합니다."),
    (validate.Length(equal=2), "abc", "정확히 2자여야 합니다."),
    (validate.Length(max=5), "abcdef", "최대 5자까지 입력할 수 있습니다."),
    (validate.Range(min=1, max=100000), 0, "1 이상 100000 이하여야 합니다."),
    (validate.Range(min=1), 0, "1 이상이어야 합니다."),
    (validate.Range(max=-2), 5, "-2 이하여야 합니다."),
    (validate.Range(min=0.5, max=1.5), 2, "0.5 이상 1.5 이하여야 합니다."),
])
def test_marshmallows_own_wording_of_limits_is_recognised(app, validator, value, korean):
    with pytest.raises(ValidationError) as err:
        validator(value)
    (message,) = err.value.messages
    with app.test_request_context("/", headers={"Accept-Language": "ko"}):
        assert translate_message(message) == korean
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert translate_message(message) == message


def test_every_message_with_numbers_has_a_korean_translation(app):
    numbers = {"min": 1, "max": 9, "equal": 5}
    with app.test_request_context("/", headers={"Accept-Language": "ko"}):
        for msgid in NUMBERED_MESSAGES:
            english = msgid % numbers
            assert translate_message(english) != english, msgid


def test_a_message_that_only_looks_numbered_is_left_alone(app):
    with app.test_request_context("/", headers={"Accept-Language": "ko"}):
        assert translate_message("Must be between friends.") == "Must be between friends."
        assert translate_message("Must be between 1 and 2. And more.") == "Must be between 1 and 2. And more."
