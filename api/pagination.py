"""Pages of list endpoints: a bounded `limit` and an opaque `cursor` (keyset pagination).

A list endpoint keeps answering a JSON list (the shape clients know); when more follows,
the response carries the next page's cursor in `X-Next-Cursor` and a `Link: <…>; rel="next"`
header. The cursor is the last row's sort key, so a page never repeats or skips a row that
stays in the list, however the rows before it change.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import HTTPException, Query, Request, Response

DEFAULT_LIMIT = 100
MAX_LIMIT = 200
NEXT_CURSOR_HEADER = "X-Next-Cursor"

Kind = Literal["time", "text", "int"]
T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    limit: int
    cursor: str | None

    def after(self, *kinds: Kind) -> tuple[Any, ...] | None:
        """The cursor's sort key as typed values; 422 for a cursor this list never gave."""
        if self.cursor is None:
            return None
        try:
            padded = self.cursor + "=" * (-len(self.cursor) % 4)
            values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            if not isinstance(values, list) or len(values) != len(kinds):
                raise ValueError("wrong length")
            return tuple(_typed(kind, value) for kind, value in zip(kinds, values, strict=True))
        except (ValueError, TypeError, UnicodeError, binascii.Error) as exc:
            raise HTTPException(
                422, "invalid cursor: pass the X-Next-Cursor of the previous page unchanged"
            ) from exc


def _typed(kind: Kind, value: Any) -> Any:
    if kind == "time":
        if not isinstance(value, str):
            raise TypeError("time")
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError("naive time")
        return at
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 2**63:
            raise TypeError("int")
        return value
    if not isinstance(value, str):
        raise TypeError("text")
    return value


def page_params(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Rows per page (at most {MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            max_length=1000,
            description=f"Where the page starts: the `{NEXT_CURSOR_HEADER}` of the previous page.",
        ),
    ] = None,
) -> Page:
    """The page a list request asks for (a FastAPI dependency)."""
    return Page(limit=limit, cursor=cursor)


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def paged(
    rows: Sequence[T],
    page: Page,
    request: Request,
    response: Response,
    key: Callable[[T], Sequence[Any]],
) -> list[T]:
    """The page's rows from `rows` (read with `page.limit + 1`); when more follow, the next
    page's cursor in the response headers."""
    shown = list(rows[: page.limit])
    if len(rows) > page.limit and shown:
        cursor = encode_cursor(key(shown[-1]))
        response.headers[NEXT_CURSOR_HEADER] = cursor
        url = request.url.include_query_params(cursor=cursor, limit=page.limit)
        # Relative, so it holds behind a proxy that rewrites the host.
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return shown
