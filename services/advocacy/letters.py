"""Advocacy letters: an urgent appeal to UN special procedures, or a request that UNHCR be given
access to detainees, in English or Korean, as Markdown, HTML or PDF.

Pure: no database, no network. The caller builds the context (the cases' non-identifying
attributes, and a name only for a case whose advocacy consent is `named`). Markdown is the single
source: Jinja templates in `letter_templates/` write it, HTML is rendered from it, and the PDF is
laid out from that HTML (`letter_pdf.py`). Values from the context are escaped for Markdown as
they are written in, and the Markdown renderer takes no raw HTML, so a name containing `<` stays
text in every format.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from pathlib import Path

import jinja2
import markdown
import pycountry
from markupsafe import Markup

from services.advocacy import letter_pdf
from shared import i18n, unhcr_offices, words

FORMATS = ("md", "html", "pdf")
LANGS = ("en", "ko")
LETTERS = ("appeal", "unhcr_access")
APPEAL_KINDS = ("urgent_appeal", "allegation_letter", "communication")
MIME_TYPES = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8", "pdf": "application/pdf"}

TEMPLATES = Path(__file__).resolve().parent / "letter_templates"

SEXES = ("female", "male", "unknown")
AGE_GROUPS = ("0-4", "5-11", "12-17", "18-59", "60+", "unknown")
MINOR_AGE_GROUPS = ("0-4", "5-11", "12-17")
# Vulnerabilities that the security services treat as political offences after a return.
POLITICAL_VULNERABILITIES = ("prior_repatriation", "religious_contact", "contact_with_south_koreans")

EN_NOUNS = {("female", False): "woman", ("female", True): "girl", ("male", False): "man", ("male", True): "boy",
            ("unknown", False): "person", ("unknown", True): "child"}
EN_AGES = {"60+": "aged 60 or over", "unknown": "of unknown age"}
EN_TERMS = {
    "reported": "reported to us", "detained": "detained", "deportation_imminent": "deportation imminent",
    "released": "released", "in_third_country": "in a third country", "whereabouts_unknown": "whereabouts unknown",
    "repatriated": "forcibly returned to the DPRK", "resettled": "resettled", "deceased": "deceased",
    "closed_duplicate": "closed (duplicate)", "closed_unfounded": "closed (unfounded)",
    "minor": "a minor", "pregnant": "pregnant", "elderly": "elderly", "ill": "ill",
    "prior_repatriation": "previously returned to the DPRK", "religious_contact": "contact with religious groups",
    "contact_with_south_koreans": "contact with South Koreans", "trafficking_victim": "victim of trafficking",
    "email": "email", "fax": "fax", "letter": "letter", "meeting": "meeting", "phone": "telephone",
    "online_form": "online form",
}
KO_AGES = {"60+": "60세 이상", "unknown": "연령 미상"}
# Korean words of the letters' own; statuses, vulnerabilities and sexes are the pages' words (shared/words.py).
KO_TERMS = {"unknown": "성별 미상", "email": "이메일", "fax": "팩스", "letter": "우편", "meeting": "면담", "phone": "전화",
            "online_form": "온라인 양식", "trafficking_victim": "인신매매 피해"}
KO_VOCABULARIES = ("case_status", "vulnerability", "sex")
# Korean names of the bodies advocates write to most; any other keeps its own (English) name.
KO_MANDATES = {
    "Special Rapporteur on the situation of human rights in the Democratic People's Republic of Korea":
        "유엔 북한인권 특별보고관",
    "Special Rapporteur on torture and other cruel, inhuman or degrading treatment or punishment":
        "유엔 고문 특별보고관",
    "Working Group on Arbitrary Detention": "유엔 자의적 구금 실무그룹",
    "Working Group on Enforced or Involuntary Disappearances": "유엔 강제적·비자발적 실종 실무그룹",
    "Special Rapporteur on trafficking in persons, especially women and children": "유엔 인신매매 특별보고관",
    "Committee against Torture": "유엔 고문방지위원회",
    "Office of the United Nations High Commissioner for Refugees": "유엔난민기구(UNHCR)",
    "Permanent Mission of the People's Republic of China to the United Nations Office at Geneva":
        "주제네바 중화인민공화국 대표부",
}
KO_PROVINCES = {
    "Jilin": "지린성", "Liaoning": "랴오닝성", "Heilongjiang": "헤이룽장성", "Inner Mongolia": "네이멍구 자치구",
    "Yunnan": "윈난성", "Guangxi": "광시 좡족 자치구", "Shandong": "산둥성", "Hebei": "허베이성",
    "Beijing": "베이징시", "Shanghai": "상하이시", "Tianjin": "톈진시", "Guangdong": "광둥성",
}
EN_MUNICIPALITIES = ("Beijing", "Shanghai", "Tianjin", "Chongqing")


class LetterError(ValueError):
    """A context that cannot make a letter; the message names fields and case ids, never a name."""


def render_letter(context: dict, *, lang: str, fmt: str) -> tuple[bytes, str]:
    """The letter as bytes and its MIME type (text/markdown; charset=utf-8 | text/html; charset=utf-8 | application/pdf)."""
    if lang not in LANGS:
        raise LetterError(f"lang must be one of {', '.join(LANGS)}")
    if fmt not in FORMATS:
        raise LetterError(f"format must be one of {', '.join(FORMATS)}")
    title, text = render_markdown(context, lang=lang)
    if fmt == "md":
        return text.encode("utf-8"), MIME_TYPES[fmt]
    body = markdown_to_html(text)
    if fmt == "html":
        page = _PAGE_ENV.get_template("page.html.j2").render(lang=lang, title=title, body=Markup(body),
                                                             author=context["organisation"])
        return page.encode("utf-8"), MIME_TYPES[fmt]
    pdf = letter_pdf.build_pdf(body, lang=lang, title=title, author=context["organisation"],
                               footer=f"{context['organisation']} · {context['reference']}")
    return pdf, MIME_TYPES[fmt]


def render_markdown(context: dict, *, lang: str) -> tuple[str, str]:
    """The letter's title (plain text) and its Markdown, from the template of its kind and language."""
    letter = context.get("letter")
    if letter not in LETTERS:
        raise LetterError(f"letter must be one of {', '.join(LETTERS)}")
    values = _letter_values(context, lang)
    module = _MD_ENV.get_template(f"{letter}.{lang}.md.j2").make_module(values)
    return module.title, str(module)


