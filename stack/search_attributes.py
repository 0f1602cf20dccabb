"""The custom search attributes orders carry in Temporal, and their registration.

The typed keys in `orderflow.search_attributes` are the one place that names them; this
module registers them. The embedded dev server gets them on its command line; external
servers and the time-skipping test server get them through `register_search_attributes`.
"""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from orderflow.search_attributes import ALL_KEYS

_INDEXED_VALUE_TYPES: dict[str, IndexedValueType.ValueType] = {
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


class SearchAttributeConflict(RuntimeError):
    """A search attribute exists on the server with a different type than ours."""


def indexed_value_type(type_name: str) -> IndexedValueType.ValueType:
    """The protobuf enum value for a type name such as `Keyword` or `Double`."""
    try:
        return _INDEXED_VALUE_TYPES[type_name]
    except KeyError:
        known = ", ".join(_INDEXED_VALUE_TYPES)
        raise ValueError(f"unknown search attribute type {type_name!r}; one of {known}") from None


def type_name_of(value: IndexedValueType.ValueType) -> str:
    """The type name (`Keyword`, ...) for a protobuf enum value."""
    for name, candidate in _INDEXED_VALUE_TYPES.items():
        if candidate == value:
            return name
    raise ValueError(f"unknown indexed value type {value}")


# name -> type, in the spelling `temporal server start-dev --search-attribute` expects,
# derived from the typed keys the workflows use.
ORDER_SEARCH_ATTRIBUTES: dict[str, str] = {
    key.name: type_name_of(IndexedValueType.ValueType(key.indexed_value_type)) for key in ALL_KEYS
}


async def list_custom_search_attributes(client: Client, namespace: str) -> dict[str, str]:
    """The custom search attributes registered on `namespace`, as name -> type name."""
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return {name: type_name_of(value) for name, value in response.custom_attributes.items()}


async def register_search_attributes(
    client: Client,
    namespace: str,
    attributes: dict[str, str] | None = None,
    *,
    attempts: int = 5,
) -> list[str]:
    """Add whichever of `attributes` (default: the order ones) are missing on `namespace`.

    Idempotent: a second call adds nothing. Returns the names it added. Raises
    `SearchAttributeConflict` if a name exists with another type, since upserts of
    that attribute would then fail in every workflow.
    """
    wanted = ORDER_SEARCH_ATTRIBUTES if attributes is None else attributes
    for type_name in wanted.values():
        indexed_value_type(type_name)
    added: list[str] = []
    for attempt in range(attempts):
        existing = await list_custom_search_attributes(client, namespace)
        conflicts = {
            name: (existing[name], type_name)
            for name, type_name in wanted.items()
            if name in existing and existing[name] != type_name
        }
        if conflicts:
            detail = ", ".join(
                f"{name} is {have} on the server, {want} here"
                for name, (have, want) in conflicts.items()
            )
            raise SearchAttributeConflict(f"namespace {namespace!r}: {detail}")
        missing = {name: t for name, t in wanted.items() if name not in existing}
        if not missing:
            return added
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes={name: indexed_value_type(t) for name, t in missing.items()},
                )
            )
        except RPCError as err:
            # Another process registering at the same moment wins the race; list again.
            if err.status != RPCStatusCode.ALREADY_EXISTS or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2)
            continue
        added.extend(missing)
    return added
