"""The form benchmark's pure helpers (bench/form.py): reading the CSRF token and the case link from a
page, and turning a report into the fields a browser posts."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from bench.form import case_link, csrf_token, report_form_fields
from services.intake.schemas import ReportIn
from services.intake.web import form_to_report
from tests.support import SYNTH, synthetic_report

LOGIN_PAGE = """<!doctype html><html><body>
<form method="post" action="/language"><input type="hidden" name="next" value="/reports/new"></form>
<form method="post">
  <input type="hidden" name="csrf_token" value="IjQ5ZTk.aB-c_d&amp;e">
  <input type="text" id="username" name="username" required autofocus>
  <input type="hidden" name="lang" value="en">
</form></body></html>"""


def test_the_csrf_token_is_the_hidden_inputs_value_with_entities_decoded():
    assert csrf_token(LOGIN_PAGE) == "IjQ5ZTk.aB-c_d&e"


def test_two_forms_with_the_same_token_are_fine_but_a_page_without_one_or_with_two_different_is_refused():
    twice = LOGIN_PAGE + '<form><input name="csrf_token" type="hidden" value="IjQ5ZTk.aB-c_d&amp;e"></form>'
    assert csrf_token(twice) == "IjQ5ZTk.aB-c_d&e"
    with pytest.raises(ValueError, match="no csrf_token"):
        csrf_token("<form><input name='username'></form>")
    with pytest.raises(ValueError, match="no csrf_token"):
        csrf_token('<input name="csrf_token" value="">')
    with pytest.raises(ValueError, match="ambiguous"):
        csrf_token(LOGIN_PAGE + '<input name="csrf_token" value="other">')


def test_the_case_link_gives_its_href_and_the_case_id():
    page = ('<p>Case: <a id="case-link" href="http://127.0.0.1:28002/cases/c-0a1b2c">c-0a1b2c</a></p>'
            '<a id="other" href="/cases/elsewhere">elsewhere</a>')
    assert case_link(page) == ("http://127.0.0.1:28002/cases/c-0a1b2c", "c-0a1b2c")


@pytest.mark.parametrize("page", [
    "<p>no link</p>",
    '<a id="case-link" href="http://127.0.0.1:28002/cases/">?</a>',
    '<a id="case-link" href="http://127.0.0.1:28002/cases/abc">xyz</a>',
])
def test_a_report_page_without_a_usable_case_link_is_refused(page):
    with pytest.raises(ValueError):
        case_link(page)


def test_the_posted_fields_are_what_a_browser_sends():
    report = synthetic_report(risk={"deportation_imminent": True, "expected_deportation_on": None,
                                    "vulnerabilities": ["minor", "ill"], "trafficking_victim": False},
                              consent={"advocacy": "anonymous", "statistics": False})
    fields = report_form_fields(report)
    names = [name for name, _ in fields]
    assert ("risk.deportation_imminent", "on") in fields
    assert "risk.trafficking_victim" not in names and "consent.statistics" not in names  # unticked boxes
    assert "risk.expected_deportation_on" not in names  # empty
    assert [v for n, v in fields if n == "risk.vulnerabilities"] == ["minor", "ill"]
    assert ("person.birth_year", str(report["person"]["birth_year"])) in fields
    assert ("notes", report["notes"]) in fields
    assert all(isinstance(v, str) for _, v in fields) and "csrf_token" not in names


def test_the_form_fields_become_the_same_report_as_the_json_body():
    for report in (synthetic_report(), synthetic_report(risk={"deportation_imminent": True,
                                                              "vulnerabilities": [], "trafficking_victim": True})):
        form = MultiDict([("csrf_token", "t"), *report_form_fields(report)])
        assert ReportIn().load(form_to_report(form)) == ReportIn().load(report)
        assert SYNTH in dict(report_form_fields(report))["person.full_name"]  # synthetic, never a real name