def markdown_to_html(text: str) -> str:
    """The HTML fragment of a letter's Markdown; raw HTML and links in it are not honoured."""
    md = markdown.Markdown(output_format="html")
    md.preprocessors.deregister("html_block")
    for pattern in ("html", "autolink", "automail", "link", "image_link", "reference", "image_reference",
                    "short_reference", "short_image_ref"):
        md.inlinePatterns.deregister(pattern)
    return md.convert(text)


def _letter_values(context: dict, lang: str) -> dict:
    """What the templates read: the context's plain values, each already in the letter's language."""
    terms = _terms(lang)
    cases = context.get("cases") or []
    if not cases:
        raise LetterError("a letter needs at least one case")
    persons = [_person(case, number, lang, terms) for number, case in enumerate(cases, 1)]
    vulnerable = {v for case in cases for v in case.get("vulnerabilities") or ()}
    values = {
        "reference": _required(context, "reference"),
        "organisation": _required(context, "organisation"),
        "date": _date(_required(context, "date"), lang),
        "persons": persons,
        "named_count": sum(1 for p in persons if p["name"]),
        "imminent": any(p["imminent"] for p in persons),
        "political": bool(vulnerable & set(POLITICAL_VULNERABILITIES)),
        "pregnant": "pregnant" in vulnerable,
        "trafficking": "trafficking_victim" in vulnerable,
        "minor": "minor" in vulnerable or any(c.get("age_group") in MINOR_AGE_GROUPS for c in cases),
    }
    if context["letter"] == "appeal":
        kind = context.get("kind")
        if kind not in APPEAL_KINDS:
            raise LetterError(f"kind must be one of {', '.join(APPEAL_KINDS)}")
        values["kind"] = kind
        values["recipients"] = [_recipient(r, lang) for r in context.get("recipients") or ()]
    else:
        values["office"] = unhcr_offices.name(_required(context, "office"), lang)  # a code: never typed text
        values["channel"] = terms.get(context.get("channel"), context.get("channel"))
    return values


