"""The words of the UPR annex and its charts, in English and Korean: measure titles, categories,
headings, the method, the suppression notes and the questions. Korean words the pages already use
(sexes, statuses, "UNHCR 접견 요청") are taken from the pages' catalog, so that both say the same.
Pure: no I/O beyond reading that catalog once."""

from __future__ import annotations

import datetime as dt
import functools

from babel.dates import format_date

from shared import i18n

LANGS = ("en", "ko")
STOCK_MEASURES = ("detained", "deportation_imminent")  # counted on the date; the others in the period
SERIES = ("detained", "repatriated", "reported")
SUPPRESSED_CELL, SMALL_TOTAL = "–", "<5"  # a cell that is not published; a total from 1 to 4

EN = {
    "measure": {
        "detained": "Detained", "deportation_imminent": "Facing imminent deportation",
        "repatriated": "Returned to the DPRK", "reported": "Newly reported",
        "unhcr_access_requested": "UNHCR access requested", "unhcr_access_granted": "UNHCR access granted",
        "appeals_issued": "Covered by an urgent appeal issued",
    },
    "sheet": {
        "detained": "Detained", "deportation_imminent": "Deportation imminent", "repatriated": "Returned",
        "reported": "Reported", "unhcr_access_requested": "UNHCR access requested",
        "unhcr_access_granted": "UNHCR access granted", "appeals_issued": "Appeals issued",
        "about": "Annex", "questions": "Questions", "charts": "Charts",
    },
    "on_date": "on the date", "in_period": "in the period",
    "sex": {"female": "Female", "male": "Male", "unknown": "Sex unknown"},
    "age": {"unknown": "Age unknown"},
    "heading": {
        "default_title": "Statistical annex: North Koreans detained in China and at risk of forcible return",
        "method": "Method", "questions": "Questions and answers", "tables": "Tables", "charts": "Charts",
        "sex": "Sex", "age_group": "Age group (UNHCR)", "sex_by_age": "Sex / age group", "total": "Total",
        "question": "Question", "answer": "Answer", "note": "Note", "measure": "Measure",
    },
    "meta": {"cycle": "UPR cycle", "as_of": "As of", "period": "Period", "frozen": "Figures frozen on",
             "snapshot": "Snapshot"},
    "period_since": "from {start} to {end}", "period_all": "up to {end}",
    "method": [
        "Counts are of the cases documented in Non-Refoulement Watch: each case is one person, however many "
        "reports were received about them.",
        "Dates are business dates: the day a person was detained, returned or first reported, or the day a "
        "request or appeal was sent or answered; never the day it was typed in, so a case reported late "
        "counts in the right period.",
        "“Detained” and “Facing imminent deportation” are counted on {as_of}; the other measures count "
        "people with such an event {period}.",
        "Cases whose subjects did not consent to statistics, merged duplicates and reports found untrue "
        "are not counted.",
        "The age group is UNHCR's group of the age reached in the year of {as_of} (0-4, 5-11, 12-17, 18-59, "
        "60 and over, unknown).",
        "A cell from 1 to 4 is not published, and further cells are suppressed so that none can be worked "
        "out from the totals and the other published figures; each table's note says how many.",
        "Every other published count is rounded to a multiple of 5 by a fixed rule (off by at most 4; 0 stays "
        "0), the same for the same people in every table, so comparing tables of two dates does not give the "
        "count of the days between.",
    ],
    "footnote": "“{cell}”: not published, a count from 1 to 4 or a cell hidden so that such a count cannot be "
                "worked out. “{small}”: a total from 1 to 4 (every non-zero cell is then hidden as well).",
    "table_on": "As of {date}", "table_period": "Period: {period}",
    "total_line": "Total: {total}",
    "chart": {
        "over_time_title": "Detentions and returns by month, {first} to {last}",
        "over_time_caption": "People detained at each month's end, and people returned to the DPRK and newly "
                             "reported within each month. Suppressed months are gaps, marked ×.",
        "by_age_title": "{measure} by sex and age group, {when}",
        "by_age_caption": "{measure} by sex and age group, {when}. Suppressed cells have no bar and are "
                          "marked ×.",
        "on": "on {date}", "month": "Month", "people": "People", "age_group": "Age group (UNHCR)",
        "series": {"detained": "Detained at the month's end", "repatriated": "Returned to the DPRK in the month",
                   "reported": "Newly reported in the month"},
        "suppressed": "suppressed (1–4, or hidden to protect such a count)",
    },
    "fewer_than_5": "fewer than 5",
}

