"""Per-locale message catalogues: gettext `.po` files under `notices/locales/`, read at run
time with Babel, so the repository holds only the text translators edit (no compiled `.mo`).

English is the source language: the msgids in the templates are the English text, so a
locale without a catalogue, and any string a catalogue lacks (missing, empty or fuzzy),
reads in English. That is the fallback; it can never produce an empty string.
"""

from __future__ import annotations

import gettext
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"


def catalogue_path(locale: str, directory: Path = LOCALE_DIR) -> Path:
    """`de` → locales/de/LC_MESSAGES/messages.po; `zh-CN` → locales/zh_CN/…"""
    return directory / locale.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"


def load_translations(locale: str, directory: Path = LOCALE_DIR) -> gettext.NullTranslations:
    """The locale's translations; NullTranslations (the English msgids) when it has none."""
    path = catalogue_path(locale, directory)
    if not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale.replace("-", "_"), domain=DOMAIN)
    # Compiled in memory: write_mo leaves out untranslated and fuzzy entries, which is what
    # makes gettext answer those with the English msgid.
    mo = BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    return gettext.GNUTranslations(mo)
