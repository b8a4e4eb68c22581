"""Advocacy letters: both letters in English and Korean as Markdown, HTML and PDF; named and
anonymous cases; escaping; the PDF read back with pdftotext (Debian's poppler-utils)."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import subprocess
import uuid

import pytest
from reportlab.pdfbase import pdfmetrics

from services.advocacy import letter_pdf
from services.advocacy.letters import (FORMATS, KO_TERMS, LANGS, LETTERS, LetterError, markdown_to_html,
                                       render_letter, render_markdown)
from shared import words
from shared.events import CASE_STATUSES, VULNERABILITIES
from tests.support import SYNTH

PDFTOTEXT, PDFINFO = shutil.which("pdftotext"), shutil.which("pdfinfo")
needs_poppler = pytest.mark.skipif(PDFTOTEXT is None or PDFINFO is None,
                                   reason="pdftotext/pdfinfo are missing: install Debian's poppler-utils "
                                          "(bash infra/browser.sh does) to read the PDF letters back")
MIME = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8", "pdf": "application/pdf"}
WGEID = {"name": "UN WGEID", "mandate": "Working Group on Enforced or Involuntary Disappearances", "channel": "email"}

# What each letter must say: the ask, the law, the date and the person's circumstances.
KEY_SENTENCES = {
    ("appeal", "en"): [
        "We write to request your urgent intervention on behalf of the person described below",
        "at risk of forcible return (refoulement) to the Democratic People's Republic of Korea (DPRK)",
        "to halt the deportation of this person to the DPRK",
        "to ask the Government to grant UNHCR unimpeded access to them",
        "Article 3 of the Convention against Torture, to which China is a party",
        "would be in danger of torture, arbitrary detention, enforced disappearance and forced labour",
        "bound by the principle of non-refoulement",
        "a woman aged 18-59, a national of the DPRK, detained in Jilin province, China, on 18 April 2023",
        "Current status: deportation imminent. Deportation is expected on 10 January 2024.",
        "Particular vulnerabilities: pregnant, previously returned to the DPRK.",
        "UN WGEID (Working Group on Enforced or Involuntary Disappearances)",
        "5 January 2024",
    ],
    ("appeal", "ko"): [
        "긴급 호소문",
        "강제송환(refoulement)될 위험에 처한 아래 1명을 위해 귀하의 긴급한 개입을 요청드리고자",
        "이 사람의 북한 강제송환을 중단시켜 주십시오",
        "유엔난민기구(UNHCR)의 제한 없는 접근을 허용할 것을 중국 정부에 요청해 주십시오",
        "고문방지협약 제3조",
        "강제송환금지 원칙",
        "여성, 18-59세, 북한 국적. 2023년 4월 18일 중국 지린성에서 구금됨.",
        "현재 상태: 송환 임박. 송환 예정일: 2024년 1월 10일.",
        "취약성: 임신, 송환 전력.",
        "UN WGEID(유엔 강제적·비자발적 실종 실무그룹)",
        "2024년 1월 5일",
    ],
    ("unhcr_access", "en"): [
        "We write to ask UNHCR Beijing to seek access to the person described below",
        "so that their need for international protection can be assessed before any return takes place",
        "to request of the Chinese authorities, without delay, access to this person",
        "to ask the authorities to suspend any deportation",
        "article 46 of the Exit and Entry Administration Law",
        "Article 3 of the Convention against Torture",
        "a woman aged 18-59, a national of the DPRK, detained in Jilin province, China, on 18 April 2023",
        "Channel: email",
        "5 January 2024",
    ],
    ("unhcr_access", "ko"): [
        "유엔난민기구(UNHCR)의 접근 요청",
        "귀 사무소(유엔난민기구 베이징 사무소)가 접근을 추진해 주실 것을 요청드립니다",
        "지체 없이 중국 당국에 이 사람에 대한 접근을 요청해 주십시오",
        "난민 신청이 심사되는 동안 송환을 중단하고",
        "출경입경관리법 제46조",
        "고문방지협약 제3조",
        "여성, 18-59세, 북한 국적. 2023년 4월 18일 중국 지린성에서 구금됨.",
        "전달 방법: 이메일",
        "2024년 1월 5일",
    ],
}
# Identifying fields a careless caller might leave in a case: none of them may reach a letter.
IDENTIFYING = ("full_name", "hometown", "family_contact", "city", "facility", "notes", "birth_date")


def _case(consent: str = "named", **changes) -> dict:
    tag = uuid.uuid4().hex[:10]
    case = {"case_id": str(uuid.uuid4()), "consent": consent, "sex": "female", "age_group": "18-59",
            "nationality": "KP", "province": "Jilin", "status": "deportation_imminent",
            "detained_on": dt.date(2023, 4, 18), "expected_deportation_on": dt.date(2024, 1, 10),
            "deportation_imminent": True, "vulnerabilities": ["pregnant", "prior_repatriation"]}
    if consent == "named":
        case["full_name"] = f"{SYNTH} Name {tag}"
    return {**case, **changes}


def _leaky_anonymous_case() -> dict:
    """An anonymous case that wrongly carries a name and everything else that identifies a person."""
    tag = uuid.uuid4().hex[:10]
    return _case("anonymous", **{field: f"{SYNTH} {field} {tag}" for field in IDENTIFYING})


def _context(letter: str, cases: list[dict], **changes) -> dict:
    context = {"letter": letter, "reference": f"ref-{uuid.uuid4().hex[:8]}", "date": dt.date(2024, 1, 5),
               "organisation": "Non-Refoulement Watch", "cases": cases}
    if letter == "appeal":
        context.update(kind="urgent_appeal", recipients=[WGEID])
    else:
        context.update(office="UNHCR Beijing", channel="email")
    return {**context, **changes}


def _text(data: bytes, fmt: str) -> str:
    """What a reader sees, whitespace folded: the Markdown, the HTML's text, or the PDF read back."""
    if fmt == "pdf":
        text = _pdftotext(data)
    elif fmt == "html":
        inline_free = re.sub(r"</?(strong|em)>", "", data.decode("utf-8"))
        text = html.unescape(re.sub(r"<[^>]+>", " ", inline_free))
    else:
        text = data.decode("utf-8").replace("**", "")
    return " ".join(text.split())