def _person(case: dict, number: int, lang: str, terms: dict) -> dict:
    """One case as the letter describes it. Only whitelisted attributes are read, and the name only
    when the person agreed to be named: an anonymous case is never named, whatever it carries."""
    case_id = case.get("case_id")
    if not case_id:
        raise LetterError(f"case number {number} of the letter has no case_id")
    consent = case.get("consent")
    if consent not in ("named", "anonymous"):
        raise LetterError(f"case {case_id}: advocacy consent is {consent!r}, so no letter may describe it")
    name = None
    if consent == "named":
        name = " ".join(str(case.get("full_name") or "").split())
        if not name:
            raise LetterError(f"case {case_id}: consent is named but no name was given")
    sex = case.get("sex") if case.get("sex") in SEXES else "unknown"
    age_group = case.get("age_group") if case.get("age_group") in AGE_GROUPS else "unknown"
    detained_on, expected_on = case.get("detained_on"), case.get("expected_deportation_on")
    status = case.get("status")
    return {
        "number": number,
        "case_id": case_id,
        "name": name,
        "who": _who(sex, age_group, lang, terms),
        "nationality": _nationality(case.get("nationality"), lang),
        "province": _province(case.get("province"), lang),
        "detained_on": _date(detained_on, lang) if detained_on else None,
        "status_key": status,
        "status": terms.get(status, status) if status else None,
        "expected_deportation_on": _date(expected_on, lang) if expected_on else None,
        "imminent": bool(case.get("deportation_imminent")) or status == "deportation_imminent",
        "vulnerabilities": [terms.get(v, v) for v in case.get("vulnerabilities") or ()],
    }


def _who(sex: str, age_group: str, lang: str, terms: dict) -> str:
    """Sex and age group, in words: "a woman aged 18-59" / "여성, 18-59세"."""
    if lang == "ko":
        return f"{terms[sex]}, {KO_AGES.get(age_group, f'{age_group}세')}"
    noun = EN_NOUNS[(sex, age_group in MINOR_AGE_GROUPS)]
    return f"a {noun} {EN_AGES.get(age_group, f'aged {age_group}')}"


def _nationality(code: str | None, lang: str) -> str:
    """"a national of the DPRK" / "북한 국적", or the country's name from its ISO code."""
    if not code or code == "KP":
        return "북한 국적" if lang == "ko" else "a national of the DPRK"
    country = pycountry.countries.get(alpha_2=code)
    name = country.name if country else code
    return f"{name} 국적" if lang == "ko" else f"a national of {name}"


def _province(province: str | None, lang: str) -> str | None:
    """Where in China: "Jilin province" / "지린성"."""
    if not province:
        return None
    if lang == "ko":
        return KO_PROVINCES.get(province, province)
    if province in EN_MUNICIPALITIES or re.search(r"(?i)\b(province|region|city)$", province):
        return province
    return f"{province} province"


def _recipient(recipient: dict, lang: str) -> dict:
    """A recipient's short name and, in Korean where known, its mandate (none if it only repeats the name)."""
    mandate = recipient.get("mandate")
    if mandate == recipient.get("name"):
        mandate = None
    if lang == "ko" and mandate:
        mandate = KO_MANDATES.get(mandate, mandate)
    return {"name": recipient.get("name"), "mandate": mandate}


def _date(value: dt.date | str, lang: str) -> str:
    """A business date as people read it in the letter's language."""
    return i18n.long_date(value, lang)


def _required(context: dict, field: str):
    value = context.get(field)
    if value in (None, ""):
        raise LetterError(f"the letter's context has no {field}")
    return value


def _terms(lang: str) -> dict:
    return EN_TERMS if lang == "en" else _ko_terms()


@functools.lru_cache(maxsize=1)
def _ko_terms() -> dict:
    """Korean words for statuses, vulnerabilities and sexes: the pages' words, then the letters' own."""
    pages = {code: words.label(code, vocabulary, "ko")
             for vocabulary in KO_VOCABULARIES for code in words.VOCABULARIES[vocabulary]}
    return {**pages, **KO_TERMS}


_MD_SPECIALS = re.compile(r"([\\`*_\[\]])")
_MD_BLOCK_START = re.compile(r"^([#+-]|\d+(?=\.))")


def _markdown_text(value) -> str:
    """A context value written into Markdown as plain text: one line, Markdown's marks escaped,
    and &, <, > as entities, so that no renderer takes it for markup or HTML."""
    if value is None:
        raise LetterError("a value the letter needs is missing")
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIALS.sub(r"\\\1", text)
    # A value opening a line must not open a heading or a list: "\#", "\-", "1\."
    return _MD_BLOCK_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\" + m.group(0), text)


_MD_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             autoescape=False, finalize=_markdown_text, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
_PAGE_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                               autoescape=True)
