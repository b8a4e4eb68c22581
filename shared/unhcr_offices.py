"""The UNHCR offices a UNHCR-access request is sent to: a maintained list of fixed choices, each a
code with its English and Korean names. A request stores and publishes only the code, so nothing
typed into the office field (a detainee's or a contact's name, a telephone number) can reach the
database, an event or another service; the pages and the letters show the office's name.

Keep the list to offices that take access requests for people held in or fleeing through the
region; add an office here (code, names) rather than typing it into a request.
"""

from __future__ import annotations

OFFICES: dict[str, dict[str, str]] = {
    "beijing": {"en": "UNHCR Beijing", "ko": "유엔난민기구 베이징 사무소"},
    "hong_kong": {"en": "UNHCR Hong Kong", "ko": "유엔난민기구 홍콩 사무소"},
    "ulaanbaatar": {"en": "UNHCR Ulaanbaatar", "ko": "유엔난민기구 울란바토르 사무소"},
    "seoul": {"en": "UNHCR Seoul", "ko": "유엔난민기구 한국대표부"},
    "tokyo": {"en": "UNHCR Tokyo", "ko": "유엔난민기구 일본대표부"},
    "moscow": {"en": "UNHCR Moscow", "ko": "유엔난민기구 모스크바 사무소"},
    "bangkok": {"en": "UNHCR Bangkok", "ko": "유엔난민기구 방콕 사무소"},
    "kuala_lumpur": {"en": "UNHCR Kuala Lumpur", "ko": "유엔난민기구 쿠알라룸푸르 사무소"},
    "jakarta": {"en": "UNHCR Jakarta", "ko": "유엔난민기구 자카르타 사무소"},
    "manila": {"en": "UNHCR Manila", "ko": "유엔난민기구 마닐라 사무소"},
    "geneva": {"en": "UNHCR Geneva (headquarters)", "ko": "유엔난민기구 제네바 본부"},
}
CODES = tuple(OFFICES)
UNLISTED = "unlisted"  # what a consumer keeps of an office that is not on the list (an older free text)
UNLISTED_NAMES = {"en": "an office not on the list", "ko": "목록에 없는 사무소"}


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


_BY_NAME = {_folded(label): code for code, names in OFFICES.items() for label in (code, *names.values())}
_BY_NAME[_folded("UNHCR Geneva")] = "geneva"


def code_for(value: object) -> str | None:
    """The office's code for a code or an office's English or Korean name (case and spacing
    ignored: "UNHCR Beijing" is `beijing`); None for anything else."""
    return _BY_NAME.get(_folded(value)) if isinstance(value, str) else None


def listed(value: object) -> str | None:
    """What may be shown of a stored office: its code, `unlisted` for any other text (kept from
    before the list existed: never shown), None for none."""
    if value is None or value == "":
        return None
    return code_for(value) or UNLISTED


def name(code: str | None, lang: str = "en") -> str | None:
    """The office's name in `lang` (en or ko) for a code on the list (or an office's name); the
    words for an unlisted one, never the text itself; None for no office (a request known only by
    its response)."""
    shown = listed(code)
    if shown is None:
        return None
    names = OFFICES.get(shown, UNLISTED_NAMES)
    return names.get(lang) or names["en"]


def choices(lang: str = "en") -> list[tuple[str, str]]:
    """(code, name in `lang`) of every office, for a form's list."""
    return [(code, name(code, lang)) for code in CODES]