KO = {
    "measure": {
        "detained": "구금", "deportation_imminent": "송환 임박", "repatriated": "북한으로 강제송환",
        "reported": "신규 보고", "unhcr_access_requested": "UNHCR 접견 요청", "unhcr_access_granted": "UNHCR 접견 허가",
        "appeals_issued": "긴급 호소 발송 대상",
    },
    "sheet": {
        "detained": "구금", "deportation_imminent": "송환 임박", "repatriated": "강제송환", "reported": "신규 보고",
        "unhcr_access_requested": "UNHCR 접견 요청", "unhcr_access_granted": "UNHCR 접견 허가",
        "appeals_issued": "긴급 호소", "about": "부록", "questions": "질문", "charts": "차트",
    },
    "on_date": "기준일 현재", "in_period": "기간 중",
    "sex": {"female": "여성", "male": "남성", "unknown": "성별 미상"},
    "age": {"60+": "60세 이상", "unknown": "연령 미상"},
    "heading": {
        "default_title": "통계 부록: 중국에 구금되어 강제송환 위험에 처한 북한 주민",
        "method": "방법", "questions": "질문과 답변", "tables": "표", "charts": "차트",
        "sex": "성별", "age_group": "연령대(UNHCR)", "sex_by_age": "성별 / 연령대", "total": "합계",
        "question": "질문", "answer": "답변", "note": "주", "measure": "항목",
    },
    "meta": {"cycle": "UPR 주기", "as_of": "기준일", "period": "기간", "frozen": "수치 확정일", "snapshot": "스냅숏"},
    "period_since": "{start}부터 {end}까지", "period_all": "{end}까지",
    "method": [
        "Non-Refoulement Watch에 기록된 사건을 셉니다. 한 사건은 한 사람이며, 그 사람에 관한 보고가 몇 건이든 "
        "한 번만 셉니다.",
        "날짜는 실제 일자입니다. 구금·송환·최초 보고된 날, 요청이나 호소문을 보내거나 답변을 받은 날이며, 입력한 "
        "날이 아닙니다. 늦게 보고된 사건도 해당 기간에 셉니다.",
        "‘구금’과 ‘송환 임박’은 {as_of} 현재로 세고, 나머지 항목은 {period} 해당 사건이 있었던 사람을 셉니다.",
        "통계 이용에 동의하지 않은 사건, 병합된 중복 사건, 사실이 아닌 것으로 확인된 보고는 세지 않습니다.",
        "연령대는 {as_of}이 속한 해에 이른 나이에 따른 UNHCR 연령대입니다(0-4, 5-11, 12-17, 18-59, 60세 이상, 연령 미상).",
        "1~4명인 칸은 공개하지 않으며, 합계와 다른 공개 수치로 그 수를 역산할 수 없도록 다른 칸도 추가로 공개하지 "
        "않습니다. 표마다 주에 그 수를 적었습니다.",
        "그 밖의 공개 수치는 정해진 규칙에 따라 5의 배수로 반올림합니다(차이는 최대 4, 0은 그대로). 같은 사람들의 "
        "칸은 어느 표에서나 같은 값이므로, 두 날짜의 표를 비교해도 그 사이의 수를 알 수 없습니다.",
    ],
    "footnote": "“{cell}”: 비공개. 1~4명인 칸, 또는 그런 수를 역산할 수 없도록 숨긴 칸입니다. “{small}”: 합계가 "
                "1~4명입니다(이때 0이 아닌 모든 칸도 비공개).",
    "table_on": "{date} 현재", "table_period": "기간: {period}",
    "total_line": "합계: {total}",
    "chart": {
        "over_time_title": "월별 구금과 강제송환, {first}~{last}",
        "over_time_caption": "월말 현재 구금된 사람, 해당 월에 북한으로 강제송환된 사람과 새로 보고된 사람. "
                             "비공개인 달은 비워 두고 ×로 표시했습니다.",
        "by_age_title": "{measure}: 성별·연령대별, {when}",
        "by_age_caption": "{measure}: 성별·연령대별, {when}. 비공개인 칸은 막대 없이 ×로 표시했습니다.",
        "on": "{date} 현재", "month": "월", "people": "인원(명)", "age_group": "연령대(UNHCR)",
        "series": {"detained": "월말 현재 구금", "repatriated": "해당 월 북한으로 강제송환",
                   "reported": "해당 월 신규 보고"},
        "suppressed": "비공개(1~4명, 또는 그 수를 보호하려고 숨김)",
    },
    "fewer_than_5": "5명 미만",
}

# Korean words that the pages' catalog already has: (the annex's key, the catalog's message id).
KO_FROM_CATALOG = {("sex", "female"): "female", ("sex", "male"): "male", ("heading", "sex"): "Sex",
                   ("measure", "detained"): "detained", ("measure", "deportation_imminent"): "deportation imminent",
                   ("measure", "unhcr_access_requested"): "UNHCR-access request"}


class WordingError(ValueError):
    """A language the annex is not written in."""


