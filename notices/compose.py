"""compose(kind, locale, context) → ComposedMail(subject, text, html, locale).

One Jinja2 template per kind, `templates/<channel>/<kind>.jinja` (channel `email` for
customers, `department` for department leads: the kind `parcel_lost` exists for both). A
kind's template fills the blocks `subject`, `content` and `action` (customer mails: the
label of the order-page link) or `todo` (department notices: what to do next), and extends
`layout`; it is rendered twice, once through the plain-text layout and building blocks
(`_layout.txt.jinja`, `_blocks.txt.jinja`) and once through the HTML ones, so the two parts
always say the same thing.

- HTML is autoescaped: a customer named `<script>` is text, not markup.
- StrictUndefined: a template that uses a variable its caller did not pass fails with an
  error naming it, in tests, instead of mailing a blank.
- Translations: `{% trans %}` and `_()` (jinja2.ext.i18n) look up the locale's gettext
  catalogue (notices/translations.py); the msgids are English, so English is the fallback
  for an unknown locale and for any string a catalogue lacks. A locale whose rendering
  fails (a translator's broken placeholder) or comes out empty is rendered in English.
- Money, dates and country names are formatted for the locale (notices/formatting.py).

Rendering is pure and synchronous: callers render inside the transaction that queues the
notice, so what is stored is exactly what is sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, UndefinedError

from notices import formatting
from notices.translations import LOCALE_DIR, load_translations

Channel = Literal["email", "department"]
CHANNELS: tuple[Channel, ...] = ("email", "department")

SOURCE_LOCALE = "en"
# The languages with catalogues; any other falls back to English.
LOCALES: tuple[str, ...] = ("en", "de", "zh-CN")
TEMPLATE_DIR = Path(__file__).parent / "templates"

# Names compose() sets in every context (the layouts read them); a caller may not pass them.
RESERVED = frozenset({"channel", "locale"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComposedMail:
    subject: str
    text: str
    html: str
    # The language it was rendered in: the requested one, or `en` after a fallback.
    locale: str


def resolve_locale(requested: str | None, available: tuple[str, ...] = LOCALES) -> str:
    """The locale to render in: an exact match (case and `_`/`-` ignored), else one of the
    same language (`de-AT` → `de`), else English."""
    if not requested:
        return SOURCE_LOCALE
    tag = requested.strip().replace("_", "-").lower()
    for locale in available:
        if locale.lower() == tag:
            return locale
    language = tag.split("-", 1)[0]
    for locale in available:
        if locale.split("-", 1)[0].lower() == language:
            return locale
    return SOURCE_LOCALE


class Composer:
    """Templates and catalogues from two folders; one instance serves every locale.

    Each (locale, format) has its own Environment, built on first use and kept: the
    translations and formatting filters are bound to it, so no render changes shared state
    and concurrent renders in different languages cannot mix.
    """

    def __init__(
        self,
        templates: Path = TEMPLATE_DIR,
        catalogues: Path = LOCALE_DIR,
        locales: tuple[str, ...] = LOCALES,
    ) -> None:
        self._templates = templates
        self._catalogues = catalogues
        self.locales = locales
        self._environments: dict[tuple[str, bool], Environment] = {}
        self._lock = threading.Lock()

    def kinds(self, channel: Channel) -> tuple[str, ...]:
        """The kinds that have a template for the channel."""
        return tuple(
            sorted(
                p.stem
                for p in (self._templates / channel).glob("*.jinja")
                if not p.name.startswith("_")
            )
        )

    def compose(
        self,
        kind: str,
        locale: str | None,
        context: Mapping[str, Any],
        *,
        channel: Channel = "email",
    ) -> ComposedMail:
        reserved = RESERVED & context.keys()
        if reserved:
            raise ValueError(f"context may not set {sorted(reserved)}: compose sets them")
        resolved = resolve_locale(locale, self.locales)
        if resolved != SOURCE_LOCALE:
            try:
                mail = self._render(kind, resolved, context, channel)
            except UndefinedError:
                # The caller's context lacks a variable: English lacks it too. Say so.
                raise
            except Exception:
                log.warning(
                    "notice %s/%s failed to render in %s; rendered in English",
                    channel,
                    kind,
                    resolved,
                    exc_info=True,
                )
            else:
                if _complete(mail):
                    return mail
                log.warning(
                    "notice %s/%s rendered empty in %s; rendered in English",
                    channel,
                    kind,
                    resolved,
                )
        mail = self._render(kind, SOURCE_LOCALE, context, channel)
        if not _complete(mail):
            raise ValueError(f"template {channel}/{kind} rendered an empty subject or body")
        return mail

    def _render(
        self, kind: str, locale: str, context: Mapping[str, Any], channel: Channel
    ) -> ComposedMail:
        name = f"{channel}/{kind}.jinja"
        values = {**context, "channel": channel, "locale": locale}
        text_template = self._environment(locale, html=False).get_template(name)
        html_template = self._environment(locale, html=True).get_template(name)
        return ComposedMail(
            subject=_subject(text_template, values),
            text=_tidy_text(text_template.render(values)),
            html=_tidy_html(html_template.render(values)),
            locale=locale,
        )

    def _environment(self, locale: str, *, html: bool) -> Environment:
        key = (locale, html)
        environment = self._environments.get(key)
        if environment is None:
            with self._lock:
                environment = self._environments.get(key)
                if environment is None:
                    environment = self._build(locale, html=html)
                    self._environments[key] = environment
        return environment

    def _build(self, locale: str, *, html: bool) -> Environment:
        fmt = "html" if html else "txt"
        environment = Environment(
            loader=FileSystemLoader(self._templates),
            undefined=StrictUndefined,
            autoescape=html,
            extensions=["jinja2.ext.i18n"],
            # Tags take their own line in the text part without leaving blank lines.
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        # {% trans %} blocks spread over lines have one-line msgids (and so does extraction).
        environment.policies["ext.i18n.trimmed"] = True
        # newstyle: `_("… %(name)s", name=x)` formats after translating, and escapes x in HTML.
        environment.install_gettext_translations(  # type: ignore[attr-defined]
            load_translations(locale, self._catalogues), newstyle=True
        )
        environment.globals.update(layout=f"_layout.{fmt}.jinja", blocks=f"_blocks.{fmt}.jinja")
        environment.filters.update(
            money=partial(formatting.money, locale=locale),
            date=partial(formatting.long_date, locale=locale),
            day=partial(formatting.day, locale=locale),
            country=partial(formatting.country, locale=locale),
        )
        return environment


def _subject(template: Template, values: Mapping[str, Any]) -> str:
    block = template.blocks.get("subject")
    if block is None:
        raise ValueError(f"template {template.name} has no subject block")
    # One line, whatever the template's whitespace: it becomes a header.
    return " ".join("".join(block(template.new_context(dict(values)))).split())


def _tidy_text(text: str) -> str:
    """No trailing spaces, never two blank lines in a row, one final newline."""
    lines: list[str] = []
    for line in text.splitlines():
        line = line.rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip() + "\n"


def _tidy_html(html: str) -> str:
    return "\n".join(line.strip() for line in html.splitlines() if line.strip()) + "\n"


def _complete(mail: ComposedMail) -> bool:
    return bool(mail.subject.strip() and mail.text.strip() and mail.html.strip())


_default = Composer()


def compose(
    kind: str, locale: str | None, context: Mapping[str, Any], *, channel: Channel = "email"
) -> ComposedMail:
    """Render a notice of `kind` for `channel` in `locale` (None or unknown: English)."""
    return _default.compose(kind, locale, context, channel=channel)


def kinds(channel: Channel) -> tuple[str, ...]:
    return _default.kinds(channel)
