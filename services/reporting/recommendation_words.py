"""The words of the recommendations' pages and of the DOCX submission draft, in English and Korean
(one place for both, as wording.py is for the annex). Codes are never shown: each has a label."""

from __future__ import annotations

from services.reporting import wording

LANGS = ("en", "ko")

# The after-return and asylum measures, for wherever wording.py has no title of its own yet.
MEASURES = {
    "en": {
        "returned_fate_known": "Returned, fate after return known",
        "held_by_mss": "Held by the Ministry of State Security after return",
        "sent_to_kyohwaso": "Sent to a kyohwaso (reform-through-labour prison)",
        "sent_to_kwanliso": "Sent to a kwanliso (political prison camp)",
        "sent_to_labour_training_camp": "Sent to a labour training camp",
        "died_or_disappeared": "Died in custody or disappeared",
        "forced_labour_reported": "Forced labour reported",
        "ill_treatment_reported": "Ill-treatment reported",
        "art46_applied": "Applied for refugee status under article 46",
        "art46_tic_issued": "Issued a temporary identity certificate (article 46)",
        "art46_granted": "Granted refugee status under article 46",
        "unhcr_recognised": "Recognised as a refugee by UNHCR",
        "china_status_granted": "Granted a status by China",
    },
    "ko": {
        "returned_fate_known": "송환 후 행방이 확인된 사람",
        "held_by_mss": "송환 후 국가보위성 구금",
        "sent_to_kyohwaso": "교화소 수감",
        "sent_to_kwanliso": "관리소(정치범수용소) 수감",
        "sent_to_labour_training_camp": "노동단련대 수감",
        "died_or_disappeared": "구금 중 사망 또는 실종",
        "forced_labour_reported": "강제노동 보고",
        "ill_treatment_reported": "가혹행위 보고",
        "art46_applied": "출입국관리법 제46조 난민 신청",
        "art46_tic_issued": "임시 신분증명서 발급 (제46조)",
        "art46_granted": "제46조에 따른 난민 지위 인정",
        "unhcr_recognised": "UNHCR 난민 인정",
        "china_status_granted": "중국 정부의 지위 부여",
    },
}

WORDS = {
    "en": {
        "recommendations": "Recommendations followed",
        "intro": "Recommendations made to China (UPR cycles and treaty bodies) and those proposed, each linked to "
                 "the measures whose documented cases bear on it.",
        "upr": "UPR", "treaty_body": "Treaty body",
        "made": "made", "proposed": "proposed for the next cycle",
        "supported": "supported", "noted": "noted", "no_response": "response not recorded",
        "cycle": "Cycle", "number": "Number", "symbol": "Symbol", "paragraph": "Paragraph",
        "state": "Recommending State", "response": "China's response", "issued_on": "Date",
        "no_date": "date not recorded", "mechanism": "Mechanism", "kind": "Made or proposed", "text": "Text",
        "linked": "Linked measures", "questions": "Linked questions", "none": "none",
        "since": "Documented cases from {since} to {as_of}",
        "since_undated": "Documented cases up to {as_of} (the recommendation's date is not recorded)",
        "not_yet": "The recommendation is dated on or after {as_of}: nothing to follow yet.",
        "total": "Total", "measure": "Measure", "cases": "Cases",
        "female": "Female", "male": "Male", "unknown": "Sex unknown",
        "case_ids": "Cases counted (internal)",
        "add": "Add a recommendation", "added": "The recommendation was added.",
        "exists": "This recommendation is listed already.",
        "invalid": "The recommendation was not added. Please correct the fields marked below.",
        "save": "Add the recommendation", "show": "Show the figures", "as_of": "Figures as of",
        "public_level": "Public figures: a count from 1 to 4 is not published.",
        "internal_level": "Exact figures (internal): not for publication.",
        "choose": "(choose)", "not_found": "No recommendation with that id.",
        "suppressed": "not published",
        "edit": "Change the recommendation", "save_changes": "Save the changes",
        "saved": "The recommendation was saved.",
        "not_saved": "The recommendation was not changed. Please correct the fields marked below.",
        "text_ko": "Korean text (unofficial translation)",
        "text_ko_hint": "Optional. Shown to Korean readers before the official English text, marked as an "
                        "unofficial translation. Leave empty if there is none.",
        "unofficial": "unofficial translation", "original": "Original",
        "no_translation": "No Korean translation is available: the official English text is given.",
        "linked_recs": "Recommendations linked to this question",
    },
    "ko": {
        "recommendations": "권고 이행 추적",
        "intro": "중국에 대한 권고(UPR 주기별 권고와 조약기구 권고) 및 제안된 권고입니다. 각 권고는 관련된 기록 사례의 "
                 "지표와 연결되어 있습니다.",
        "upr": "UPR", "treaty_body": "조약기구",
        "made": "채택된 권고", "proposed": "다음 주기에 제안",
        "supported": "수용", "noted": "유의", "no_response": "응답 기록 없음",
        "cycle": "주기", "number": "번호", "symbol": "문서 기호", "paragraph": "문단",
        "state": "권고 국가", "response": "중국의 응답", "issued_on": "날짜",
        "no_date": "날짜 기록 없음", "mechanism": "기구", "kind": "채택 또는 제안", "text": "내용",
        "linked": "연결된 지표", "questions": "연결된 질문", "none": "없음",
        "since": "{since}부터 {as_of}까지의 기록 사례",
        "since_undated": "{as_of}까지의 기록 사례 (권고 날짜 기록 없음)",
        "not_yet": "권고 날짜가 {as_of} 이후이므로 아직 추적할 내용이 없습니다.",
        "total": "합계", "measure": "지표", "cases": "사례",
        "female": "여성", "male": "남성", "unknown": "성별 미상",
        "case_ids": "집계된 사례 (내부용)",
        "add": "권고 추가", "added": "권고가 추가되었습니다.",
        "exists": "이미 목록에 있는 권고입니다.",
        "invalid": "권고가 추가되지 않았습니다. 아래 표시된 항목을 고쳐 주십시오.",
        "save": "권고 추가", "show": "지표 보기", "as_of": "기준일",
        "public_level": "공개용 수치: 1~4인 수는 공개하지 않습니다.",
        "internal_level": "정확한 수치 (내부용): 공개 불가.",
        "choose": "(선택)", "not_found": "해당 권고가 없습니다.",
        "suppressed": "비공개",
        "edit": "권고 수정", "save_changes": "변경 저장",
        "saved": "권고가 저장되었습니다.",
        "not_saved": "권고가 수정되지 않았습니다. 아래 표시된 항목을 고쳐 주십시오.",
        "text_ko": "한국어 내용 (비공식 번역)",
        "text_ko_hint": "선택 사항. 한국어 독자에게 공식 영어 원문보다 먼저, 비공식 번역으로 표시됩니다. 번역이 없으면 "
                        "비워 두십시오.",
        "unofficial": "비공식 번역", "original": "원문",
        "no_translation": "한국어 번역이 없어 공식 영어 원문을 싣습니다.",
        "linked_recs": "이 질문에 연결된 권고",
    },
}