@functools.lru_cache(maxsize=2)
def words(lang: str) -> dict:
    """Every word of the annex in one language."""
    if lang == "en":
        return EN
    if lang != "ko":
        raise WordingError(f"lang must be one of {', '.join(LANGS)}")
    catalog = i18n.catalog_words("ko")
    ko = {key: dict(value) if isinstance(value, dict) else value for key, value in KO.items()}
    for (group, key), message_id in KO_FROM_CATALOG.items():
        if message_id in catalog:
            ko[group][key] = catalog[message_id]
    return ko


def measure_title(measure: str, lang: str, *, qualified: bool = True) -> str:
    """"Detained (on the date)" / "구금 (기준일 현재)"; a measure not known here keeps its code."""
    w = words(lang)
    title = w["measure"].get(measure, measure)
    if not qualified or measure not in w["measure"]:
        return title
    return f"{title} ({w['on_date'] if measure in STOCK_MEASURES else w['in_period']})"


def sex_label(sex: str, lang: str) -> str:
    """A sex category as a row heading."""
    return words(lang)["sex"].get(sex, sex)


def age_label(age_group: str, lang: str) -> str:
    """An age group as a column heading: "18-59", "60+" / "60세 이상", "Age unknown"."""
    return words(lang)["age"].get(age_group, age_group)


def date_text(value, lang: str) -> str:
    """A business date in words."""
    return i18n.long_date(value, lang)


def month_text(month: str, lang: str) -> str:
    """"2024-01" as "January 2024" / "2024년 1월"."""
    return format_date(dt.date.fromisoformat(f"{month}-01"), "MMMM y" if lang == "en" else "y년 M월",
                       locale=i18n.DATE_LOCALES[lang])


def period_text(as_of, since, lang: str) -> str:
    """The counting period in words: since is exclusive, as in the statistics ((since, as_of])."""
    w = words(lang)
    end = date_text(as_of, lang)
    if not since:
        return w["period_all"].format(end=end)
    start = dt.date.fromisoformat(str(since)[:10]) + dt.timedelta(days=1)
    return w["period_since"].format(start=date_text(start, lang), end=end)


def amount(total: int | None, lang: str) -> str:
    """A published total in words: a total is suppressed only when it is from 1 to 4."""
    if total is None:
        return words(lang)["fewer_than_5"]
    return f"{total}명" if lang == "ko" else str(total)


def suppression_note(table: dict, lang: str) -> str:
    """What a table's suppression hid, in the annex's language. English keeps the note the
    statistics carry; Korean is said from the same counts."""
    if lang == "en" and table.get("note"):
        return table["note"]
    counts = table.get("suppressed") or {}
    primary, secondary = counts.get("primary", 0), counts.get("secondary", 0)
    total_hidden = table.get("total") is None
    if lang == "en":
        if total_hidden:
            return f"The total is between 1 and 4, so it and every non-zero cell ({primary}) were suppressed."
        if not primary:
            return "No count was suppressed: none is between 1 and 4."
        more = f", and {secondary} more so that they cannot be worked out from the totals" if secondary else ""
        return f"{primary} cell(s) with a count between 1 and 4 were suppressed{more}."
    if total_hidden:
        return f"합계가 1~4명이어서 합계와 0이 아닌 모든 칸({primary}개)을 공개하지 않았습니다."
    if not primary:
        return "공개하지 않은 수가 없습니다. 1~4명인 칸이 없습니다."
    if not secondary:
        return f"1~4명인 칸 {primary}개를 공개하지 않았습니다. 합계와 다른 수치로 역산할 수 없습니다."
    return (f"1~4명인 칸 {primary}개를 공개하지 않았고, 합계에서 그 수를 역산할 수 없도록 {secondary}개 칸을 추가로 "
            "공개하지 않았습니다.")


# The submission's questions (reporting's figures.QUESTIONS) in Korean, and the answer said from
# the totals of the tables that come with each. A question not listed here keeps its own words.
KO_DETAINED = ("중국에 현재 구금되어 있는 북한 국적자는 몇 명입니까? (연령·성별 구분)",
               "{as_of} 현재 기록된 사건 중 중국에 구금된 북한 국적자는 {detained}입니다. 성별·연령대별 "
               "내역은 표와 같습니다.")
