"""Words and dates for documents made outside a request (letters, annexes): the pages' own catalog
read as a dictionary, so that a document says "송환 임박" exactly as the pages do, and business
dates written as people read them."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from babel.dates import format_date
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DATE_LOCALES = {"en": "en_GB", "ko": "ko"}  # "5 January 2024", as UN documents write dates


def N_(message: str) -> str:
    """Mark a word for translation where it is shown later through _(value)."""
    return message


def catalog_path(lang: str) -> Path:
    """The pages' message catalog of a language."""
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


@functools.lru_cache(maxsize=4)
def catalog_words(lang: str) -> dict[str, str]:
    """Message id -> its translation, for every translated, checked (not fuzzy) message."""
    with catalog_path(lang).open("rb") as po:
        catalog = read_po(po, locale=lang)
    return {message.id: message.string for message in catalog
            if isinstance(message.id, str) and isinstance(message.string, str) and message.string
            and not message.fuzzy}


def long_date(value: dt.date | str, lang: str) -> str:
    """A business date in words: "1 January 2024" / "2024년 1월 1일"."""
    if isinstance(value, dt.datetime):
        value = value.date()
    elif isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    return format_date(value, "long", locale=DATE_LOCALES[lang])
