"""Every code a page shows is words in the reader's language: each enum of the events and of the
services' schemas has its vocabulary (shared/words.py), each code of it has English words and
Korean words that are not the code, and the pages name only vocabularies that exist."""

from __future__ import annotations

import importlib
import re

import pytest
from flask import render_template_string
from marshmallow import Schema, fields, validate

from services.advocacy import domain as advocacy_domain
from services.case import domain as case_domain
from services.case.app import create_app
from shared import auth, i18n, words
from tests.support import ROOT, offline_app

SCHEMA_MODULES = ("shared.events", "services.intake.schemas", "services.case.schemas", "services.advocacy.schemas",
                  "services.reporting.schemas")
# Enums no page shows as words of the reader's language, each with where it is shown instead.
NOT_WORDS = {
    "services.advocacy.schemas.LetterQuery.lang": "a letter's language, offered by its own name (English, 한국어)",
    "services.advocacy.schemas.LetterQuery.format": "a file format, offered by its name (Markdown, HTML, PDF)",
    "services.advocacy.schemas.RecipientIn.kind": "API only: the pages show a recipient's name and mandate",
    "services.intake.schemas.AuditQuery.action": "API only: a filter of the audit trail's JSON",
    "shared.events.AuditRecorded.action": "inside events only: the audit page shows who, what case and why",
    "services.reporting.schemas.AnnexQuery.lang": "an annex's language, offered by its own name",
    "services.reporting.schemas.AnnexQuery.format": "a file format, offered by its name (PDF, Excel (XLSX), ...)",
    "services.reporting.schemas.StatisticsQuery.measure": "reporting's measure titles (services/reporting)",
    "services.reporting.schemas.StatisticsQuery.disclosure": "offered as a sentence (public or exact figures)",
    "services.reporting.schemas.QuestionsQuery.disclosure": "offered as a sentence (public or exact figures)",
    "services.reporting.schemas.EvidenceQuery.disclosure": "offered as a sentence (public or exact register)",
}


def _enums() -> dict[str, tuple]:
    """Every OneOf of the schemas, by module.Schema.field: its choices."""
    found = {}
    for name in SCHEMA_MODULES:
        module = importlib.import_module(name)
        for schema in vars(module).values():
            if not (isinstance(schema, type) and issubclass(schema, Schema) and schema.__module__ == name):
                continue
            for field_name, field in schema._declared_fields.items():
                field = field.inner if isinstance(field, fields.List) else field
                for validator in field.validators:
                    if isinstance(validator, validate.OneOf):
                        found[f"{name}.{schema.__name__}.{field_name}"] = tuple(validator.choices)
    return found


ENUMS = _enums()
KOREAN = i18n.catalog_words("ko")


def test_the_walk_finds_the_enums_of_every_service():
    assert ENUMS["shared.events.CaseStatusChanged.to"] == case_domain.STATUSES
    assert ENUMS["services.intake.schemas.RiskIn.vulnerabilities"]  # a list's items
    assert ENUMS["services.advocacy.schemas.AppealIn.kind"] == advocacy_domain.APPEAL_KINDS
    assert ENUMS["services.case.schemas.AsylumIn.step"]
    assert set(NOT_WORDS) <= set(ENUMS), set(NOT_WORDS) - set(ENUMS)  # no stale exception


@pytest.mark.parametrize("where", sorted(set(ENUMS) - set(NOT_WORDS)))
def test_every_enum_shown_on_a_page_has_a_vocabulary(where):
    choices = set(ENUMS[where])
    assert any(choices <= set(table) for table in words.VOCABULARIES.values()), \
        f"{where}: no vocabulary in shared/words.py has words for all of {sorted(choices)}"


@pytest.mark.parametrize("vocabulary", sorted(words.VOCABULARIES))
def test_every_code_has_words_in_english_and_in_korean(vocabulary):
    for code, message in words.VOCABULARIES[vocabulary].items():
        english, korean = words.label(code, vocabulary, "en"), words.label(code, vocabulary, "ko")
        assert english == message and english.strip() and "_" not in english, (vocabulary, code, english)
        assert message in KOREAN, f"{vocabulary}.{code}: {message!r} has no Korean in messages.po"
        assert korean == KOREAN[message] and korean != code and korean != english, (vocabulary, code, korean)


def test_the_same_code_reads_as_its_vocabulary_says():
    assert words.label("granted", "request_status", "en") == "granted"
    assert words.label("granted", "asylum_step", "en") == "status granted"
    assert words.label("unknown", "sex", "ko") == "미상"
    assert words.label(None, "sex") == words.label("", "sex", "ko") == "—"
    assert words.label("not_a_code", "sex", "en") == "not_a_code"  # an unknown code is shown as it is
    with pytest.raises(KeyError):
        words.label("female", "no_such_vocabulary")


def test_the_values_the_services_keep_outside_their_schemas_have_words():
    covered = {
        "appeal_status": {*advocacy_domain.APPEAL_STATUSES, *case_domain.APPEAL_STAGES},
        "appeal_origin": {advocacy_domain.DEPORTATION_CLOCK, "manual"},
        "appeal_note": {advocacy_domain.DEPORTATION_CLOCK, advocacy_domain.EPISODE_ENDED},
        "request_status": set(advocacy_domain.REQUEST_STATUSES),
        "channel": set(advocacy_domain.CHANNELS),
        "role": set(auth.ROLES),
    }
    for vocabulary, codes in covered.items():
        assert codes <= set(words.VOCABULARIES[vocabulary]), (vocabulary, codes - set(words.VOCABULARIES[vocabulary]))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A service's app (the case service); nothing here touches a database."""
    return offline_app(create_app, tmp_path_factory.mktemp("var"))


@pytest.mark.parametrize("lang, said", [("en", "deportation imminent · urgent appeal · —"),
                                        ("ko", "송환 임박 · 긴급 호소 · —")])
def test_the_pages_filter_says_a_code_in_the_readers_language(app, lang, said):
    page = "{{ 'deportation_imminent'|label('case_status') }} · {{ 'urgent_appeal'|label('appeal_kind') }} · " \
           "{{ missing|label('sex') }}"
    with app.test_request_context("/", headers={"Accept-Language": lang}):
        assert render_template_string(page) == said
        assert words.label("contact_with_south_koreans", "vulnerability") == \
            {"en": "contact with South Koreans", "ko": "한국인 접촉"}[lang]


TEMPLATES = sorted([*ROOT.glob("services/*/templates/*.html"), *ROOT.glob("shared/templates/*.html")])


def test_the_pages_name_only_vocabularies_that_exist_and_no_old_helper():
    named = set()
    for template in TEMPLATES:
        text = template.read_text(encoding="utf-8")
        named |= set(re.findall(r"\|label\(['\"](\w+)['\"]\)", text))
        assert not re.search(r"\|label\s*(\}\}|\|)", text), f"{template.name}: a label without its vocabulary"
        assert not re.search(r"\|term\b|\bterm\(", text), f"{template.name}: the old `term` helper"
        for call in re.findall(r"select\([^)]*\)", text):
            named |= set(re.findall(r"choices\.\w+, '(\w+)'", call))
    assert named, "the scan found no label at all"
    assert named <= set(words.VOCABULARIES), named - set(words.VOCABULARIES)
