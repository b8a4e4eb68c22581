"""Debian's NanumGothic (package fonts-nanum), the font that carries Hangul in every PDF and chart
the services make: found under /usr/share/fonts and registered with reportlab or matplotlib, once."""

from __future__ import annotations

import functools
from pathlib import Path

FONT_DIRS = (Path("/usr/share/fonts"),)  # Debian's fonts-nanum puts it in truetype/nanum/
REGULAR_FILE, BOLD_FILE = "NanumGothic.ttf", "NanumGothicBold.ttf"
REPORTLAB_REGULAR, REPORTLAB_BOLD = "NanumGothic", "NanumGothic-Bold"


class FontMissing(RuntimeError):
    """NanumGothic is not installed, so nothing with Korean text can be drawn."""


def find_font(filename: str, dirs: tuple[Path, ...] = FONT_DIRS) -> Path | None:
    """The first file of this name under the font folders, or None."""
    for folder in dirs:
        for path in sorted(folder.rglob(filename)):
            if path.is_file():
                return path
    return None


def nanum_files(dirs: tuple[Path, ...] = FONT_DIRS) -> tuple[Path, Path]:
    """NanumGothic's regular file and its bold (the regular one again if there is no bold)."""
    regular = find_font(REGULAR_FILE, dirs)
    if regular is None:
        where = ", ".join(str(d) for d in dirs)
        raise FontMissing(f"{REGULAR_FILE} was not found under {where}: PDFs and charts need it for Korean. "
                          "Install Debian's fonts-nanum package (bash infra/browser.sh does).")
    return regular, find_font(BOLD_FILE, dirs) or regular


@functools.lru_cache(maxsize=4)
def register_reportlab(dirs: tuple[Path, ...] = FONT_DIRS) -> tuple[str, str]:
    """Register NanumGothic and its bold with reportlab as one family; their font names."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    regular, bold = nanum_files(dirs)
    pdfmetrics.registerFont(TTFont(REPORTLAB_REGULAR, str(regular)))
    pdfmetrics.registerFont(TTFont(REPORTLAB_BOLD, str(bold)))
    pdfmetrics.registerFontFamily(REPORTLAB_REGULAR, normal=REPORTLAB_REGULAR, bold=REPORTLAB_BOLD,
                                  italic=REPORTLAB_REGULAR, boldItalic=REPORTLAB_BOLD)
    return REPORTLAB_REGULAR, REPORTLAB_BOLD


@functools.lru_cache(maxsize=4)
def register_matplotlib(dirs: tuple[Path, ...] = FONT_DIRS) -> str:
    """Add NanumGothic (regular and bold) to matplotlib's font manager; the family name to ask for."""
    from matplotlib import font_manager

    regular, bold = nanum_files(dirs)
    for path in dict.fromkeys((regular, bold)):
        font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(regular)).get_name()