QUESTIONS = {
    "en": {"detained_by_age_sex": "Detained, by age and sex", "facing_deportation": "Facing deportation",
           "returned": "Returned", "pattern_after_return": "The pattern after return",
           "art46": "Article 46 applications", "unhcr_recognition": "UNHCR recognitions",
           "unhcr_access": "UNHCR access", "appeals": "Urgent appeals", "business": "Businesses"},
    "ko": {"detained_by_age_sex": "연령·성별 구금 현황", "facing_deportation": "송환 위기",
           "returned": "강제송환", "pattern_after_return": "송환 후 처우", "art46": "제46조 난민 신청",
           "unhcr_recognition": "UNHCR 난민 인정", "unhcr_access": "UNHCR 접견", "appeals": "긴급 호소",
           "business": "기업"},
}


def words(lang: str) -> dict:
    """The words in one language (English for any other)."""
    return WORDS["ko" if lang == "ko" else "en"]


def measure_label(measure: str, lang: str) -> str:
    """A measure's title: wording.py's where it has one, else this module's."""
    title = wording.measure_title(measure, lang)
    if title and title != measure:
        return title
    return MEASURES["ko" if lang == "ko" else "en"].get(measure, measure)


def question_label(qid: str, lang: str) -> str:
    """A question's short name."""
    return QUESTIONS["ko" if lang == "ko" else "en"].get(qid, qid)


def reference(rec: dict, lang: str) -> str:
    """'UPR CN-3, 28.131 (Peru)' or 'CAT/C/CHN/CO/5, para. 47' or 'UPR CN-4, proposed'."""
    w = words(lang)
    if rec["mechanism"] == "treaty_body":
        para = "문단" if lang == "ko" else "para."
        return f"{rec.get('symbol')}, {para} {rec.get('paragraph')}"
    head = f"UPR {rec.get('cycle')}"
    if rec.get("number"):
        head += f", {rec['number']}"
    if rec.get("kind") == "proposed":
        head += f" ({w['proposed']})"
    if rec.get("recommending_state"):
        head += f" ({rec['recommending_state']})"
    return head


def response_text(rec: dict, lang: str) -> str:
    """China's response in words."""
    w = words(lang)
    return w[rec["response"]] if rec.get("response") in ("supported", "noted") else w["no_response"]


def quoted(rec: dict, lang: str) -> dict:
    """How a recommendation's text is quoted to a reader: in Korean, its unofficial Korean
    translation first (`text`, `lang` "ko", marked by `label` "비공식 번역"), then the official English
    as `original` ("원문:"); without a translation, the English with `note` saying so. In English,
    the official text alone."""
    english = str(rec.get("text") or "")
    w = words(lang)
    out = {"text": english, "lang": "en", "label": None, "original": None, "original_label": w["original"],
           "note": None}
    if lang != "ko":
        return out
    korean = str(rec.get("text_ko") or "").strip()
    if korean:
        return {**out, "text": korean, "lang": "ko", "label": w["unofficial"], "original": english}
    return {**out, "note": w["no_translation"]}
