"""`python -m notices`: look at a notice, and keep the translations in step with the templates.

    python -m notices preview KIND [--channel email|department] [--locale de] [--part text|html]
    python -m notices extract   # templates → locales/messages.pot; new msgids into each .po
    python -m notices check     # exit 1 if a catalogue lacks a translation or breaks one

The workflow for a new or changed sentence: edit the template (in English), run `extract`,
translate the new (empty or fuzzy) entries in each locales/<locale>/LC_MESSAGES/messages.po,
run `check`. Until a string is translated, that language shows it in English.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from notices.compose import CHANNELS, LOCALES, SOURCE_LOCALE, TEMPLATE_DIR, compose
from notices.samples import SAMPLES
from notices.translations import DOMAIN, LOCALE_DIR, catalogue_path

# The same keywords and whitespace policy as the environments in compose.py.
_METHOD_MAP = [("**.jinja", "jinja2.ext:babel_extract")]
_OPTIONS = {"**.jinja": {"trimmed": "true"}}


def template_messages() -> Catalog:
    """Every translatable string of the templates, with where it occurs."""
    catalog = Catalog(domain=DOMAIN, project="orderflow notices", creation_date=datetime.now(UTC))
    for filename, lineno, message, comments, context in extract_from_dir(
        str(TEMPLATE_DIR), method_map=_METHOD_MAP, options_map=_OPTIONS
    ):
        catalog.add(
            message, locations=[(filename, lineno)], auto_comments=comments, context=context
        )
    return catalog


def translated_locales() -> list[str]:
    return [locale for locale in LOCALES if locale != SOURCE_LOCALE]


def read_catalogue(locale: str) -> Catalog:
    with catalogue_path(locale).open("rb") as po:
        return read_po(po, locale=locale.replace("-", "_"), domain=DOMAIN)


def problems(locale: str) -> Iterator[str]:
    """What a reader of `locale` would see in English, or see broken."""
    catalog = read_catalogue(locale)
    for message in template_messages():
        if not message.id:
            continue
        found = catalog.get(message.id, message.context)
        if found is None or not found.string or found.fuzzy:
            yield f"{locale}: untranslated: {message.id!r}"
    for message, errors in catalog.check():
        for error in errors:
            yield f"{locale}: {message.id!r}: {error}"


def _extract() -> None:
    template = template_messages()
    LOCALE_DIR.mkdir(parents=True, exist_ok=True)
    _write(LOCALE_DIR / f"{DOMAIN}.pot", template)
    for locale in translated_locales():
        path = catalogue_path(locale)
        if path.is_file():
            catalog = read_catalogue(locale)
            # Keeps every translation whose msgid still exists; changed msgids become fuzzy.
            catalog.update(template)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(locale=locale.replace("-", "_"), domain=DOMAIN)
            catalog.update(template)
        _write(path, catalog)
        print(f"{path}: {len(catalog)} messages")


def _write(path: Path, catalog: Catalog) -> None:
    # Rendered whole before the file is opened: a failure never leaves a truncated catalogue.
    buffer = BytesIO()
    write_po(buffer, catalog, sort_output=True, ignore_obsolete=True)
    path.write_bytes(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notices", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    preview = commands.add_parser("preview", help="render a kind from its sample context")
    preview.add_argument("kind")
    preview.add_argument("--channel", choices=CHANNELS, default="email")
    preview.add_argument("--locale", default=SOURCE_LOCALE)
    preview.add_argument("--part", choices=("text", "html"), default="text")
    commands.add_parser("extract", help="update messages.pot and every locale's .po")
    commands.add_parser("check", help="fail on untranslated or broken catalogue entries")
    args = parser.parse_args(argv)

    if args.command == "preview":
        context = SAMPLES[args.channel].get(args.kind)
        if context is None:
            parser.error(f"no {args.channel} kind {args.kind!r}: {sorted(SAMPLES[args.channel])}")
        mail = compose(args.kind, args.locale, context, channel=args.channel)
        print(f"Subject: {mail.subject}\nLocale: {mail.locale}\n")
        print(mail.text if args.part == "text" else mail.html)
        return 0
    if args.command == "extract":
        _extract()
        return 0
    found = [problem for locale in translated_locales() for problem in problems(locale)]
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
