"""The Korean catalog is complete and the template is in step with the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from tests.support import ROOT

CATALOG = ROOT / "shared" / "translations"


def _ids(path: Path) -> set:
    with path.open("rb") as fh:
        return {m.id for m in read_po(fh) if m.id}


def test_every_string_of_the_pages_has_its_korean_translation():
    with (CATALOG / "ko" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh)
    missing = [m.id for m in catalog if m.id and (not m.string or (isinstance(m.string, tuple) and not all(m.string)))]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not missing, f"untranslated: {missing}"
    assert not fuzzy, f"guessed by pybabel, to check: {fuzzy}"


def test_the_template_holds_exactly_the_strings_in_the_code(tmp_path):
    extracted = tmp_path / "messages.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "-q", "extract", "-F", "babel.cfg", "-k", "N_",
                    "-o", str(extracted), "."], cwd=ROOT, check=True)
    assert _ids(extracted) == _ids(CATALOG / "messages.pot"), "run `make translations` and translate what is new"
    assert _ids(CATALOG / "messages.pot") <= _ids(CATALOG / "ko" / "LC_MESSAGES" / "messages.po")