KO_QUESTIONS = {
    "detained_by_age_sex": KO_DETAINED,
    "pattern_after_return": (
        "고문방지협약 제3조의 목적상, 북한에는 ‘일관된 형태의 중대하거나 명백하거나 대규모의 인권 침해’가 없습니까?",
        "{as_of} 현재 Non-Refoulement Watch가 기록한 강제송환자 중 송환 후 소식이 알려진 사람은 "
        "{returned_fate_known}이며, 각자의 최근 소식에 따르면 {held_by_mss}이 국가보위성에 구금되었고, "
        "{sent_to_kyohwaso}이 교화소, {sent_to_kwanliso}이 관리소(정치범수용소), {sent_to_labour_training_camp}이 "
        "노동단련대로 보내졌으며, {died_or_disappeared}이 구금 중 사망하거나 실종되었습니다.{median} "
        "{forced_labour_reported}이 강제노동을 한 것으로 보고되었고, {ill_treatment_reported}이 고문, 성폭력, 강제 "
        "낙태 등의 가혹행위를 보고했습니다. 성별 내역은 표와 같습니다."),
    "art46": (
        "국적별로, 출입국관리법 제46조에 따라 난민 지위를 신청한 사람, 임시 신분증명서를 발급받은 사람, 난민 지위를 "
        "인정받은 사람은 몇 명입니까?",
        "{period} Non-Refoulement Watch가 기록한 사람 중 {art46_applied}이 출입국관리법 제46조에 따라 난민 지위를 "
        "신청했고, {art46_tic_issued}이 임시 신분증명서를 발급받았으며, {art46_granted}이 난민 지위를 인정받았습니다. "
        "중국이 지위를 부여한 사람은 {china_status_granted}입니다. 국적별 내역은 표와 같습니다."),
    "unhcr_recognition": (
        "국적별로, 2018년 이후 UNHCR 심사를 통해 난민 지위를 인정받은 사람은 몇 명입니까?",
        "{table_period} Non-Refoulement Watch가 기록한 사람 중 {unhcr_recognised}이 UNHCR에서 난민으로 "
        "인정받았습니다. 국적별 내역은 표와 같습니다."),
    "business": (
        "북한과 무역·투자 관계가 있는 중국 기업은 몇 개이며, 그 연간 규모와 종류는 무엇입니까? 정부는 기업이 기업과 "
        "인권 이행원칙을 지키도록 어떻게 보장합니까?",
        "사건 기록으로는 이 질문에 답할 수 없습니다. 기록된 사건은 기업의 무역·투자, 그 규모와 종류, 정부의 조치에 대해 "
        "아무것도 말하지 않습니다. 대신 송환 후 강제노동 증거 목록이 있습니다. {as_of} 현재 송환된 사람들의 증언에 "
        "나온 제품 {products}개, 시설 {facilities}개, 기업 {companies}개입니다(공급망 증거 목록)."),
    "detained_now": KO_DETAINED,  # the id snapshots taken before issue 11 carry
    "facing_deportation": ("그중 북한으로 송환될 사람은 몇 명입니까?",
                           "{as_of} 현재 기록된 구금자 중 {deportation_imminent}이 북한으로의 송환이 임박한 상태였습니다."),
    "returned": ("기간 중 북한으로 강제송환된 북한 주민은 몇 명입니까?",
                 "{period} 기록된 사람 중 {repatriated}이 북한으로 강제송환되었습니다."),
    "unhcr_access": ("UNHCR이 접견한 사람은 몇 명이며, 접견 요청은 몇 건 있었습니까?",
                     "{period} 기록된 사람 중 {unhcr_access_requested}에 대해 UNHCR 접견을 요청했고, 그중 "
                     "{unhcr_access_granted}에 대해 접견이 허가되었습니다."),
    "appeals": ("송환 위험에 처한 사람들을 위해 유엔 메커니즘과 각국 정부에 긴급 호소가 몇 건 발송되었습니까?",
                "{period} 송환 위험에 처한 기록된 사람 중 {appeals_issued}을 위해 긴급 호소를 발송했습니다."),
}


def question_text(question: dict, *, as_of, since, lang: str) -> tuple[str, str]:
    """A question and its answer in the annex's language. In Korean the answer is said from the
    published totals of the question's own tables; without them it stays in English."""
    if lang == "en" or question.get("id") not in KO_QUESTIONS:
        return question.get("question", ""), question.get("answer_text", "")
    ask, answer = KO_QUESTIONS[question["id"]]
    figures = question.get("figures") or {}
    values = {"as_of": date_text(as_of, lang), "period": period_text(as_of, since, lang)}
    values.update({measure: amount(table.get("total"), lang) for measure, table in figures.items()
                   if isinstance(table, dict) and "total" in table})
    main = next((t for t in figures.values() if isinstance(t, dict) and "total" in t), None)
    values["table_period"] = period_text(as_of, main.get("since") if main else since, lang)
    median = figures.get("median_sentence") or {}
    values["median"] = (f" 기록된 교화소 형량의 중앙값은 {median['years']:g}년입니다({median['sentences']}건)."
                        if median.get("years") is not None else
                        " 기록된 교화소 형량이 너무 적어 중앙값을 공개하지 않습니다." if median.get("suppressed") else "")
    values.update((figures.get("evidence_register") or {}).items())
    try:
        return ask, answer.format(**values)
    except KeyError:
        return ask, question.get("answer_text", "")
