"""URLs made fit to print: the password of a URL with credentials replaced by `***`.

Banners and log lines show where a process connects (`DATABASE_URL`, a relay, an API)
without handing the password to whoever reads the terminal or the log files.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry a password in libpq-style URLs (`?password=...`).
_SECRET_PARAMS = frozenset({"password", "pass", "passwd", "sslpassword"})
# Fallback for text that does not parse as a URL: `scheme://user:password@`.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")


def redact_url(url: str) -> str:
    """`url` with its password (in the user info or the query) replaced by `***`."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.partition(":")[0]
            netloc = f"{user}:{MASK}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(key.lower() in _SECRET_PARAMS for key, _ in pairs):
                query = urlencode(
                    [(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs],
                    safe="*",
                )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return _USERINFO.sub(rf"\g<head>:{MASK}@", url)


_ADDRESS = re.compile(r"[\w.+%'-]+@([\w-]+(?:\.[\w-]+)*)", re.UNICODE)


def mask_addresses(text: str) -> str:
    """E-mail addresses in `text` with their local part hidden (`***@example.com`), for
    log lines and failure messages: logs never show a customer's address."""
    return _ADDRESS.sub(lambda m: f"***@{m.group(1)}", text)