def _pdftotext(pdf: bytes) -> str:
    if PDFTOTEXT is None:
        pytest.skip("pdftotext is missing: install Debian's poppler-utils (bash infra/browser.sh does)")
    return subprocess.run([PDFTOTEXT, "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True,
                          timeout=30).stdout.decode("utf-8")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("letter", LETTERS)
def test_every_letter_renders_in_every_language_and_format(letter, lang, fmt):
    data, mime = render_letter(_context(letter, [_case(), _case("anonymous", sex="male", age_group="12-17")]),
                               lang=lang, fmt=fmt)
    assert mime == MIME[fmt]
    if fmt == "pdf":
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    elif fmt == "html":
        page = data.decode("utf-8")
        assert page.startswith("<!doctype html>") and f'<html lang="{lang}">' in page
        assert "<h1>" in page and "<ol>" in page and "</html>" in page
    else:
        assert data.decode("utf-8").startswith("# ")


@pytest.mark.parametrize("fmt", ("md", "html"))
@pytest.mark.parametrize("letter, lang", KEY_SENTENCES)
def test_the_letter_names_the_named_person_and_says_what_is_asked(letter, lang, fmt):
    case = _case()
    context = _context(letter, [case])
    data, _ = render_letter(context, lang=lang, fmt=fmt)
    text = _text(data, fmt)
    assert case["full_name"] in text
    assert context["reference"] in text and case["case_id"] in text
    for sentence in KEY_SENTENCES[(letter, lang)]:
        assert sentence in text, sentence


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("letter", LETTERS)
def test_an_anonymous_case_is_described_but_never_identified_even_if_the_context_carries_a_name(letter, lang, fmt):
    data, _ = render_letter(_context(letter, [_leaky_anonymous_case()]), lang=lang, fmt=fmt)
    text = _text(data, fmt)
    assert SYNTH not in text
    described = ("Person 1 (name withheld for the person's safety): a woman aged 18-59, a national of the DPRK, "
                 "detained in Jilin province, China" if lang == "en" else
                 "신원 비공개 1(본인의 안전을 위해 이름을 밝히지 않음): 여성, 18-59세, 북한 국적. "
                 "2023년 4월 18일 중국 지린성에서 구금됨.")
    assert described in text
    if fmt == "pdf":  # the PDF's metadata too
        assert SYNTH.encode() not in data


@pytest.mark.parametrize("lang", LANGS)
def test_a_letter_about_several_people_names_only_those_who_agreed(lang):
    named, anonymous = _case(), _leaky_anonymous_case()
    text = _text(render_letter(_context("appeal", [named, anonymous]), lang=lang, fmt="md")[0], "md")
    assert named["full_name"] in text
    assert anonymous["full_name"] not in text and anonymous["hometown"] not in text
    assert ("Each person named in this letter, or their family, has agreed to be named. Where a name is withheld"
            if lang == "en" else "실명 기재에 동의하였습니다. 이름을 밝히지 않은 것은") in text


@pytest.mark.parametrize("consent", ("none", None, "public"))
def test_a_case_without_consent_to_be_written_about_is_refused(consent):
    case = _case(consent=consent, full_name=f"{SYNTH} Refused")
    with pytest.raises(LetterError) as refused:
        render_letter(_context("appeal", [case]), lang="en", fmt="md")
    assert case["case_id"] in str(refused.value) and SYNTH not in str(refused.value)


def test_a_named_case_without_its_name_is_refused_rather_than_sent_unnamed():
    case = _case(full_name="  ")
    with pytest.raises(LetterError, match="no name"):
        render_letter(_context("unhcr_access", [case]), lang="en", fmt="md")


def test_markup_in_a_name_stays_text_in_every_format():
    name = f"{SYNTH} <script>alert(1)</script> [site](javascript:alert(1)) *Kim* & Co\n# heading"
    case = _case(full_name=name)
    folded = " ".join(name.split())
    markdown_text = render_letter(_context("appeal", [case]), lang="en", fmt="md")[0].decode()
    page = render_letter(_context("appeal", [case]), lang="en", fmt="html")[0].decode()
    assert "<script>" not in markdown_text and "&lt;script&gt;" in markdown_text
    assert "\n# heading" not in markdown_text
    assert "<script>" not in page and "<a " not in page and "<em>Kim</em>" not in page
    assert f"<strong>{html.escape(folded, quote=False)}</strong>" in page
    assert folded in _text(render_letter(_context("appeal", [case]), lang="en", fmt="pdf")[0], "pdf")


def test_the_html_renderer_takes_no_raw_html_or_links_even_from_a_template():
    body = markdown_to_html('<b onclick="x()">bold</b> <http://example.org> [link](http://example.org)\n\n<div>x</div>')
    assert "<b" not in body and "<div>" not in body and "<a " not in body and "&lt;b onclick" in body


@pytest.mark.parametrize("kind, en, ko", [("urgent_appeal", "Urgent appeal", "긴급 호소문"),
                                          ("allegation_letter", "Allegation letter", "혐의 서한"),
                                          ("communication", "Communication", "진정서")])
def test_each_kind_of_appeal_has_its_title(kind, en, ko):
    context = _context("appeal", [_case()], kind=kind)
    assert render_markdown(context, lang="en")[0].startswith(f"{en}: ")
    assert render_markdown(context, lang="ko")[0].startswith(f"{ko}: ")


def test_a_draft_appeal_without_recipients_says_they_are_to_be_chosen():
    context = _context("appeal", [_case()], recipients=[])
    assert "**To:** recipients to be chosen" in render_markdown(context, lang="en")[1]
    assert "**수신:** (수신처 미정)" in render_markdown(context, lang="ko")[1]


def test_a_recipient_outside_the_list_is_written_once_by_its_name():
    context = _context("appeal", [_case()], recipients=[{"name": "SR Torture", "mandate": "SR Torture"}, WGEID])
    assert ("**To:** SR Torture; UN WGEID (Working Group on Enforced or Involuntary Disappearances)\n"
            in render_markdown(context, lang="en")[1])


def test_the_korean_letter_uses_the_pages_words_for_statuses_and_vulnerabilities():
    pages = {v: words.label(v, "vulnerability", "ko") for v in VULNERABILITIES}
    # the letter's own (shorter) words for a trafficking victim, as letters have always said it
    assert pages["trafficking_victim"] == "인신매매 피해자" and KO_TERMS["trafficking_victim"] == "인신매매 피해"
    said = [KO_TERMS.get(v, pages[v]) for v in VULNERABILITIES]
    for status in CASE_STATUSES:
        case = _case(status=status, vulnerabilities=list(VULNERABILITIES))
        text = render_markdown(_context("appeal", [case]), lang="ko")[1]
        assert f"현재 상태: {words.label(status, 'case_status', 'ko')}." in text
        assert "취약성: " + ", ".join(said) + "." in text
    assert "현재 상태: 송환 임박." in render_markdown(_context("appeal", [_case(status="deportation_imminent")]),
                                                 lang="ko")[1]


def test_every_character_of_the_letters_has_a_glyph_in_the_pdf_font():
    font = pdfmetrics.getFont(letter_pdf.register_fonts()[0]).face
    case = _case(vulnerabilities=list(VULNERABILITIES), age_group="12-17", province="Liaoning")
    missing = set()
    for letter in LETTERS:
        for lang in LANGS:
            for fmt_case in (case, _case("anonymous")):
                text = _text(render_letter(_context(letter, [fmt_case]), lang=lang, fmt="html")[0], "html")
                missing |= {char for char in text if ord(char) not in font.charToGlyph}
    assert not missing, f"NanumGothic has no glyph for {sorted(missing)}"


@pytest.mark.parametrize("lang, words", [
    ("en", ["Urgent appeal: North Koreans detained in China at risk of forcible return", "non-refoulement",
            "Convention against Torture", "UNHCR unimpeded access", "5 January 2024", "Persons at risk"]),
    ("ko", ["긴급 호소문: 중국에 구금되어 강제송환 위험에 처한 북한 주민", "강제송환금지 원칙", "고문방지협약 제3조",
            "유엔난민기구(UNHCR)", "2024년 1월 5일", "위험에 처한 사람", "송환 임박", "임신"]),
])
@needs_poppler
def test_the_pdf_reads_back_with_its_words_and_hangul(lang, words):
    hangul_name = f"{SYNTH} 김옥순 {uuid.uuid4().hex[:6]}"
    cases = [_case(full_name=hangul_name), _case()]
    pdf, _ = render_letter(_context("appeal", cases), lang=lang, fmt="pdf")
    text = _text(pdf, "pdf")
    for expected in [*words, hangul_name, cases[1]["full_name"]]:
        assert expected in text, expected


@pytest.mark.parametrize("letter, lang", KEY_SENTENCES)
@needs_poppler
def test_the_pdf_carries_its_title_author_and_key_sentences(letter, lang):
    context = _context(letter, [_case()])
    pdf, _ = render_letter(context, lang=lang, fmt="pdf")
    info = subprocess.run([PDFINFO, "-enc", "UTF-8", "-"], input=pdf, capture_output=True, check=True,
                          timeout=30).stdout.decode("utf-8")
    title = render_markdown(context, lang=lang)[0]
    assert re.search(rf"^Title:\s+{re.escape(title)}$", info, re.M)
    assert re.search(r"^Author:\s+Non-Refoulement Watch$", info, re.M)
    text = _text(pdf, "pdf")
    for sentence in KEY_SENTENCES[(letter, lang)]:
        assert sentence.replace("**", "") in text, sentence


def test_a_missing_korean_font_fails_with_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(letter_pdf, "FONT_DIRS", (tmp_path,))
    letter_pdf.register_fonts.cache_clear()
    try:
        with pytest.raises(letter_pdf.LetterFontMissing, match="fonts-nanum"):
            render_letter(_context("appeal", [_case()]), lang="ko", fmt="pdf")
    finally:
        letter_pdf.register_fonts.cache_clear()


@pytest.mark.parametrize("changes, message", [
    ({"cases": []}, "at least one case"), ({"letter": "postcard"}, "letter must be"),
    ({"kind": "petition"}, "kind must be"), ({"reference": ""}, "no reference"),
])
def test_a_context_that_cannot_make_a_letter_is_refused_with_the_reason(changes, message):
    with pytest.raises(LetterError, match=message):
        render_letter({**_context("appeal", [_case()]), **changes}, lang="en", fmt="md")


@pytest.mark.parametrize("lang, fmt", [("fr", "md"), ("en", "docx")])
def test_an_unknown_language_or_format_is_refused(lang, fmt):
    with pytest.raises(LetterError):
        render_letter(_context("appeal", [_case()]), lang=lang, fmt=fmt)
