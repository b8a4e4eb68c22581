"""A letter's PDF, laid out with reportlab from the HTML that its Markdown renders to (headings,
paragraphs, lists, bold and italics), in Debian's NanumGothic so that Hangul shows."""

from __future__ import annotations

import functools
import html
import io
from html.parser import HTMLParser

from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import ListFlowable, ListItem, Paragraph, SimpleDocTemplate

from shared import fonts

FONT_DIRS = fonts.FONT_DIRS  # Debian's fonts-nanum puts it in truetype/nanum/
FONT, BOLD_FONT = fonts.REPORTLAB_REGULAR, fonts.REPORTLAB_BOLD


class LetterFontMissing(fonts.FontMissing):
    """NanumGothic is not installed, so no PDF letter can be made."""


def build_pdf(body_html: str, *, lang: str, title: str, author: str, footer: str) -> bytes:
    """The PDF of a letter's HTML fragment, with its title, author and language in the metadata."""
    font, bold = register_fonts()
    styles = _styles(font, bold)
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=25 * mm, rightMargin=25 * mm, topMargin=22 * mm,
                            bottomMargin=22 * mm, title=title, author=author, subject=title, creator=author,
                            lang=lang, displayDocTitle=True, initialFontName=font)

    def _footer(canvas, document):
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.drawCentredString(A4[0] / 2, 12 * mm, f"{footer} · {document.page}")
        canvas.restoreState()

    doc.build(_flowables(body_html, styles), onFirstPage=_footer, onLaterPages=_footer)
    return out.getvalue()


@functools.lru_cache(maxsize=1)
def register_fonts() -> tuple[str, str]:
    """Register NanumGothic (and its bold, or the regular face again) with reportlab, once."""
    try:
        return fonts.register_reportlab(tuple(FONT_DIRS))
    except fonts.FontMissing as exc:
        raise LetterFontMissing(str(exc)) from None


def _styles(font: str, bold: str) -> dict[str, ParagraphStyle]:
    body = ParagraphStyle("body", fontName=font, fontSize=10.5, leading=15.5, spaceAfter=7)
    return {
        "h1": ParagraphStyle("h1", parent=body, fontName=bold, fontSize=15, leading=20, spaceAfter=12,
                             alignment=TA_CENTER),
        "h2": ParagraphStyle("h2", parent=body, fontName=bold, fontSize=12, leading=16, spaceBefore=8, spaceAfter=6),
        "h3": ParagraphStyle("h3", parent=body, fontName=bold, fontSize=11, leading=15, spaceBefore=6),
        "p": body,
        "li": ParagraphStyle("li", parent=body, spaceAfter=4),
    }


def _flowables(body_html: str, styles: dict[str, ParagraphStyle]) -> list:
    parser = _Blocks()
    parser.feed(body_html)
    parser.close()
    flowables = []
    for tag, content in parser.blocks:
        if tag in ("ul", "ol"):
            items = [ListItem(Paragraph(markup, styles["li"]), leftIndent=16) for markup in content]
            flowables.append(ListFlowable(items, bulletType="1" if tag == "ol" else "bullet", bulletFormat="%s."
                                          if tag == "ol" else None, leftIndent=16,
                                          bulletFontName=styles["p"].fontName, bulletFontSize=styles["p"].fontSize,
                                          spaceAfter=6))
        else:
            flowables.append(Paragraph(content, styles.get(tag, styles["p"])))
    return flowables


class _Blocks(HTMLParser):
    """The blocks of a Markdown HTML fragment, each as reportlab paragraph markup (text escaped,
    <b> and <i> kept): ("h1" | "h2" | "h3" | "p", markup) or ("ul" | "ol", [markup of each item])."""

    INLINE = {"strong": "b", "b": "b", "em": "i", "i": "i"}
    HEADINGS = {"h1": "h1", "h2": "h2", "h3": "h3", "h4": "h3", "h5": "h3", "h6": "h3"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, object]] = []
        self._block: str | None = None  # the open paragraph or heading, outside lists
        self._list: list[str] | None = None
        self._buffer: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("ul", "ol"):
            self._list = []
            self.blocks.append((tag, self._list))
        elif tag == "li" and self._list is not None:
            self._buffer = []
        elif tag in self.HEADINGS or tag == "p":
            if self._list is None or self._buffer is None:
                self._block, self._buffer = self.HEADINGS.get(tag, "p"), []
        elif tag == "br" and self._buffer is not None:
            self._buffer.append("<br/>")
        elif tag in self.INLINE and self._buffer is not None:
            self._buffer.append(f"<{self.INLINE[tag]}>")

    def handle_endtag(self, tag):
        if tag in self.INLINE and self._buffer is not None:
            self._buffer.append(f"</{self.INLINE[tag]}>")
        elif tag == "li" and self._list is not None and self._buffer is not None:
            self._list.append(self._markup())
            self._buffer = None
        elif tag in ("ul", "ol"):
            self._list = None
        elif (tag in self.HEADINGS or tag == "p") and self._block is not None:
            self.blocks.append((self._block, self._markup()))
            self._block, self._buffer = None, None

    def handle_data(self, data):
        if self._buffer is not None:
            self._buffer.append(html.escape(data, quote=False))

    def _markup(self) -> str:
        return " ".join("".join(self._buffer or ()).split())
