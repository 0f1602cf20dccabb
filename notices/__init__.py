"""Notices: the words of every e-mail to a customer and every notice to a department lead.

`compose(kind, locale, context)` renders a kind's template (notices/templates/) into a
subject, a plain-text part and an HTML part, in the customer's language with English as the
fallback. It is pure: no database, no settings. `db/repositories/notifications.py` gathers
the context (the order, its customer, the link to the order page) and queues the result in
the transaction of the effect it reports; the outbox sends it as stored.
"""

from notices.compose import (
    CHANNELS,
    LOCALES,
    SOURCE_LOCALE,
    Channel,
    ComposedMail,
    Composer,
    compose,
    kinds,
    resolve_locale,
)

__all__ = [
    "CHANNELS",
    "LOCALES",
    "SOURCE_LOCALE",
    "Channel",
    "ComposedMail",
    "Composer",
    "compose",
    "kinds",
    "resolve_locale",
]
